"""Local worker processes: warm ones claimed over their sockets, a cold start when none is left."""

from __future__ import annotations

import os

import pytest

beam = pytest.importorskip("apache_beam")

from apache_beam.options.pipeline_options import PipelineOptions  # noqa: E402

from c4clean.pipelines.local_workers import LocalRunner  # noqa: E402

OPTIONS = ["--direct_num_workers=2", "--direct_running_mode=multi_processing"]


def _worker_pids(runner: LocalRunner, tmp_path) -> set[int]:
    """Runs a small two-worker pipeline; the pids of the processes that ran its elements."""
    with beam.Pipeline(runner=runner, options=PipelineOptions(OPTIONS)) as p:
        _ = (
            p
            | beam.Create(range(40))
            | beam.Reshuffle()
            | beam.Map(lambda _: os.getpid())
            | beam.Distinct()
            | beam.io.WriteToText(str(tmp_path / "pids"))
        )
    return {int(line) for path in tmp_path.glob("pids*") for line in path.read_text().split()}


def test_warm_workers_are_the_ones_that_run_and_end_with_the_run(tmp_path):
    runner = LocalRunner(2)
    warm = runner._warm
    pids = _worker_pids(runner, tmp_path)
    assert pids and pids <= {process.pid for process in warm._processes}
    assert all(process.poll() is not None for process in warm._processes)
    assert not os.path.exists(warm.folder)


def test_without_warm_workers_the_command_starts_a_worker_cold(tmp_path):
    runner = LocalRunner(2)
    warm = runner._warm
    warm.close()  # as if every warm worker were gone: `attach` finds none to claim
    pids = _worker_pids(runner, tmp_path)
    assert pids and not pids & {process.pid for process in warm._processes}
    assert os.getpid() not in pids
