"""PTransforms of the C4 recipe's global steps and its ends: staging the input files, the newest
page per URL, the URL-list join and the shards. Each wires functions of `c4clean.cleaning` into
Beam and counts what they decide (as data, see `counting`); none holds a rule of its own. The
per-page steps run inside the per-file passes (`passes`, `steps`).
"""

from __future__ import annotations

import logging
from typing import Iterable, Optional

import apache_beam as beam

from c4clean.cleaning import reasons
from c4clean.pipelines import perfile
from c4clean.pipelines.counting import Counted, CountingDoFn
from c4clean.pipelines.pool import Pooled
from c4clean.pipelines.steps import DOMAINS, PAGE_RULES, READ, TOO_LONG, URL_DEDUP, WEBTEXT, count_stage

log = logging.getLogger(__name__)


# --- per-input-file stage -------------------------------------------------------------------------


class _StageFile(beam.DoFn):
    """(file position, input id, location) -> (file position, path of its staged pages); downloads
    first for `--cc-dump` URLs."""

    def __init__(self, settings: perfile.PerFileSettings, download_cache: Optional[str]):
        self._settings = settings
        self._download_cache = download_cache
        self._rules = None

    def setup(self):
        self._rules = perfile.PageRules(self._settings)

    def process(self, element):
        file_position, input_id, location = element
        if self._download_cache is not None:
            from c4clean.pipelines.download import DownloadError, download_wet_file

            try:
                location = download_wet_file(location, self._download_cache)
            except DownloadError as error:
                failed = perfile.record_failure(input_id, self._settings, reasons.DOWNLOAD_FAILED, str(error))
                yield file_position, failed
                return
        yield file_position, perfile.run_file(input_id, location, self._rules)


class StageInputFiles(beam.PTransform):
    """[(input id, location)] -> PCollection[(file position, staged file)], the position being the
    input's place among the sorted inputs (`perfile.Staged.order`)."""

    LABEL = "StageFile"

    def __init__(self, planned, settings: perfile.PerFileSettings, download_cache: Optional[str] = None):
        super().__init__()
        self.elements = [(i, input_id, location) for i, (input_id, location) in enumerate(sorted(planned))]
        self.dofn = _StageFile(settings, download_cache)

    def expand(self, pbegin):
        return (
            pbegin
            | "Inputs" >> beam.Create(self.elements)
            | "SpreadFiles" >> beam.Reshuffle()
            | self.LABEL >> beam.ParDo(Pooled(self.dofn, self.LABEL))
        )


class _UrlEntries(CountingDoFn):
    """A staged file -> (normalized url, `perfile.UrlEntry`) of each of its pages, counting what the
    per-file stage counted (also when it was resumed)."""

    def process(self, element):
        file_position, arrow_path = element
        summary = perfile.load_summary(arrow_path)
        for namespace, names in summary.counters.items():
            for name, value in names.items():
                self.count(namespace, name, value)
        read_out = summary.total(reasons.NS_READ, reasons.PASSED)
        length_out = summary.total(reasons.NS_TOO_LONG, reasons.PASSED)
        count_stage(
            self.count, READ, summary.total(reasons.NS_READ), read_out, us=summary.cpu_us.get("read", 0)
        )
        count_stage(self.count, TOO_LONG, read_out, length_out)
        self.count(reasons.NS_STAGES, f"{PAGE_RULES}:us", summary.cpu_us.get("rules", 0))
        if reasons.NS_REALNEWS in summary.counters:
            count_stage(self.count, DOMAINS, length_out, summary.pages)
        yield from perfile.url_entries(perfile.read_bytes(arrow_path), file_position)


def url_entries(files):
    return files | "UrlEntries" >> Counted(Pooled(_UrlEntries()))


# --- URL dedup -----------------------------------------------------------------------------------


def _newer(a: Optional[perfile.UrlEntry], b: Optional[perfile.UrlEntry]) -> Optional[perfile.UrlEntry]:
    """`select_newest_page` over two candidates, fed in reading order (`UrlEntry.order`) so that its
    "first seen" tie rule does not depend on bundling (TFDS leaves ties to arrival order; on one
    worker that is reading order, which this reproduces)."""
    from c4clean.cleaning.url import select_newest_page

    if a is None or b is None:
        return a if b is None else b
    first, second = (a, b) if a.order <= b.order else (b, a)
    return first if select_newest_page([first, second]) is first else second


