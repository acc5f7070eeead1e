"""Which Beam runner executes the pipeline, and with which pipeline options.

Locally the pipeline runs on Beam's Python FnApiRunner, in this process: `DirectRunner` would first
try to download the Prism binary (no network here, and a start-up delay elsewhere), while the
FnApiRunner works offline. `--workers N` > 1 adds N worker processes for the per-file work (`pool`
says why not the FnApiRunner's own multi-processing mode).

Any other runner name is passed to Beam as is (`dataflow` -> `DataflowRunner`), with the Beam
options the user gives after `--`. For remote runners the c4clean package itself must reach the
workers: unless the user stages something already, `--setup_file` points at this source tree's
`pyproject.toml` (Beam builds and stages an sdist from it).
"""

from __future__ import annotations

import importlib.util
import shutil
import socket
from pathlib import Path
from typing import Sequence

RUNNER_NAMES = {
    "direct": "FnApiRunner",
    "dask": "DaskRunner",
    "dataflow": "DataflowRunner",
    "flink": "FlinkRunner",
    "spark": "SparkRunner",
    "portable": "PortableRunner",
    "prism": "PrismRunner",
}

# What a run's libraries import when installed, for features c4clean never uses (`lazy.left_out`):
# - at Beam's import: BigQuery's client (its IO; with IPython installed, also its notebook progress
#   bars), ~0.5 s of every run's start (not pandas, which Beam imports too: pyarrow imports it anyway,
#   in the first process that stages a file, and the local workers share the driver's);
BEAM_EXTRAS_LEFT_OUT = ("google.cloud.bigquery",)
# - while the pipeline is built and run: IPython, which Beam imports (~0.5 s) to ask whether it runs in a
#   notebook (when it does, IPython is imported already and stays available).
PIPELINE_LEFT_OUT = ("IPython",)


def import_beam() -> None:
    """Imports Beam for a run, without `BEAM_EXTRAS_LEFT_OUT` (`lazy.import_without`)."""
    from c4clean.lazy import import_without

    import_without("apache_beam", BEAM_EXTRAS_LEFT_OUT)


# Options by which a user already tells a remote runner how to install c4clean on its workers.
_STAGING_FLAGS = (
    "--setup_file",
    "--requirements_file",
    "--extra_package",
    "--extra_packages",
    "--sdk_container_image",
    "--worker_harness_container_image",
)


# Runners c4clean cannot run by itself: the Beam option naming the service each one needs.
_SERVICE_FLAGS = {
    "FlinkRunner": ("--flink_master", "a Flink cluster (HOST:PORT of its REST endpoint)"),
    "SparkRunner": ("--spark_master_url", "a Spark master (spark://HOST:PORT)"),
    "PortableRunner": ("--job_endpoint", "a running Beam job server (HOST:PORT)"),
}


class RunnerUnavailable(Exception):
    """A runner that cannot run here; the message names what is missing."""


class RunFailed(Exception):
    """The runner gave up on the pipeline (e.g. a task's workers kept dying); nothing was committed."""


def runner_name(runner: str) -> str:
    return RUNNER_NAMES.get(runner.lower(), runner)


