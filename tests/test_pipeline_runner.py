"""Runner selection and the exact Beam options of local and Dataflow runs (no pipeline is run,
except a Dataflow dry run when `apache-beam[gcp]` is installed)."""

from __future__ import annotations

import importlib.util

import pytest
from apache_beam.options.pipeline_options import (
    DirectOptions,
    GoogleCloudOptions,
    SetupOptions,
    StandardOptions,
    WorkerOptions,
)

from c4clean.pipelines import runner
from c4clean.pipelines.cli import run as run_command
from c4clean.pipelines.options import RunOptions

DATAFLOW_ARGS = (
    "--project=my-project",
    "--region=europe-west4",
    "--temp_location=gs://my-bucket/tmp",
    "--num_workers=20",
    "--max_num_workers=100",
    "--machine_type=n2-standard-4",
)


def test_local_runs_use_the_offline_python_runner_in_process_with_a_pool_for_more_workers():
    options = runner.pipeline_options("direct")
    direct = options.view_as(DirectOptions)
    assert options.view_as(StandardOptions).runner == "FnApiRunner"
    assert direct.direct_num_workers == 1 and direct.direct_running_mode == "in_memory"
    assert runner.uses_local_pool("direct", 4) and not runner.uses_local_pool("direct", 1)
    assert not runner.uses_local_pool("dask", 4)
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner

    assert isinstance(runner.make_runner("direct"), FnApiRunner)
    assert runner.make_runner("dataflow") is None  # Beam resolves remote runners by name


def test_local_runner_ends_bundles_without_waiting_on_beams_state_sampler():
    from apache_beam.runners.worker import bundle_processor, statesampler
    from apache_beam.utils.counters import CounterFactory

    runner.make_runner("direct")
    # Made as Beam's bundle processor makes it (prefix and counters only): its sampling thread, which
    # the end of each bundle joins, sleeps at most this long.
    assert bundle_processor.statesampler is statesampler
    sampler = statesampler.StateSampler("step", CounterFactory())
    assert sampler.sampling_period_ms == runner.STATE_SAMPLING_PERIOD_MS < 200


def test_dataflow_options_are_passed_through_and_the_package_is_staged():
    options = runner.pipeline_options("dataflow", DATAFLOW_ARGS)
    assert options.view_as(StandardOptions).runner == "DataflowRunner"
    gcp = options.view_as(GoogleCloudOptions)
    assert (gcp.project, gcp.region, gcp.temp_location) == (
        "my-project",
        "europe-west4",
        "gs://my-bucket/tmp",
    )
    workers = options.view_as(WorkerOptions)
    assert (workers.num_workers, workers.max_num_workers, workers.machine_type) == (20, 100, "n2-standard-4")
    setup_file = options.view_as(SetupOptions).setup_file
    assert setup_file is not None and setup_file.endswith("pyproject.toml")
    assert "direct_num_workers" not in " ".join(runner.beam_flags("dataflow", DATAFLOW_ARGS))


def test_a_users_own_staging_replaces_the_default_one():
    flags = runner.beam_flags("dataflow", DATAFLOW_ARGS + ("--requirements_file=req.txt",))
    assert not any(f.startswith("--setup_file") for f in flags)
    options = runner.pipeline_options("flink", ("--flink_master=localhost:8081",))
    assert options.view_as(StandardOptions).runner == "FlinkRunner"


def test_cli_passes_everything_after_double_dash_to_beam():
    ctx = run_command.make_context(
        "run",
        [
            "--input",
            "wet/",
            "--output",
            "out/",
            "--runner",
            "dataflow",
            "--workers",
            "3",
            "--",
            *DATAFLOW_ARGS,
        ],
    )
    assert ctx.params["beam_args"] == DATAFLOW_ARGS
    assert ctx.params["runner"] == "dataflow" and ctx.params["workers"] == 3


@pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("apitools", "build", "wheel"))
    or importlib.util.find_spec("google.cloud") is None,
    reason="apache-beam[gcp] is not installed (optional extra: pip install 'c4clean[gcp]')",
)
def test_dataflow_dry_run_builds_the_job_offline(sample_wet, tmp_path):
    from c4clean.pipelines import pipeline

    options = RunOptions(
        output=str(tmp_path / "out"),
        inputs=(str(sample_wet),),
        runner="dataflow",
        beam_args=DATAFLOW_ARGS + ("--dry_run=True", f"--setup_file={runner.source_tree_project_file()}"),
    )
    planned, cache = pipeline.plan_inputs(options)
    # Validates the options and builds (and stages, as an sdist) the job without submitting it.
    result = pipeline.build_pipeline(options, planned, cache).run()
    assert result.state == "DONE"
    assert result.job.proto.type_.name == "JOB_TYPE_BATCH"