class _NewestPerUrl(beam.CombineFn):
    """(newest entry, number of pages) per normalized URL."""

    def create_accumulator(self):
        return None, 0

    def add_input(self, accumulator, entry):
        best, n = accumulator
        return _newer(best, entry), n + 1

    def merge_accumulators(self, accumulators):
        best, n = None, 0
        for other, m in accumulators:
            best, n = _newer(best, other), n + m
        return best, n

    def extract_output(self, accumulator):
        return accumulator


class _CountUrlDedup(CountingDoFn):
    def process(self, element):
        url, (best, n) = element
        self.count(reasons.NS_URL_DEDUP, reasons.FILTERED, n - 1)
        self.count(reasons.NS_URL_DEDUP, reasons.PASSED)
        count_stage(self.count, URL_DEDUP, n, 1)
        yield url, best


class SelectNewestPerUrl(beam.PTransform):
    """PCollection[(normalized url, UrlEntry)] -> the newest entry per URL (TFDS select_newest_page)."""

    def expand(self, entries):
        return (
            entries
            | "NewestPerUrl" >> beam.CombinePerKey(_NewestPerUrl())
            | "CountUrlDedup" >> Counted(_CountUrlDedup())
        )


# --- webtextlike ---------------------------------------------------------------------------------


class _JoinWebtext(CountingDoFn):
    def process(self, element):
        url, groups = element
        listed = bool(list(groups["listed"]))
        for entry in groups["entry"]:
            self.count(reasons.NS_WEBTEXT, reasons.PASSED if listed else reasons.FILTERED)
            count_stage(self.count, WEBTEXT, 1, int(listed))
            if listed:
                yield url, entry


class KeepListedUrls(beam.PTransform):
    """PCollection[(normalized url, UrlEntry)] -> those whose URL is in the URL list files (inner join, as
    TFDS joins on the OpenWebText list; the list is never held in one worker's memory)."""

    def __init__(self, url_files: Iterable[str]):
        super().__init__()
        self._url_files = sorted(url_files)

    def expand(self, entries):
        from c4clean.cleaning.url import read_url_list

        listed = (
            entries.pipeline
            | "UrlListFiles" >> beam.Create(self._url_files)
            | "ReadUrlLists" >> beam.FlatMap(read_url_list)
            | "KeyListed" >> beam.Map(lambda url: (url, None))
        )
        return (
            {"entry": entries, "listed": listed}
            | "JoinUrlList" >> beam.CoGroupByKey()
            | "KeepListed" >> Counted(_JoinWebtext())
        )


# --- shards --------------------------------------------------------------------------------------


class _WriteShard(beam.DoFn):
    def __init__(self, directory: str, fmt: str):
        self._directory, self._format = directory, fmt

    def process(self, element):
        from c4clean.pipelines.arrow_sink import merge_pieces, write_rows

        (split, index, total), pieces = element
        paths = [path for _, path, rows in sorted(pieces) if rows]
        merged = merge_pieces(paths, (split, index, total))
        record = write_rows(self._directory, split, index, total, merged, self._format)
        log.info("wrote %s: %d rows from %d pieces", record["file"], record["rows"], len(paths))
        yield record


class WriteShards(beam.PTransform):
    """PCollection[((split, shard, num shards), (file position, piece path, rows))] (the last pass's
    sorted pieces, `passes.FilePass`) -> shard records. Only these small records are grouped; each
    shard is written by a streaming merge of its pieces (a batch per piece in memory), atomically,
    into `staging_dir`, and the driver moves the complete set into the output folder."""

    def __init__(self, staging_dir: str, fmt: str = "arrow"):
        super().__init__()
        self._staging_dir = staging_dir
        self._format = fmt

    def expand(self, pieces):
        return (
            pieces
            | "GroupPieces" >> beam.GroupByKey()
            | "WriteShard" >> beam.ParDo(Pooled(_WriteShard(self._staging_dir, self._format)))
        )
