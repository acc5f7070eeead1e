"""PTransforms of the C4 recipe. Each wires functions of `c4clean.cleaning` into Beam and counts
what they decide (as data, see `counting`); none holds a rule of its own.

Every stage also counts pages in, pages out, text bytes out and CPU microseconds spent under
`reasons.NS_STAGES` (`<stage>:in`, `:out`, `:bytes`, `:us`), which the run summary table reads.
"""

from __future__ import annotations

import logging
import time
from typing import Iterable, Optional

import apache_beam as beam

from c4clean.cleaning import reasons
from c4clean.cleaning.page import Page
from c4clean.pipelines import perfile
from c4clean.pipelines.counting import Counted, CountElements, CountingDoFn

log = logging.getLogger(__name__)

# Stage names of the summary table, in pipeline order.
READ = "read"
TOO_LONG = "length filter"
DOMAINS = "domain filter"
URL_DEDUP = "url dedup"
WEBTEXT = "webtext urls"
PAGE_RULES = "clean_page"  # or the paragraph filter (multilingual)
DEDUP_LINES = "line dedup"
NEAR_DEDUP = "near dedup"
LANGUAGE = "language id"
BADWORDS = "bad words"
SPLIT = "split"
STAGE_ORDER = (
    READ,
    TOO_LONG,
    DOMAINS,
    URL_DEDUP,
    WEBTEXT,
    PAGE_RULES,
    NEAR_DEDUP,
    DEDUP_LINES,
    LANGUAGE,
    BADWORDS,
    SPLIT,
)


def _text_bytes(page: Page) -> int:
    return len(page.text.encode("utf-8"))


class _StageCounts(CountingDoFn):
    def count_stage(self, stage: str, pages_in: int, pages_out: int, bytes_out: int = 0, us: int = 0):
        self.count(reasons.NS_STAGES, f"{stage}:in", pages_in)
        self.count(reasons.NS_STAGES, f"{stage}:out", pages_out)
        self.count(reasons.NS_STAGES, f"{stage}:bytes", bytes_out)
        self.count(reasons.NS_STAGES, f"{stage}:us", us)  # CPU microseconds (ms would round to 0)


class _Stage(_StageCounts):
    """A page stage (apply it with `Counted`); subclasses define `apply(element)`, an iterable of
    outputs, and count their reasons with `self.count`. Pages in/out, bytes and time are counted
    around it, and one log line per bundle reports progress. An element is one page, or a batch of
    pages where the subclass says so with `pages_in`."""

    stage = ""

    def start_bundle(self):
        super().start_bundle()
        self._bundle = [0, 0, 0.0]

    @staticmethod
    def pages_in(element) -> int:
        return 1

    def process(self, element):
        start = time.thread_time()
        outputs = list(self.apply(element))
        elapsed = time.thread_time() - start
        pages_in = self.pages_in(element)
        self.count_stage(
            self.stage,
            pages_in,
            len(outputs),
            sum(_text_bytes(self.page_of(o)) for o in outputs),
            int(elapsed * 1e6),
        )
        self._bundle[0] += pages_in
        self._bundle[1] += len(outputs)
        self._bundle[2] += elapsed
        yield from outputs

    def finish_bundle(self):
        if self._bundle[0]:
            log.info("%s: %d pages in, %d out (%.1fs)", self.stage, *self._bundle)
        yield from super().finish_bundle()

    @staticmethod
    def page_of(output) -> Page:
        return output


# --- per-input-file stage -------------------------------------------------------------------------


class _StageFile(beam.DoFn):
    """(input id, location) -> path of its staged pages; downloads first for `--cc-dump` URLs."""

    def __init__(self, settings: perfile.PerFileSettings, download_cache: Optional[str]):
        self._settings = settings
        self._download_cache = download_cache
        self._rules = None

    def setup(self):
        self._rules = perfile.PageRules(self._settings)

    def process(self, element):
        input_id, location = element
        if self._download_cache is not None:
            from c4clean.pipelines.download import DownloadError, download_wet_file

            try:
                location = download_wet_file(location, self._download_cache)
            except DownloadError as error:
                yield perfile.record_failure(input_id, self._settings, reasons.DOWNLOAD_FAILED, str(error))
                return
        yield perfile.run_file(input_id, location, self._rules)


