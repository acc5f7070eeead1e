"""What Beam's FnApiRunner (the local runner of `c4clean run`) holds in the driver between stages.

The FnApiRunner runs a pipeline stage by stage: every PCollection that crosses a stage boundary is
kept whole in the driver process (a `ListBuffer` of encoded bytes, or for a GroupByKey a
`GroupingBuffer` holding the grouped table) until the stage that reads it has run. That memory grows
with the corpus whatever the pipeline's steps do. This script runs `c4clean run` in this process with
both buffer classes instrumented, samples the encoded bytes of every live buffer each `SAMPLE_S`
seconds, and prints the peak total and the buffers that made it, by the name of the PCollection (or
of the GroupByKey) they hold.

    python benchmarks/runner_buffers.py --input ../shared/data/wet/bench --output /tmp/out --workers 2

Arguments are those of `c4clean run`. The figures are encoded bytes (what the runner stores); a
`GroupingBuffer` keeps decoded values until it is read, which take more than their encoding.
"""

from __future__ import annotations

import atexit
import runpy
import sys
import threading
import time
import weakref

from apache_beam.runners.portability.fn_api_runner import execution

SAMPLE_S = 0.5
_buffers: weakref.WeakSet = weakref.WeakSet()
_peak = {"total": 0, "at_s": 0.0, "by_name": {}}
_timeline: list = []  # (seconds, driver RSS MiB, buffers MiB, largest buffer) when either moved
_start = time.perf_counter()


def _instrument() -> None:
    for cls in (execution.ListBuffer, execution.GroupingBuffer):
        original_init = cls.__init__

        def init(self, *args, _original=original_init, **kwargs):
            _original(self, *args, **kwargs)
            self._bench_name = "?"
            self._bench_appended = 0
            _buffers.add(self)

        cls.__init__ = init

    grouping_append = execution.GroupingBuffer.append

    def append(self, elements_data, _original=grouping_append):
        self._bench_appended += len(elements_data)
        _original(self, elements_data)

    execution.GroupingBuffer.append = append

    get_buffer = execution.BundleContextManager.get_buffer

    def named_get_buffer(self, buffer_id, transform_id, _original=get_buffer):
        buffer = _original(self, buffer_id, transform_id)
        if getattr(buffer, "_bench_name", "?") == "?":
            kind, name = execution.split_buffer_id(buffer_id)
            components = self.execution_context.pipeline_components
            if kind == "group" and name in components.transforms:
                name = components.transforms[name].unique_name
            elif name in components.pcollections:
                name = components.pcollections[name].unique_name
            buffer._bench_name = f"{kind}: {name}"
        return buffer

    execution.BundleContextManager.get_buffer = named_get_buffer


def _held(buffer) -> int:
    """Encoded bytes a buffer holds now (a copy's chunks are counted by the caller once)."""
    if isinstance(buffer, execution.GroupingBuffer):
        grouped = buffer._grouped_output
        if grouped:
            return sum(len(chunk) for part in grouped for chunk in part)
        return buffer._bench_appended if buffer._table else 0
    return 0  # ListBuffer: its chunks are counted in _sample, shared chunks once


def _sample() -> None:
    seen: set[int] = set()
    by_name: dict[str, int] = {}
    for buffer in list(_buffers):
        size = _held(buffer)
        if isinstance(buffer, execution.ListBuffer):
            chunks = list(buffer._inputs) + [c for part in (buffer._grouped_output or []) for c in part]
            for chunk in chunks:
                if id(chunk) not in seen:
                    seen.add(id(chunk))
                    size += len(chunk)
        if size:
            by_name[buffer._bench_name] = by_name.get(buffer._bench_name, 0) + size
    total = sum(by_name.values())
    now = time.perf_counter() - _start
    if total > _peak["total"]:
        _peak.update(total=total, at_s=now, by_name=by_name)
    rss, held = _rss_mib(), total / 2**20
    if not _timeline or abs(rss - _timeline[-1][1]) >= 10 or abs(held - _timeline[-1][2]) >= 5:
        largest = max(by_name, key=by_name.get) if by_name else ""
        _timeline.append((now, rss, held, largest))


def _rss_mib() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024


def _sampler() -> None:
    while True:
        time.sleep(SAMPLE_S)
        try:
            _sample()
        except RuntimeError:  # a buffer changed size while read: take the next sample
            pass


def _report() -> None:
    mib = 1024 * 1024
    print(
        f"\nFnApiRunner buffers in the driver: peak {_peak['total'] / mib:.1f} MiB encoded, "
        f"{_peak['at_s']:.0f} s into the run (sampled every {SAMPLE_S} s); held at that point:",
        file=sys.stderr,
    )
    for name, size in sorted(_peak["by_name"].items(), key=lambda kv: -kv[1]):
        print(f"  {size / mib:8.1f} MiB  {name}", file=sys.stderr)
    print("\ndriver RSS against buffers over the run (s, RSS MiB, buffers MiB, largest):", file=sys.stderr)
    for at, rss, held, largest in _timeline:
        print(f"  {at:6.1f} {rss:7.0f} {held:7.1f}  {largest}", file=sys.stderr)


def main() -> None:
    _instrument()
    threading.Thread(target=_sampler, daemon=True).start()
    atexit.register(_report)
    sys.argv = ["c4clean", "run", *sys.argv[1:]]
    runpy.run_module("c4clean.cli", run_name="__main__")


if __name__ == "__main__":
    main()
