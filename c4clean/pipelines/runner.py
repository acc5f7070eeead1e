"""Which Beam runner executes the pipeline, and with which pipeline options.

Locally the pipeline runs on Beam's Python FnApiRunner: `DirectRunner` would first try to download
the Prism binary (no network here, and a start-up delay elsewhere), while the FnApiRunner honours
`--direct_num_workers` / `--direct_running_mode` and works offline. `--workers N` > 1 selects
multi-processing mode, since the cleaning work is CPU-bound Python (threads would share one GIL).

Any other runner name is passed to Beam as is (`dataflow` -> `DataflowRunner`), with the Beam
options the user gives after `--`. For remote runners the c4clean package itself must reach the
workers: unless the user stages something already, `--setup_file` points at this source tree's
`pyproject.toml` (Beam builds and stages an sdist from it).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Sequence

RUNNER_NAMES = {
    "direct": "FnApiRunner",
    "dataflow": "DataflowRunner",
    "flink": "FlinkRunner",
    "spark": "SparkRunner",
    "portable": "PortableRunner",
    "prism": "PrismRunner",
}

# Options by which a user already tells a remote runner how to install c4clean on its workers.
_STAGING_FLAGS = (
    "--setup_file",
    "--requirements_file",
    "--extra_package",
    "--extra_packages",
    "--sdk_container_image",
    "--worker_harness_container_image",
)


def runner_name(runner: str) -> str:
    return RUNNER_NAMES.get(runner.lower(), runner)


def source_tree_project_file() -> Path | None:
    """This checkout's pyproject.toml when c4clean runs from a source tree (editable install)."""
    candidate = Path(__file__).resolve().parents[2] / "pyproject.toml"
    return candidate if candidate.is_file() else None


def beam_flags(runner: str, workers: int, beam_args: Sequence[str] = ()) -> list[str]:
    """The exact Beam command-line flags of a run (user flags after `--` come last and win)."""
    name = runner_name(runner)
    flags = [f"--runner={name}"]
    if name == "FnApiRunner":
        mode = "multi_processing" if workers > 1 else "in_memory"
        flags += [f"--direct_num_workers={workers}", f"--direct_running_mode={mode}"]
    else:
        staged = any(arg.split("=")[0] in _STAGING_FLAGS for arg in beam_args)
        project_file = source_tree_project_file()
        if not staged and project_file is not None:
            flags.append(f"--setup_file={project_file}")
    return flags + list(beam_args)


def pipeline_options(runner: str, workers: int, beam_args: Sequence[str] = ()):
    from apache_beam.options.pipeline_options import PipelineOptions

    return PipelineOptions(beam_flags(runner, workers, beam_args))


def make_runner(runner: str):
    """A runner instance for names Beam cannot resolve itself (the FnApiRunner), else None."""
    if runner_name(runner) == "FnApiRunner":
        from apache_beam.runners.portability.fn_api_runner import FnApiRunner

        return FnApiRunner()
    return None


class _WorkerProgressFilter(logging.Filter):
    """In multi-processing mode the workers send their log records to the driver, which logs each as
    one line of protobuf text under Beam's `local_job_service` logger. This shows c4clean's own
    per-stage progress lines from the workers as plain messages, Beam's errors as they are, and
    drops Beam's start-up chatter."""

    _MESSAGE = re.compile(r'message: "((?:[^"\\]|\\.)*)"')

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        found = self._MESSAGE.search(text)
        if found is None or "/c4clean/" not in text:
            return record.levelno >= logging.ERROR
        record.name = "c4clean.worker"
        record.msg, record.args = "%s", (found.group(1).replace('\\"', '"'),)
        return True


def show_worker_progress() -> None:
    """Per-stage progress of local worker processes on the terminal (see `_WorkerProgressFilter`)."""
    beam_logger = logging.getLogger("apache_beam.runners.portability.local_job_service")
    beam_logger.setLevel(logging.INFO)
    beam_logger.addFilter(_WorkerProgressFilter())