class _LoadStaged(_StageCounts):
    """Staged pages of one file, re-counting what the per-file stage counted (also when resumed)."""

    def __init__(self, positions: dict[str, int]):
        self._positions = positions

    def process(self, arrow_path):
        summary, staged = perfile.load(arrow_path, self._positions)
        for namespace, names in summary.counters.items():
            for name, value in names.items():
                self.count(namespace, name, value)
        read_out = summary.total(reasons.NS_READ, reasons.PASSED)
        length_out = summary.total(reasons.NS_TOO_LONG, reasons.PASSED)
        self.count_stage(READ, summary.total(reasons.NS_READ), read_out, us=summary.cpu_us.get("read", 0))
        self.count_stage(TOO_LONG, read_out, length_out)
        self.count(reasons.NS_STAGES, f"{PAGE_RULES}:us", summary.cpu_us.get("rules", 0))
        if reasons.NS_REALNEWS in summary.counters:
            self.count_stage(DOMAINS, length_out, summary.pages)
        yield from staged


class StageInputFiles(beam.PTransform):
    """[(input id, location)] -> PCollection[perfile.Staged]."""

    def __init__(self, planned, settings: perfile.PerFileSettings, download_cache: Optional[str] = None):
        super().__init__()
        self._planned = sorted(planned)
        self._settings = settings
        self._download_cache = download_cache

    def expand(self, pbegin):
        positions = {input_id: i for i, (input_id, _) in enumerate(self._planned)}
        return (
            pbegin
            | "Inputs" >> beam.Create(self._planned)
            | "SpreadFiles" >> beam.Reshuffle()
            | "StageFile" >> beam.ParDo(_StageFile(self._settings, self._download_cache))
            | "SpreadStaged" >> beam.Reshuffle()
            | "LoadStaged" >> Counted(_LoadStaged(positions))
        )


# --- URL dedup -----------------------------------------------------------------------------------


def _newer(a: Optional[perfile.Staged], b: Optional[perfile.Staged]) -> Optional[perfile.Staged]:
    """`select_newest_page` over two candidates, fed in reading order (`Staged.order`) so that its
    "first seen" tie rule does not depend on bundling (TFDS leaves ties to arrival order; on one
    worker that is reading order, which this reproduces)."""
    from c4clean.cleaning.url import select_newest_page

    if a is None or b is None:
        return a if b is None else b
    first, second = (a, b) if a.order <= b.order else (b, a)
    return first if select_newest_page([first.page, second.page]) is first.page else second


class _NewestPerUrl(beam.CombineFn):
    """(newest staged page, number of pages) per normalized URL."""

    def create_accumulator(self):
        return None, 0

    def add_input(self, accumulator, staged):
        best, n = accumulator
        return _newer(best, staged), n + 1

    def merge_accumulators(self, accumulators):
        best, n = None, 0
        for other, m in accumulators:
            best, n = _newer(best, other), n + m
        return best, n

    def extract_output(self, accumulator):
        return accumulator


class _CountUrlDedup(_StageCounts):
    def process(self, element):
        _, (best, n) = element
        self.count(reasons.NS_URL_DEDUP, reasons.FILTERED, n - 1)
        self.count(reasons.NS_URL_DEDUP, reasons.PASSED)
        self.count_stage(URL_DEDUP, n, 1)
        yield best


class SelectNewestPerUrl(beam.PTransform):
    """PCollection[Staged] -> one Staged per normalized URL, the newest (TFDS select_newest_page)."""

    def expand(self, staged):
        return (
            staged
            | "KeyByNormalizedUrl" >> beam.Map(lambda s: (s.page.normalized_url, s))
            | "NewestPerUrl" >> beam.CombinePerKey(_NewestPerUrl())
            | "CountUrlDedup" >> Counted(_CountUrlDedup())
        )


# --- webtextlike ---------------------------------------------------------------------------------


class _JoinWebtext(_StageCounts):
    def process(self, element):
        _, groups = element
        listed = bool(list(groups["listed"]))
        for staged in groups["staged"]:
            self.count(reasons.NS_WEBTEXT, reasons.PASSED if listed else reasons.FILTERED)
            self.count_stage(WEBTEXT, 1, int(listed))
            if listed:
                yield staged