def _flag(beam_args: Sequence[str], name: str):
    """The value of `--name=VALUE` / `--name VALUE` among `beam_args`, or None."""
    for i, arg in enumerate(beam_args):
        if arg == name and i + 1 < len(beam_args):
            return beam_args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def _reachable(address: str, timeout: float = 3.0) -> bool:
    host_port = address.split("://", 1)[-1].split("/", 1)[0]
    host, _, port = host_port.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def check_runner(runner: str, beam_args: Sequence[str] = ()) -> None:
    """Fails fast (RunnerUnavailable) for a runner whose requirements are missing here, instead of
    Beam downloading job servers or waiting on an absent cluster."""
    name = runner_name(runner)
    if name == "DaskRunner":
        if importlib.util.find_spec("distributed") is None:
            raise RunnerUnavailable("--runner dask needs dask.distributed: pip install 'c4clean[dask]'")
        address = _flag(beam_args, "--dask_client_address")
        if address and not _reachable(address):
            raise RunnerUnavailable(f"--runner dask: no dask scheduler answers at {address}")
        return
    if name not in _SERVICE_FLAGS:
        return
    endpoint = _flag(beam_args, "--job_endpoint")
    flag, service = _SERVICE_FLAGS[name]
    target = endpoint or _flag(beam_args, flag)
    if target is None or target.startswith("["):  # "[auto]"/"[local]": Beam would start one itself
        alternative = "" if flag == "--job_endpoint" else " (or --job_endpoint=HOST:PORT)"
        raise RunnerUnavailable(f"--runner {runner} needs {service}: give -- {flag}=...{alternative}")
    if endpoint is None and shutil.which("java") is None:
        raise RunnerUnavailable(
            f"--runner {runner} needs Java to start Beam's job server (or -- --job_endpoint=HOST:PORT)"
        )
    if not _reachable(target):
        raise RunnerUnavailable(f"--runner {runner}: nothing answers at {target}")


def source_tree_project_file() -> Path | None:
    """This checkout's pyproject.toml when c4clean runs from a source tree (editable install)."""
    candidate = Path(__file__).resolve().parents[2] / "pyproject.toml"
    return candidate if candidate.is_file() else None


def beam_flags(runner: str, beam_args: Sequence[str] = ()) -> list[str]:
    """The exact Beam command-line flags of a run (user flags after `--` come last and win)."""
    name = runner_name(runner)
    # c4clean's graph is fixed and tested: Beam's type checks while it is built (~0.5 s of every
    # run's start, most of it rebuilding an argparse parser per check) find nothing in it.
    flags = [f"--runner={name}", "--no_pipeline_type_check"]
    if name == "FnApiRunner":
        # N local workers are a process pool under the in-process runner (`pool`).
        flags += ["--direct_num_workers=1", "--direct_running_mode=in_memory"]
    elif name != "DaskRunner":  # Dask workers import c4clean from their own environment
        staged = any(arg.split("=")[0] in _STAGING_FLAGS for arg in beam_args)
        project_file = source_tree_project_file()
        if not staged and project_file is not None:
            flags.append(f"--setup_file={project_file}")
    return flags + list(beam_args)


def pipeline_options(runner: str, beam_args: Sequence[str] = ()):
    from c4clean.pipelines.beam_options import ReusedViews

    return ReusedViews(beam_flags(runner, beam_args))


def uses_local_pool(runner: str, workers: int) -> bool:
    """Whether `workers` local workers are a process pool (`pool`): for the local runner."""
    return runner_name(runner) == "FnApiRunner" and workers > 1


# Beam's in-process worker times each bundle's steps on a thread that sleeps up to 200 ms between
# samples, and joins that thread when the bundle ends: up to 0.2 s with nothing running at the end of
# every long stage (~0.2 s at each pass's end on the bench corpus; with local workers, all of them wait).
# c4clean reads none of the step timings it feeds; at 10 ms a bundle ends within 10 ms.
STATE_SAMPLING_PERIOD_MS = 10


def _short_state_sampling() -> None:
    """Makes `STATE_SAMPLING_PERIOD_MS` the default period of Beam's `StateSampler` (its last argument,
    `sampling_period_ms`, which Beam's worker leaves at its default)."""
    from apache_beam.runners.worker.statesampler import StateSampler

    init = StateSampler.__init__
    code = init.__code__
    if code.co_varnames[code.co_argcount - 1] == "sampling_period_ms" and len(init.__defaults__ or ()) == 1:
        init.__defaults__ = (STATE_SAMPLING_PERIOD_MS,)


def make_runner(runner: str, workers: int = 1):
    """A runner instance for names c4clean runs itself (the FnApiRunner, Dask), else None."""
    name = runner_name(runner)
    if name == "FnApiRunner":
        from apache_beam.runners.portability.fn_api_runner import FnApiRunner

        _short_state_sampling()
        return FnApiRunner()
    if name == "DaskRunner":
        from c4clean.pipelines.dask_runner import C4DaskRunner

        return C4DaskRunner(workers)
    return None
