"""Counts as data: what `stats.json` reports is computed by the pipeline, never read from metrics.

A step counts with `CountingDoFn.count(namespace, name, amount)`. The counts of a bundle are summed
in the DoFn and emitted from `finish_bundle` on a tagged output; `Counted` applies such a DoFn and
hands that output to the pipeline's collection, and `WriteCounts` sums all of them per
(namespace, name) into one JSON file beside the staged shards, which the driver folds into the
stats. A runner keeps a bundle's outputs only when the bundle succeeds, so a retried bundle is
counted once: the totals are exact under retries and the same on every runner and worker count.
Each bundle's totals also go to Beam counters, for live monitoring in a runner's UI only.

    pages | "Step" >> Counted(MyDoFn())           # MyDoFn(CountingDoFn) calls self.count(...)
    pages | "CountIn" >> CountElements(ns, name)  # counts the elements passing through
"""

from __future__ import annotations

import collections
import json
import weakref

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.transforms.window import GlobalWindows

COUNTS = "c4clean-counts"  # the tagged output of a CountingDoFn: ((namespace, name), amount)
_COLLECTED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # pipeline -> [PCollection]


class CountingDoFn(beam.DoFn):
    """A DoFn that counts with `self.count(namespace, name, amount)` from `process`.
    Subclasses that define `start_bundle`/`finish_bundle` must call these ones."""

    def start_bundle(self):
        self._counts = collections.Counter()

    def count(self, namespace: str, name: str, amount: int = 1) -> None:
        if amount:
            self._counts[(namespace, name)] += amount

    def finish_bundle(self):
        for (namespace, name), amount in sorted(self._counts.items()):
            Metrics.counter(namespace, name).inc(amount)
            yield beam.pvalue.TaggedOutput(COUNTS, GlobalWindows.windowed_value(((namespace, name), amount)))
        self._counts = collections.Counter()


def collect(counts) -> None:
    """Adds a PCollection of ((namespace, name), amount) to its pipeline's counts."""
    _COLLECTED.setdefault(counts.pipeline, []).append(counts)


class Counted(beam.PTransform):
    """`ParDo(dofn)` of a CountingDoFn: returns its main output and collects its counts. With
    `tags`, returns all its outputs (`outputs[tag]`, `outputs[main]`) like `ParDo.with_outputs`."""

    def __init__(self, dofn: CountingDoFn, *args, tags: tuple[str, ...] = (), main: str = "main", **kwargs):
        super().__init__()
        self._dofn, self._args, self._kwargs = dofn, args, kwargs
        self._tags, self._main = tuple(tags), main

    def expand(self, pcoll):
        pardo = beam.ParDo(self._dofn, *self._args, **self._kwargs)
        outputs = pcoll | pardo.with_outputs(COUNTS, *self._tags, main=self._main)
        collect(outputs[COUNTS])
        return outputs if self._tags else outputs[self._main]


class _CountThrough(CountingDoFn):
    def __init__(self, namespace: str, name: str):
        self._key = (namespace, name)

    def process(self, element):
        self.count(*self._key)
        yield element


def CountElements(namespace: str, name: str) -> Counted:  # noqa: N802 - used like a PTransform class
    """Passes elements through unchanged, counting them as `namespace`/`name`."""
    return Counted(_CountThrough(namespace, name))


def _write(element, path: str):
    from c4clean.atomic import write_bytes_fs

    _, entries = element
    totals: dict[str, dict[str, int]] = collections.defaultdict(dict)
    for entry in entries:
        if entry is not None:
            (namespace, name), amount = entry
            totals[namespace][name] = amount
    data = {ns: dict(sorted(names.items())) for ns, names in sorted(totals.items())}
    write_bytes_fs(path, (json.dumps(data, indent=1, sort_keys=True) + "\n").encode("utf-8"))
    yield path


class WriteCounts(beam.PTransform):
    """Applied to the pipeline once every step is built: sums the collected counts and writes
    {namespace: {name: total}} to `path` (also when nothing was counted)."""

    def __init__(self, path: str):
        super().__init__()
        self._path = path

    def expand(self, pbegin):
        pipeline = pbegin.pipeline
        parts = list(_COLLECTED.pop(pipeline, []))
        if parts:
            summed = tuple(parts) | "FlattenCounts" >> beam.Flatten() | "SumCounts" >> beam.CombinePerKey(sum)
            parts = [summed]
        # A marker element makes the final group exist even when nothing was counted.
        parts.append(pipeline | "Marker" >> beam.Create([None]))
        return (
            tuple(parts)
            | "WithMarker" >> beam.Flatten()
            | "OneGroup" >> beam.Map(lambda entry: (None, entry))
            | "Gather" >> beam.GroupByKey()
            | "Write" >> beam.FlatMap(_write, path=self._path)
        )
