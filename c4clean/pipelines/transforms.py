"""PTransforms of the C4 recipe's global steps and its ends: staging the input files, the newest
page per URL, the URL-list join and the shards. Each wires functions of `c4clean.cleaning` into
Beam and counts what they decide (as data, see `counting`); none holds a rule of its own. The
per-page steps run inside the per-file passes (`passes`, `steps`).
"""

from __future__ import annotations

import collections
import json
import logging
from typing import Iterable, Optional

import apache_beam as beam

from c4clean.cleaning import reasons
from c4clean.pipelines import early_staging, perfile
from c4clean.pipelines.counting import Counted, CountingDoFn
from c4clean.pipelines.passes import pack_ordinals, read_packs, spill_packs
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
        if early_staging.staged_early(file_position):
            yield (
                file_position,
                perfile.work_paths(self._settings.files_dir, input_id, self._settings.signature)[0],
            )
            return
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
    """[(input id, location)] -> PCollection[(file position, staged file)] (`perfile.staging_elements`)."""

    LABEL = "StageFile"

    def __init__(self, planned, settings: perfile.PerFileSettings, download_cache: Optional[str] = None):
        super().__init__()
        self.elements = perfile.staging_elements(planned)
        self.dofn = _StageFile(settings, download_cache)

    def expand(self, pbegin):
        return (
            pbegin
            | "Inputs" >> beam.Create(self.elements)
            | "SpreadFiles" >> beam.Reshuffle()
            | self.LABEL >> beam.ParDo(Pooled(self.dofn, self.LABEL))
        )


# --- URL dedup -----------------------------------------------------------------------------------

# URL shards per input file: a shard's group then holds about as many URL entries as one file has
# pages, whatever the corpus size.
URL_SHARDS_PER_FILE = 1


def url_shard(url: str, shards: int) -> int:
    """The URL shard of a normalized URL (every copy of a URL, and the URL list's entry, in one)."""
    from c4clean.cleaning.url import url_digest

    return int.from_bytes(url_digest(url)[:4], "big") % shards


def pack_url_entries(file_position: int, entries, shards: int) -> list[tuple[int, bytes]]:
    """A file's (normalized url, `perfile.UrlEntry`) -> (URL shard, pack) for each shard they fall in,
    a pack being the JSON `[file position, [[normalized url, timestamp, ordinal], ...]]`."""
    by_shard: dict[int, list] = {}
    for url, entry in entries:
        by_shard.setdefault(url_shard(url, shards), []).append([url, entry.timestamp, entry.order[1]])
    return [
        (shard, json.dumps([file_position, rows]).encode("utf-8")) for shard, rows in sorted(by_shard.items())
    ]


class _UrlEntries(CountingDoFn):
    """A staged file -> its pages' URL entries (`pack_url_entries`; spilled to `keys_dir` when set,
    see `passes.spill_packs`); counting what the per-file stage counted (also when it was resumed)."""

    def __init__(self, shards: int, keys_dir: Optional[str]):
        self._shards, self._keys_dir = shards, keys_dir

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
        entries = perfile.url_entries(perfile.read_bytes(arrow_path), file_position)
        packs = pack_url_entries(file_position, entries, self._shards)
        yield from spill_packs(packs, self._keys_dir, f"urls-{file_position}.keys")


def _newer(a: Optional[perfile.UrlEntry], b: Optional[perfile.UrlEntry]) -> Optional[perfile.UrlEntry]:
    """`select_newest_page` over two candidates, fed in reading order (`UrlEntry.order`) so that its
    "first seen" tie rule does not depend on bundling (TFDS leaves ties to arrival order; on one
    worker that is reading order, which this reproduces)."""
    from c4clean.cleaning.url import select_newest_page

    if a is None or b is None:
        return a if b is None else b
    first, second = (a, b) if a.order <= b.order else (b, a)
    return first if select_newest_page([first, second]) is first else second


def newest_per_url(packs) -> tuple[dict[str, perfile.UrlEntry], collections.Counter]:
    """URL entry packs (`_UrlEntries`) -> (the newest entry per URL, the number of pages per URL)."""
    newest: dict[str, perfile.UrlEntry] = {}
    pages: collections.Counter = collections.Counter()
    for pack in read_packs(packs):
        file_position, rows = json.loads(pack)
        for url, timestamp, ordinal in rows:
            newest[url] = _newer(newest.get(url), perfile.UrlEntry(timestamp, (file_position, ordinal)))
            pages[url] += 1
    return newest, pages


class _NewestInShard(CountingDoFn):
    """A URL shard's group {"entries": [pack], "listed": [url]} -> (file position, its winners as
    `passes.pack_ordinals`) for each file with a winner: the newest page of each URL, and with a URL
    list (`url_list`) only of the URLs listed; counting URL dedup and the list's join."""

    def __init__(self, url_list: bool):
        self._url_list = url_list

    def process(self, element):
        _, groups = element
        newest, pages = newest_per_url(groups["entries"])
        listed = set(groups["listed"]) if self._url_list else None
        winners: dict[int, list[int]] = {}
        for url, entry in newest.items():
            self.count(reasons.NS_URL_DEDUP, reasons.FILTERED, pages[url] - 1)
            self.count(reasons.NS_URL_DEDUP, reasons.PASSED)
            count_stage(self.count, URL_DEDUP, pages[url], 1)
            if listed is not None:
                kept = url in listed
                self.count(reasons.NS_WEBTEXT, reasons.PASSED if kept else reasons.FILTERED)
                count_stage(self.count, WEBTEXT, 1, int(kept))
                if not kept:
                    continue
            file_position, ordinal = entry.order
            winners.setdefault(file_position, []).append(ordinal)
        for file_position, ordinals in sorted(winners.items()):
            yield file_position, pack_ordinals(ordinals)


class NewestPagePerUrl(beam.PTransform):
    """PCollection[(file position, staged file)] -> (file position, packed ordinals) of the newest
    page per normalized URL (TFDS select_newest_page), and with `url_files` only of the URLs in those
    URL lists (an inner join, as TFDS webtextlike joins on the OpenWebText list).

    Each file's URL entries go to `shards` URL shards, packed (and spilled to `keys_dir` when set);
    a shard's packs and its share of the URL list are grouped and decided in one step, so only
    packs and each file's winners cross a shuffle, never one element per page, and no worker holds
    more than a shard of the URLs or of the list."""

    def __init__(self, shards: int, keys_dir: Optional[str] = None, url_files: Iterable[str] = ()):
        super().__init__()
        self._shards, self._keys_dir = shards, keys_dir
        self._url_files = sorted(url_files)

    def expand(self, files):
        from c4clean.cleaning.url import read_url_list

        groups = {
            "entries": files | "UrlEntries" >> Counted(Pooled(_UrlEntries(self._shards, self._keys_dir)))
        }
        if self._url_files:
            shards = self._shards
            groups["listed"] = (
                files.pipeline
                | "UrlListFiles" >> beam.Create(self._url_files)
                | "ReadUrlLists" >> beam.FlatMap(read_url_list)
                | "ShardListed" >> beam.Map(lambda url: (url_shard(url, shards), url))
            )
        return (
            groups
            | "GroupUrlShards" >> beam.CoGroupByKey()
            | "NewestPerUrl" >> Counted(Pooled(_NewestInShard(bool(self._url_files))))
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
    """PCollection[((split, shard, num shards), ((file position, part), piece path, rows))] (the last
    pass's sorted pieces, `passes.FilePass`) -> shard records. Only these small records are grouped; each
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
