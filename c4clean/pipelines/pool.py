"""Local workers (`--workers N` > 1): Beam runs in this process; the per-file work runs in N forked
processes.

The work of a run is per input file (staging a file, each pass over it); what joins the files
(URL dedup, near-dedup's and line dedup's groupings) is keys only. Beam's local runner in
multi-processing mode would send every element of every stage through gRPC to and from its
workers, group in the driver anyway, and have each worker import Beam and the cleaning models
again. So a local run with N workers uses the in-process runner, and the DoFns that do one file's
work per element (`Pooled`) hand each element to a pool of N processes forked from this one: they
share its imports, and only a file's name goes out and its small results (keys, counts) come back.

Results are taken in the order the elements came, so a stage's output is the same as in one
process: same shards, same counts, whatever N. A task that raises fails the run with its error; a
worker that dies fails it too (`BrokenProcessPool`), never losing its file's pages silently.
Where no pool runs (one worker, Dask, Dataflow...) a `Pooled` DoFn is its inner DoFn, inline.
"""

from __future__ import annotations

import collections
import contextlib
import gc
import multiprocessing
import pickle
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Callable, Iterator, Optional

import apache_beam as beam
from apache_beam.transforms.window import GlobalWindows

from c4clean.pipelines.counting import CountingDoFn
from c4clean.process_group import leave_ctrl_c_to_the_run


class LocalPool:
    """The worker processes, and the tasks started ahead of their stage (`prefetch`)."""

    def __init__(self, workers: int):
        before = set(multiprocessing.active_children())
        # What exists now lives as long as the run: out of the collector's sight, so that collections in
        # the workers do not walk (and copy, page by page) the memory they share with this process.
        gc.freeze()
        self.executor = ProcessPoolExecutor(
            workers, mp_context=multiprocessing.get_context("fork"), initializer=leave_ctrl_c_to_the_run
        )
        self.executor.submit(int).result()  # with fork, the executor starts all its processes now
        self.processes = [p for p in multiprocessing.active_children() if p not in before]
        self._prefetched: dict[tuple[str, str], Future] = {}

    def prefetch(self, label: str, dofn: beam.DoFn, elements) -> None:
        """Starts `dofn` on `elements` now; the stage of `Pooled(dofn, label)` takes the results
        (so the first stage's work overlaps the building of the pipeline)."""
        payload = pickle.dumps(dofn)
        for element in elements:
            self._prefetched[(label, _key(element))] = self.executor.submit(_run, payload, element)

    def submit(self, label: str, payload: bytes, element) -> Future:
        started = self._prefetched.pop((label, _key(element)), None) if label else None
        return started or self.executor.submit(_run, payload, element)

    def died(self) -> list[str]:
        """'pid N (exit status / signal)' of each worker that ended abnormally."""
        return [
            f"pid {p.pid} ({f'signal {-p.exitcode}' if p.exitcode < 0 else f'exit status {p.exitcode}'})"
            for p in self.processes
            if p.exitcode not in (None, 0)
        ]

    def close(self, failed: bool) -> None:
        """Waits for the workers to end; after a failure (Ctrl-C included) ends them at once."""
        if failed:
            for process in self.processes:
                process.terminate()
        # The executor reaps its processes itself (a second join of one would race with it).
        self.executor.shutdown(wait=True, cancel_futures=True)
        gc.unfreeze()


def _key(element) -> str:
    # Elements are plain values (a file's position and names). Not their pickle: pickling shares a
    # repeated object, and an element decoded by a Beam coder repeats none, so the bytes would differ.
    return repr(element)


_pool: Optional[LocalPool] = None
_workers_dofns: dict[bytes, beam.DoFn] = {}  # in a worker: each DoFn once, set up


@contextlib.contextmanager
def local_pool(workers: int) -> Iterator[LocalPool]:
    """`Pooled` DoFns run their elements on `workers` processes forked now (so fork before this
    process starts threads, and after its slow imports and model loads, which the workers then
    share). A worker that dies fails the run (`RunFailed`, naming it)."""
    from c4clean.pipelines.runner import RunFailed

    global _pool
    pool = _pool = LocalPool(workers)
    failed = True
    try:
        yield pool
        failed = False
    except Exception as error:
        died = pool.died()
        if died:
            raise RunFailed(f"a local worker process died: {', '.join(died)}; nothing was written") from error
        raise
    finally:
        _pool = None
        pool.close(failed)


def _run(payload: bytes, element) -> tuple[list, dict]:
    """In a worker: the outputs of the DoFn `payload` on `element`, and what it counted."""
    dofn = _workers_dofns.get(payload)
    if dofn is None:
        dofn = _workers_dofns[payload] = pickle.loads(payload)
        dofn.setup()
    counting = isinstance(dofn, CountingDoFn)
    if counting:
        dofn.start_bundle()
    outputs = list(dofn.process(element))
    return outputs, dict(dofn._counts) if counting else {}


def _windowed(output):
    if isinstance(output, beam.pvalue.TaggedOutput):
        return beam.pvalue.TaggedOutput(output.tag, GlobalWindows.windowed_value(output.value))
    return GlobalWindows.windowed_value(output)


class Pooled(CountingDoFn):
    """`inner` (a DoFn doing one input file's work per element, in the global window) on the local
    pool when one runs, its outputs in element order; else `inner` itself, here. With `order` (a key
    of an element), the pool starts a bundle's elements in that order once all of them are in."""

    def __init__(self, inner: beam.DoFn, label: str = "", order: Optional[Callable] = None):
        self._inner = inner
        self._label = label  # of its `LocalPool.prefetch`, if any
        self._order = order
        self._payload = b""
        self._pending: collections.deque = collections.deque()
        self._waiting: list = []  # with `order`: the elements not started yet

    def setup(self):
        if _pool is None:
            self._inner.setup()
        else:
            self._payload = pickle.dumps(self._inner)

    def start_bundle(self):
        super().start_bundle()
        self._pending, self._waiting = collections.deque(), []
        if _pool is None and isinstance(self._inner, CountingDoFn):
            self._inner.start_bundle()

    def process(self, element):
        if _pool is None:
            yield from self._inner.process(element)
            return
        if self._order is not None:
            self._waiting.append(element)
            return
        self._pending.append(_pool.submit(self._label, self._payload, element))
        while self._pending and self._pending[0].done():
            yield from self._take()

    def _start_in_order(self) -> None:
        waiting, self._waiting = self._waiting, []
        started = {
            i: _pool.submit(self._label, self._payload, waiting[i])
            for i in sorted(range(len(waiting)), key=lambda i: self._order(waiting[i]))
        }
        self._pending.extend(started[i] for i in range(len(waiting)))  # taken in element order

    def _take(self) -> list:
        outputs, counts = self._pending.popleft().result()
        for key, amount in counts.items():
            self.count(*key, amount)
        return outputs

    def finish_bundle(self):
        self._start_in_order()
        while self._pending:
            for output in self._take():
                yield _windowed(output)
        if _pool is None and isinstance(self._inner, CountingDoFn):
            self._counts = self._inner._counts
        yield from super().finish_bundle()

    def teardown(self):
        if _pool is None:
            self._inner.teardown()