def test_inputs_directories_globs_and_several_inputs(shared_data):
    from c4clean.pipelines.pipeline import expand_inputs

    small = shared_data / "wet" / "small"
    # A directory gives its WET files only (not manifest.json or pages.jsonl.xz beside them).
    from_dir = expand_inputs([str(small)])
    assert [p.rsplit("/", 1)[1] for p in from_dir] == sorted(p.name for p in small.glob("*.wet.gz"))
    from_glob = expand_inputs([str(small / "*00001.warc.wet.gz")])
    assert len(from_glob) == 1 and from_glob[0] in from_dir
    fake = shared_data / "wet" / "synthetic" / "tfds_c4"
    both = expand_inputs([str(fake), str(small), str(small / "*.wet.gz")])
    assert len(both) == len(from_dir) + 2 and both == sorted(both)  # sorted, duplicates once
    with pytest.raises(FileNotFoundError):
        expand_inputs([str(small / "no-such-file.wet.gz")])


@pytest.mark.parametrize(
    "name, args, missing",
    [
        ("flink", (), "--flink_master"),
        ("spark", (), "--spark_master_url"),
        ("portable", (), "--job_endpoint"),
        ("portable", ("--job_endpoint=127.0.0.1:9",), "nothing answers at 127.0.0.1:9"),
        ("dask", ("--dask_client_address=tcp://127.0.0.1:9",), "no dask scheduler answers"),
    ],
)
def test_runners_that_cannot_run_here_fail_fast_naming_what_is_missing(name, args, missing, tmp_path):
    from click.testing import CliRunner

    from c4clean.cli import main

    with pytest.raises(runner.RunnerUnavailable, match=missing):
        runner.check_runner(name, args)
    result = CliRunner().invoke(
        main, ["run", "--input", "sample_data/wet", "--output", str(tmp_path), "--runner", name, "--", *args]
    )
    assert result.exit_code == 1 and missing in result.output
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "manifest.json").exists()


def test_pipeline_options_make_each_view_once_and_share_its_values():
    import pickle

    from apache_beam.options.pipeline_options import DebugOptions, TypeOptions

    options = runner.pipeline_options("direct", ["--experiments=a"])
    view = options.view_as(TypeOptions)
    assert options.view_as(TypeOptions) is view and view.pipeline_type_check is False
    # Values live in the options, as with Beam's own views: a write through one view is seen by all.
    view.pipeline_type_check = True
    assert options.get_all_options()["pipeline_type_check"] is True
    options.view_as(DebugOptions).experiments.append("b")
    assert options.view_as(DebugOptions).experiments == ["a", "b"]
    copy = pickle.loads(pickle.dumps(options))  # the views are not part of its state
    assert "_c4clean_views" not in copy.__dict__
    assert copy.get_all_options() == options.get_all_options()
    assert copy.view_as(TypeOptions) is copy.view_as(TypeOptions)


def test_dask_runner_is_selected_by_name():
    from c4clean.pipelines.dask_runner import C4DaskRunner

    assert isinstance(runner.make_runner("dask", 3), C4DaskRunner)
    assert runner.beam_flags("dask") == ["--runner=DaskRunner", "--no_pipeline_type_check"]  # no --setup_file
    runner.check_runner("dask")  # a local cluster needs nothing more


def test_beam_imports_and_runs_a_pipeline_without_the_extras_it_would_not_use():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from c4clean.pipelines import runner\n"
        "runner.import_beam()\n"
        "left = [m for m in runner.BEAM_EXTRAS_LEFT_OUT if m in sys.modules]\n"
        "assert not left, left\n"
        "import apache_beam as beam\n"
        "from c4clean import lazy\n"
        "with lazy.left_out(runner.PIPELINE_LEFT_OUT):\n"
        "    with beam.Pipeline(runner=runner.make_runner('direct', 1)) as p:\n"
        "        _ = p | beam.Create([1, 2]) | beam.Map(print)\n"
        "left = [m for m in runner.PIPELINE_LEFT_OUT if m in sys.modules]\n"
        "assert not left, left\n"
        "import importlib.util\n"
        "for name in runner.BEAM_EXTRAS_LEFT_OUT + runner.PIPELINE_LEFT_OUT:\n"
        "    if importlib.util.find_spec(name.split('.')[0]) and importlib.util.find_spec(name):\n"
        "        importlib.import_module(name)\n"  # where installed, it imports as usual afterwards
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert sorted(done.stdout.split()) == ["1", "2"]


def test_a_run_collects_garbage_less_often_then_restores_the_collector(sample_wet, tmp_path, monkeypatch):
    import contextlib
    import gc

    from c4clean.pipelines import pipeline

    seen = []

    @contextlib.contextmanager
    def local_workers(*_):  # where the workers would fork: they inherit what the run set
        seen.append(gc.get_threshold())
        raise RuntimeError("stopped before the pipeline")
        yield

    monkeypatch.setattr(pipeline, "_local_workers", local_workers)
    before = gc.get_threshold()
    with pytest.raises(RuntimeError, match="stopped"):
        pipeline.run(RunOptions(output=str(tmp_path / "out"), inputs=(str(sample_wet),), workers=2))
    assert seen == [pipeline.RUN_GC_THRESHOLDS] != [before]
    assert gc.get_threshold() == before