class KeepListedUrls(beam.PTransform):
    """PCollection[Staged] -> those whose normalized URL is in the URL list files (inner join, as
    TFDS joins on the OpenWebText list; the list is never held in one worker's memory)."""

    def __init__(self, url_files: Iterable[str]):
        super().__init__()
        self._url_files = sorted(url_files)

    def expand(self, staged):
        from c4clean.cleaning.url import read_url_list

        listed = (
            staged.pipeline
            | "UrlListFiles" >> beam.Create(self._url_files)
            | "ReadUrlLists" >> beam.FlatMap(read_url_list)
            | "KeyListed" >> beam.Map(lambda url: (url, None))
        )
        keyed = staged | "KeyForJoin" >> beam.Map(lambda s: (s.page.normalized_url, s))
        return (
            {"staged": keyed, "listed": listed}
            | "JoinUrlList" >> beam.CoGroupByKey()
            | "KeepListed" >> Counted(_JoinWebtext())
        )


# --- per-page verdicts of the per-file stage, applied in C4's position ------------------------------


class _ApplyStagedVerdict(_Stage):
    stage = PAGE_RULES

    def __init__(self, namespace: Optional[str]):
        self._namespace = namespace  # NS_CLEAN, NS_PARAGRAPH, or None when the recipe has neither

    def apply(self, staged: perfile.Staged):
        namespace = staged.drop[0] if staged.drop else self._namespace
        for name, value in staged.counts.items():
            self.count(namespace, name, value)
        if staged.drop is None:
            yield staged.page


def apply_staged_verdicts(staged, namespace: Optional[str]):
    if namespace is None:
        return staged | "UnwrapStaged" >> beam.Map(lambda s: s.page)
    return staged | "ApplyPageRules" >> Counted(_ApplyStagedVerdict(namespace))


# --- global line dedup ---------------------------------------------------------------------------


class _RemoveLines(_Stage):
    stage = DEDUP_LINES

    def __init__(self, min_num_sentences: int):
        self._min_num_sentences = min_num_sentences

    def apply(self, element):
        from c4clean.cleaning.dedup_lines import remove_lines

        url, groups = element
        keep = set(groups["keep"])
        for page in groups["page"]:
            result = remove_lines(page, keep, self._min_num_sentences)
            for name, value in result.counts.items():
                self.count(reasons.NS_DEDUP_LINES, name, value)
            if result.page is not None:
                yield result.page


class DedupLines(beam.PTransform):
    """TFDS `remove_duplicate_text`: each line is kept by one page only (the smallest md5(url)),
    repeats inside a page go, then pages with too few sentences go.

    The owner of a line is combined per line key (associative `pick_line_owner`), so no step holds
    the list of all URLs sharing a line; pages then meet the set of line keys they own.
    """

    def __init__(self, min_num_sentences: int):
        super().__init__()
        self._min_num_sentences = min_num_sentences

    def expand(self, pages):
        from c4clean.cleaning.dedup_lines import emit_line_keys, pick_line_owner

        owned = (
            pages
            | "EmitLineKeys" >> beam.FlatMap(emit_line_keys)
            | "PickLineOwner" >> beam.CombinePerKey(pick_line_owner)
            | "KeyByOwner" >> beam.Map(lambda kv: (kv[1], kv[0]))
        )
        keyed = pages | "KeyByUrl" >> beam.Map(lambda p: (p.url, p))
        return (
            {"page": keyed, "keep": owned}
            | "JoinOwnedLines" >> beam.CoGroupByKey()
            | "RemoveLines" >> Counted(_RemoveLines(self._min_num_sentences))
        )


# --- near dedup (`pipelines/near_dedup.py`), counted at its edges like the other stages ------------


class _CountPagesOut(_StageCounts):
    def __init__(self, stage: str):
        self._stage = stage

    def process(self, page):
        self.count_stage(self._stage, 0, 1, _text_bytes(page))
        yield page


class NearDedup(beam.PTransform):
    def __init__(self, threshold: float, num_perm: int, ngram: int, **options):
        super().__init__()
        self._args = dict(threshold=threshold, num_perm=num_perm, ngram=ngram, **options)

    def expand(self, pages):
        from c4clean.pipelines.near_dedup import RemoveNearDuplicates

        return (
            pages
            | "CountNearDedupIn" >> CountElements(reasons.NS_STAGES, f"{NEAR_DEDUP}:in")
            | "RemoveNearDuplicates" >> RemoveNearDuplicates(**self._args)
            | "CountNearDedupOut" >> Counted(_CountPagesOut(NEAR_DEDUP))
        )


# --- language id ---------------------------------------------------------------------------------


