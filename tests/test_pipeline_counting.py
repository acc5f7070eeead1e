"""Counts as data (`pipelines.counting`): summed exactly over bundles and workers, written even when
nothing was counted; the per-file summary round-trips through its JSON."""

from __future__ import annotations

import json

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.portability.fn_api_runner import FnApiRunner

from c4clean.pipelines.counting import Counted, CountElements, CountingDoFn, WriteCounts
from c4clean.pipelines.perfile import FileSummary


class _Parity(CountingDoFn):
    def process(self, n):
        self.count("parity", "even" if n % 2 == 0 else "odd")
        self.count("parity", "sum", n)
        if n % 3:
            yield n


def test_counts_are_summed_exactly_into_one_file(tmp_path):
    path = tmp_path / "counts.json"
    with beam.Pipeline(runner=FnApiRunner()) as p:
        kept = (
            p
            | beam.Create(range(1000))
            | beam.Reshuffle()
            | "Parity" >> Counted(_Parity())
            | "Kept" >> CountElements("parity", "kept")
        )
        _ = kept | beam.Map(lambda n: n)
        _ = p | "Counts" >> WriteCounts(str(path))
    counts = json.loads(path.read_text())
    kept = sum(1 for n in range(1000) if n % 3)
    assert counts == {"parity": {"even": 500, "kept": kept, "odd": 500, "sum": sum(range(1000))}}


def test_counts_of_two_worker_processes_are_exact(tmp_path):
    path = tmp_path / "counts.json"
    options = PipelineOptions(["--direct_num_workers=2", "--direct_running_mode=multi_processing"])
    with beam.Pipeline(runner=FnApiRunner(), options=options) as p:
        _ = p | beam.Create(range(1000)) | beam.Reshuffle() | CountElements("n", "elements")
        _ = p | "Counts" >> WriteCounts(str(path))
    assert json.loads(path.read_text()) == {"n": {"elements": 1000}}


def test_nothing_counted_still_writes_the_file(tmp_path):
    path = tmp_path / "counts.json"
    with beam.Pipeline(runner=FnApiRunner()) as p:
        _ = p | beam.Create([1, 2]) | beam.Filter(lambda n: False) | Counted(_Parity())
        _ = p | "Counts" >> WriteCounts(str(path))
    assert json.loads(path.read_text()) == {}


def test_file_summary_round_trips_and_totals():
    summary = FileSummary(
        input="a.wet.gz",
        local_path="/tmp/a.wet.gz",
        pages=3,
        counters={"split-wet-file": {"passed": 4, "filtered:no_url": 1}, "too-long-filter": {"passed": 3}},
        issues=[],
        cpu_us={"read": 10},
        identity={"size": 5, "mtime": 1.0},
    )
    again = FileSummary.from_dict(json.loads(summary.to_json()))
    assert again == summary
    assert summary.total("split-wet-file") == 5 and summary.total("split-wet-file", "passed") == 4
    assert summary.total("missing-namespace") == 0
