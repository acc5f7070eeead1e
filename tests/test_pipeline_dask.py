"""`--runner dask` on a real dask.distributed cluster (a scheduler and a 2-process worker, started as
separate processes on 127.0.0.1): the same shards, byte for byte, and the same counts as the local
runner, for each kind of recipe; Beam DaskRunner defects that lose data stay fixed; a worker killed
mid-run changes nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("distributed", reason="needs dask.distributed: pip install 'c4clean[dask]'")

from c4clean.cleaning import reasons  # noqa: E402
from c4clean.pipelines import pipeline  # noqa: E402
from c4clean.pipelines.options import RunOptions  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 90

CONFIGS = {
    "en": dict(variant="en"),
    "en-no-near-dedup": dict(variant="en", near_dedup=False),
    "en.noclean": dict(variant="en.noclean"),
    "multilingual": dict(variant="multilingual"),
}


def _dask(*args) -> list[str]:
    return [sys.executable, "-m", "dask", *args]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Address of a scheduler with one `dask worker` of 2 processes; all stopped afterwards."""
    from distributed import Client

    folder = tmp_path_factory.mktemp("dask")
    scheduler_file = folder / "scheduler.json"
    env = {
        **os.environ,
        # The workers import this checkout's c4clean, and this module (the defects test's DoFn).
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(REPO), str(REPO / "tests"), os.environ.get("PYTHONPATH")])
        ),
    }
    common = dict(
        cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    procs = [
        subprocess.Popen(
            _dask(
                "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                "--scheduler-file", str(scheduler_file),
            ),
            **common,
        )
    ]  # fmt: skip
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not scheduler_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert scheduler_file.exists(), "dask scheduler did not start"
        address = json.loads(scheduler_file.read_text())["address"]
        procs.append(
            subprocess.Popen(
                _dask(
                    "worker", address, "--host", "127.0.0.1", "--nworkers", "2", "--nthreads", "1",
                    "--no-dashboard", "--memory-limit", "4GiB",
                ),
                **common,
            )
        )  # fmt: skip
        with Client(address, timeout=START_TIMEOUT_S) as client:
            client.wait_for_workers(2, timeout=START_TIMEOUT_S)
        yield address
    finally:
        for proc in procs[::-1]:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs[::-1]:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def _run(sample_wet: Path, out: Path, runner: str = "direct", beam_args=(), **config):
    options = RunOptions(
        output=str(out),
        inputs=(str(sample_wet),),
        workers=1,
        runner=runner,
        beam_args=tuple(beam_args),
        num_shards=4,
        **config,
    )
    outcome = pipeline.run(options, echo=lambda _: None)
    assert outcome.exit_code == 0
    return outcome


def _counts(out: Path) -> dict:
    """stats.json's counters, without CPU times (which differ between any two runs)."""
    counters = json.loads((out / "stats.json").read_text())["counters"]
    stages = counters.pop(reasons.NS_STAGES)
    counters["stages"] = {k: v for k, v in stages.items() if not k.endswith(":us")}
    return counters


def _assert_same_output(local: Path, dask: Path):
    names = sorted(f"data/{p.name}" for p in (local / "data").glob("*.arrow"))
    assert names and names == sorted(f"data/{p.name}" for p in (dask / "data").glob("*.arrow"))
    for name in names + ["README.md", "histograms.png"]:
        assert (dask / name).read_bytes() == (local / name).read_bytes(), name
    assert _counts(dask) == _counts(local)
    manifests = [json.loads((out / "manifest.json").read_text()) for out in (local, dask)]
    assert manifests[0]["shards"] == manifests[1]["shards"]


@pytest.mark.parametrize("name", list(CONFIGS))
def test_dask_cluster_gives_the_local_runners_shards_and_counts(name, cluster, sample_wet, tmp_path):
    local, dask = tmp_path / "local", tmp_path / "dask"
    _run(sample_wet, local, **CONFIGS[name])
    _run(sample_wet, dask, "dask", [f"--dask_client_address={cluster}"], **CONFIGS[name])
    _assert_same_output(local, dask)
    assert _counts(dask)["stages"]["split:out"] > 0


class _Both(__import__("apache_beam").DoFn):
    def process(self, x):
        import apache_beam as beam

        yield x
        yield beam.pvalue.TaggedOutput("side", -x)

    def finish_bundle(self):
        from apache_beam.transforms.window import GlobalWindows

        yield GlobalWindows.windowed_value(100)


def _save(values, path):
    Path(path).write_text(json.dumps(sorted(values)))


def test_beam_dask_defects_are_fixed(cluster, tmp_path):
    """The reproduction of `dask_runner`'s docstring: outputs of `finish_bundle` kept, tagged outputs
    kept apart, every branch computed (Beam 2.77's DaskRunner fails all three)."""
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from c4clean.pipelines.dask_runner import C4DaskRunner

    options = PipelineOptions([f"--dask_client_address={cluster}"])
    with beam.Pipeline(runner=C4DaskRunner(), options=options) as p:
        outs = p | beam.Create(range(10)) | beam.ParDo(_Both()).with_outputs("side", main="main")
        _ = outs.main | "ListA" >> beam.combiners.ToList() | "A" >> beam.Map(_save, str(tmp_path / "a"))
        _ = outs.side | "ListB" >> beam.combiners.ToList() | "B" >> beam.Map(_save, str(tmp_path / "b"))
    main = json.loads((tmp_path / "a").read_text())
    assert main == list(range(10)) + [100] * (len(main) - 10) and len(main) > 10  # one per bundle
    assert json.loads((tmp_path / "b").read_text()) == [-x for x in range(9, -1, -1)]


def test_a_worker_killed_mid_run_changes_nothing(cluster, sample_wet, tmp_path):
    """Dask reruns the dead worker's tasks (its nanny starts a new one): same shards, same counts."""
    from distributed import Client

    local, dask = tmp_path / "local", tmp_path / "dask"
    _run(sample_wet, local)
    with Client(cluster, timeout=START_TIMEOUT_S) as client:
        pids = client.run(os.getpid)
    failure = []

    def run_on_dask():
        try:
            _run(sample_wet, dask, "dask", [f"--dask_client_address={cluster}"], keep_work=True)
        except BaseException as error:  # noqa: BLE001 - reported by the main thread
            failure.append(error)

    thread = threading.Thread(target=run_on_dask)
    thread.start()
    files = dask / ".work" / "files"
    deadline = time.monotonic() + START_TIMEOUT_S
    while thread.is_alive() and not list(files.glob("*.json")) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(sorted(pids.values())[0], signal.SIGKILL)  # one worker process, mid-run
    thread.join(timeout=600)
    assert not thread.is_alive()
    assert not failure, failure
    _assert_same_output(local, dask)