class _DetectEnglishBatch(_Stage):
    """`english_verdicts` over a batch: the same verdicts as page by page, about twice as fast
    (langdetect's random walks of many pages advance together)."""

    stage = LANGUAGE
    pages_in = staticmethod(len)

    def apply(self, batch):
        from c4clean.cleaning.langid import english_verdicts

        for verdict in english_verdicts(batch):
            for name in verdict.counters:
                self.count(reasons.NS_ENGLISH, name)
            if verdict.page is not None:
                yield verdict.page


class DetectEnglish(beam.PTransform):
    """TFDS `detect_english` (langdetect, p >= 0.99): English pages only, labelled "en"."""

    def expand(self, pages):
        return (
            pages
            | "Batch" >> beam.BatchElements(min_batch_size=32, max_batch_size=512)
            | "Detect" >> Counted(_DetectEnglishBatch())
        )


class DetectLanguage(_Stage):
    """Multilingual (TFDS `detect_languages`): every page labelled with its language, `und` when
    unsure; with cld3, pages in a reliable language outside mC4's list are dropped."""

    stage = LANGUAGE

    def __init__(self, backend: str = "cld3"):
        self._backend = backend

    def apply(self, page: Page):
        if self._backend == "cld3":
            from c4clean.cleaning.cld3 import language_verdict
        else:
            from c4clean.cleaning.langid import language_verdict

        verdict = language_verdict(page.text)
        for name in verdict.counters:
            self.count(reasons.NS_LANGUAGE, name)
        if verdict.language is not None:
            yield page.replace(language=verdict.language)


# --- bad words -----------------------------------------------------------------------------------


class FilterBadwords(_Stage):
    stage = BADWORDS

    def __init__(self, filter_fraction: float):
        self._filter_fraction = filter_fraction
        self._filter = None

    def setup(self):
        from c4clean.cleaning.badwords import BadwordsFilter

        self._filter = BadwordsFilter(self._filter_fraction)

    def apply(self, page: Page):
        decision = self._filter(page)
        self.count(reasons.NS_BADWORDS, decision.reason)
        namespace = self._filter.language_namespace(page)
        if namespace is not None:
            self.count(namespace, decision.reason)
        if decision.keep:
            yield page


# --- split ---------------------------------------------------------------------------------------


class AssignSplit(_Stage):
    """(split, page): validation iff md5(normalized_url) % 1000 == 0; multilingual splits are
    `<lang>` and `<lang>-validation`, as mC4 names them."""

    stage = SPLIT

    def __init__(self, english_only: bool):
        self._english_only = english_only

    def apply(self, page: Page):
        from c4clean.cleaning.url import TRAIN, split_for_url
        from c4clean.pipelines.histograms import counter_names

        split = split_for_url(page.normalized_url)
        for name in counter_names(page.text, "after"):
            self.count(reasons.NS_HISTOGRAMS, name)
        if not self._english_only:
            split = page.language if split == TRAIN else f"{page.language}-{split}"
        self.count(reasons.NS_SPLIT, split)
        yield split, page

    @staticmethod
    def page_of(output) -> Page:
        return output[1]


# --- shards --------------------------------------------------------------------------------------


def _write_group(element, directory: str, fmt: str):
    from c4clean.pipelines.arrow_sink import write_shard

    (split, index, total), pages = element
    record = write_shard(directory, split, index, total, pages, fmt)
    log.info("wrote %s: %d rows", record["file"], record["rows"])
    yield record


class WriteShards(beam.PTransform):
    """PCollection[(split, page)] -> shard records; each shard is written (atomically, sorted by
    URL) into `staging_dir`, and the driver moves the complete set into the output folder."""

    def __init__(self, staging_dir: str, shards_for, fmt: str = "arrow"):
        super().__init__()
        self._staging_dir = staging_dir
        self._shards_for = shards_for
        self._format = fmt

    def expand(self, split_pages):
        from c4clean.pipelines.arrow_sink import shard_of

        shards_for = self._shards_for

        def key(element):
            split, page = element
            n = shards_for(split)
            return (split, shard_of(page.url, n), n), page

        return (
            split_pages
            | "KeyByShard" >> beam.Map(key)
            | "GroupShard" >> beam.GroupByKey()
            | "WriteShard" >> beam.FlatMap(_write_group, directory=self._staging_dir, fmt=self._format)
        )
