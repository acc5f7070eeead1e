"""Local worker processes (`pipelines.pool`): a `Pooled` DoFn gives what its inner DoFn gives inline
(outputs in element order, tagged outputs, counts) while the work runs in forked workers; started
tasks are taken by their stage; a worker that dies fails the run naming it."""

from __future__ import annotations

import json
import os
import signal
import time

import apache_beam as beam
import pytest
from apache_beam.runners.portability.fn_api_runner import FnApiRunner

from c4clean.pipelines import pool
from c4clean.pipelines.counting import Counted, CountingDoFn, WriteCounts
from c4clean.pipelines.runner import RunFailed

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="local workers fork")


class _Work(CountingDoFn):
    """n -> n*n (main), and its worker's pid (tagged), counting parity; one element can kill or fail
    its worker."""

    def __init__(self, kill: int = -1, fail: int = -1):
        self._kill, self._fail = kill, fail

    def process(self, n):
        if n == self._kill:
            os.kill(os.getpid(), signal.SIGKILL)
        if n == self._fail:
            raise ValueError(f"element {n} is bad")
        self.count("parity", "even" if n % 2 == 0 else "odd")
        yield n * n
        yield beam.pvalue.TaggedOutput("pid", os.getpid())


def _run(tmp_path, dofn, elements=range(40), order=None):
    """(main outputs in order, tagged "pid" outputs, counts) of `Pooled(dofn, order=order)` over
    `elements`."""
    with beam.Pipeline(runner=FnApiRunner()) as p:
        outputs = (
            p
            | beam.Create([list(elements)])
            | beam.FlatMap(lambda ns: ns)  # one bundle, in this order
            | Counted(pool.Pooled(dofn, "Work", order=order), tags=("pid",), main="main")
        )
        for tag in ("main", "pid"):
            saved = tmp_path / f"{tag}.json"
            gathered = outputs[tag] | f"Gather{tag}" >> beam.combiners.ToList()
            _ = gathered | f"Save{tag}" >> beam.Map(_save, saved)
        _ = p | "Counts" >> WriteCounts(str(tmp_path / "counts.json"))
    load = lambda name: json.loads((tmp_path / name).read_text())  # noqa: E731
    return load("main.json"), load("pid.json"), load("counts.json")


def _save(values, path):
    path.write_text(json.dumps(values))


def test_pooled_work_runs_in_the_workers_and_gives_what_it_gives_inline(tmp_path):
    (tmp_path / "inline").mkdir()
    (tmp_path / "pooled").mkdir()
    inline = _run(tmp_path / "inline", _Work())
    with pool.local_pool(2) as workers:
        pooled = _run(tmp_path / "pooled", _Work())
        worker_pids = {p.pid for p in workers.processes}
    assert inline[0] == pooled[0] == [n * n for n in range(40)]  # same values, same order
    assert inline[2] == pooled[2] == {"parity": {"even": 20, "odd": 20}}
    assert set(inline[1]) == {os.getpid()}
    assert pooled[1] and set(pooled[1]) <= worker_pids and os.getpid() not in pooled[1]
    assert all(not process.is_alive() for process in workers.processes)  # ended with the block


class _Named(_Work):
    """(n, name, name) -> n*n, as `_Work`; and where it ran (tagged): (n, pid)."""

    def process(self, element):
        n = element[0]
        yield from (out for out in super().process(n) if not isinstance(out, beam.pvalue.TaggedOutput))
        yield beam.pvalue.TaggedOutput("pid", (n, os.getpid()))


def test_prefetched_tasks_are_taken_by_their_stage_and_not_run_again(tmp_path):
    # An element like the staging's: the same string twice, which Beam's coder gives back as two.
    name = "/inputs/a.wet.gz"
    elements = [(n, name, name) for n in range(12)]
    with pool.local_pool(2) as workers:
        workers.prefetch("Work", _Named(), elements[:10])
        assert len(workers._prefetched) == 10
        main, ran, counts = _run(tmp_path, _Named(), elements)
        assert workers._prefetched == {}
    assert main == [n * n for n in range(12)]
    assert counts == {"parity": {"even": 6, "odd": 6}}
    assert sorted(n for n, _ in ran) == list(range(12))  # each element ran once


class _Started(_Work):
    """n -> n*n, as `_Work`; and when it started (tagged): (n, monotonic ns)."""

    def process(self, n):
        yield beam.pvalue.TaggedOutput("pid", (n, time.monotonic_ns()))
        yield from (out for out in super().process(n) if not isinstance(out, beam.pvalue.TaggedOutput))


def test_an_order_starts_the_tasks_in_it_and_keeps_the_outputs_in_element_order(tmp_path):
    with pool.local_pool(1):  # one worker: tasks run one by one, in the order they were started
        main, started, counts = _run(tmp_path, _Started(), range(12), order=lambda n: (n % 3, -n))
    assert main == [n * n for n in range(12)]
    assert counts == {"parity": {"even": 6, "odd": 6}}
    assert [n for n, _ in sorted(started, key=lambda s: s[1])] == [9, 6, 3, 0, 10, 7, 4, 1, 11, 8, 5, 2]


def test_a_worker_that_dies_fails_the_run_naming_it(tmp_path):
    with pytest.raises(RunFailed, match=r"a local worker process died: (.*, )?pid \d+ \(signal 9\)"):
        with pool.local_pool(2):
            _run(tmp_path, _Work(kill=7))


def test_an_error_in_a_task_fails_the_run_with_that_error(tmp_path):
    with pytest.raises(Exception, match="element 5 is bad") as raised:
        with pool.local_pool(2) as workers:
            _run(tmp_path, _Work(fail=5))
    assert not isinstance(raised.value, RunFailed)
    assert all(not process.is_alive() for process in workers.processes)
