"""The per-page steps of the recipe after the global dedups, and how each is counted.

A step wires functions of `c4clean.cleaning` to a `count(namespace, name, amount=1)` callback and
holds no rule of its own. The per-file passes (`passes`) run the steps page by page inside one
DoFn, so pages do not travel between Beam steps; `run_step` counts, for every step, pages in, pages
out, text bytes out and CPU microseconds under `reasons.NS_STAGES` (`<stage>:in`, `:out`, `:bytes`,
`:us`), which the run summary table reads.
"""

from __future__ import annotations

import abc
import time
from typing import Callable, Iterable

from c4clean.cleaning import reasons
from c4clean.cleaning.page import Page

Count = Callable[..., None]  # count(namespace, name, amount=1)

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

# English language id runs on batches of this many pages (langdetect's walks advance together).
LANGID_BATCH = 512


def text_bytes(page: Page) -> int:
    return len(page.text.encode("utf-8"))


def count_stage(count: Count, stage: str, pages_in: int, pages_out: int, bytes_out: int = 0, us: int = 0):
    count(reasons.NS_STAGES, f"{stage}:in", pages_in)
    count(reasons.NS_STAGES, f"{stage}:out", pages_out)
    count(reasons.NS_STAGES, f"{stage}:bytes", bytes_out)
    count(reasons.NS_STAGES, f"{stage}:us", us)  # CPU microseconds (ms would round to 0)


class Step(abc.ABC):
    """A page step: `apply(element, count)` yields its outputs and counts its reasons. An element is
    one page, or a batch of pages where `pages_in` says so."""

    stage = ""
    batched = False

    def pages_in(self, element) -> int:
        return len(element) if self.batched else 1

    def page_of(self, output) -> Page:
        return output

    @abc.abstractmethod
    def apply(self, element, count: Count) -> Iterable:
        """The outputs for `element`; reasons go to `count(namespace, name, amount=1)`."""


def run_step(step: Step, element, count: Count) -> list:
    """The outputs of `step` on `element`, with its stage counts (pages, bytes, CPU time)."""
    start = time.thread_time()
    outputs = list(step.apply(element, count))
    elapsed = time.thread_time() - start
    bytes_out = sum(text_bytes(step.page_of(o)) for o in outputs)
    count_stage(count, step.stage, step.pages_in(element), len(outputs), bytes_out, int(elapsed * 1e6))
    return outputs


def run_steps(steps: list[Step], pages: list, count: Count) -> list:
    """`pages` through each step in turn; a batched step gets them in batches of `LANGID_BATCH`."""
    for step in steps:
        elements = (
            [pages[i : i + LANGID_BATCH] for i in range(0, len(pages), LANGID_BATCH)]
            if step.batched
            else pages
        )
        pages = [output for element in elements for output in run_step(step, element, count)]
    return pages


class ApplyStagedVerdict(Step):
    """The verdict of the per-page rule staged per file (`perfile.Staged`), applied and counted in
    C4's position (after URL dedup)."""

    stage = PAGE_RULES

    def __init__(self, namespace: str):
        self._namespace = namespace  # NS_CLEAN or NS_PARAGRAPH

    def apply(self, staged, count: Count):
        namespace = staged.drop[0] if staged.drop else self._namespace
        for name, value in staged.counts.items():
            count(namespace, name, value)
        if staged.drop is None:
            yield staged.page


class RemoveLines(Step):
    """TFDS `_remove_lines_from_text` with the line keys a page lost to other pages."""

    stage = DEDUP_LINES

    def __init__(self, min_num_sentences: int):
        self._min_num_sentences = min_num_sentences

    def apply(self, element, count: Count):
        from c4clean.cleaning.dedup_lines import remove_lost_lines

        page, lost = element
        result = remove_lost_lines(page, lost, self._min_num_sentences)
        for name, value in result.counts.items():
            count(reasons.NS_DEDUP_LINES, name, value)
        if result.page is not None:
            yield result.page


class DetectEnglish(Step):
    """TFDS `detect_english` (langdetect, p >= 0.99) over a batch of pages: English pages only.
    `english_verdicts` gives the same verdicts as page by page, about twice as fast."""

    stage = LANGUAGE
    batched = True

    def apply(self, batch, count: Count):
        from c4clean.cleaning.langid import english_verdicts

        for verdict in english_verdicts(batch):
            for name in verdict.counters:
                count(reasons.NS_ENGLISH, name)
            if verdict.page is not None:
                yield verdict.page


class DetectLanguage(Step):
    """Multilingual (TFDS `detect_languages`): every page labelled with its language, `und` when
    unsure; with cld3, pages in a reliable language outside mC4's list are dropped."""

    stage = LANGUAGE

    def __init__(self, backend: str = "cld3"):
        self._backend = backend

    def apply(self, page: Page, count: Count):
        if self._backend == "cld3":
            from c4clean.cleaning.cld3 import language_verdict
        else:
            from c4clean.cleaning.langid import language_verdict

        verdict = language_verdict(page.text)
        for name in verdict.counters:
            count(reasons.NS_LANGUAGE, name)
        if verdict.language is not None:
            yield page.replace(language=verdict.language)


class FilterBadwords(Step):
    stage = BADWORDS

    def __init__(self, filter_fraction: float):
        from c4clean.cleaning.badwords import BadwordsFilter

        self._filter = BadwordsFilter(filter_fraction)

    def apply(self, page: Page, count: Count):
        decision = self._filter(page)
        count(reasons.NS_BADWORDS, decision.reason)
        namespace = self._filter.language_namespace(page)
        if namespace is not None:
            count(namespace, decision.reason)
        if decision.keep:
            yield page


class AssignSplit(Step):
    """(split, page): validation iff md5(normalized_url) % 1000 == 0; multilingual splits are
    `<lang>` and `<lang>-validation`, as mC4 names them."""

    stage = SPLIT

    def __init__(self, english_only: bool):
        self._english_only = english_only

    def apply(self, page: Page, count: Count):
        from c4clean.cleaning.url import TRAIN, split_for_url
        from c4clean.pipelines.histograms import counter_names

        split = split_for_url(page.normalized_url)
        for name in counter_names(page.text, "after"):
            count(reasons.NS_HISTOGRAMS, name)
        if not self._english_only:
            split = page.language if split == TRAIN else f"{page.language}-{split}"
        count(reasons.NS_SPLIT, split)
        yield split, page

    def page_of(self, output) -> Page:
        return output[1]


def final_steps(recipe, language_id: str) -> list[Step]:
    """The steps after the global dedups: language id, [bad words], split."""
    steps: list[Step] = [DetectEnglish() if recipe.english_only else DetectLanguage(language_id)]
    if recipe.badwords_fraction > 0.0:
        steps.append(FilterBadwords(recipe.badwords_fraction))
    steps.append(AssignSplit(recipe.english_only))
    return steps
