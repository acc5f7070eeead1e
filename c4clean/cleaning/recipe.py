"""The per-page recipe: the ordered steps one page goes through for a variant, defined once.

Each step is a namespace (its counter namespace in `reasons.py`) and a function Page -> `Verdict`.
`c4clean explain`, the per-file stage of the pipeline (`pipelines/perfile.py`) and
`benchmarks/bench_cleaning_core.py` all take their rules from here, so the order exists once.

C4's order with the corpus-level stages, which need every page and are wired in
`pipelines/pipeline.py`, shown in brackets:

    length -> domains -> [URL dedup] -> clean | paragraph -> [near dedup, line dedup]
    -> english | language -> badwords

`where` says where the pipeline runs a step: `FILE` at read time in the per-file stage, `STAGED`
computed in the per-file stage and applied after URL dedup (the rule depends on the page alone, so
the verdict can travel with it), `LATE` after the corpus-level stages, on batches of pages
(`apply_many`, the same verdicts faster).
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Mapping, Optional, Sequence

from c4clean.cleaning import reasons
from c4clean.cleaning.page import Decision, Page

FILE = "file"
STAGED = "staged"
LATE = "late"


@dataclasses.dataclass(frozen=True)
class Verdict:
    """One step's outcome for one page.

    `page`: the page to go on with (its text may be cleaned, its language set), None if dropped.
    `reason`: PASSED (or SOFT_PASSED) or the code that dropped the page. `counts`: the counter names
    of the step's namespace to increment, as TFDS increments them. `dropped_lines`: (line, code) of
    every line a line-level step removed."""

    page: Optional[Page]
    reason: str
    counts: Mapping[str, int]
    dropped_lines: tuple = ()

    @property
    def keep(self) -> bool:
        return self.page is not None


@dataclasses.dataclass(frozen=True)
class Step:
    name: str  # short stage name, as in the run summary
    namespace: str
    apply: Callable[[Page], Verdict]
    where: str  # FILE, STAGED or LATE
    apply_many: Optional[Callable[[Sequence[Page]], list]] = None  # batched form of `apply`


def prepare(page: Page) -> Page:
    """A page as it enters the steps: with its normalized URL (URL dedup, splits, domains use it)."""
    from c4clean.cleaning.url import normalize_url

    return page.replace(normalized_url=normalize_url(page.url))


def _decision_step(name: str, namespace: str, rule: Callable[[Page], Decision], where: str) -> Step:
    def apply(page: Page) -> Verdict:
        decision = rule(page)
        return Verdict(page if decision.keep else None, decision.reason, {decision.reason: 1})

    return Step(name, namespace, apply, where)


def _clean(page: Page) -> Verdict:
    from c4clean.cleaning.rules import clean_page

    result = clean_page(page)
    return Verdict(result.page, result.reason, dict(result.counts), tuple(result.dropped_lines))


def _english_verdict(verdict) -> Verdict:
    return Verdict(verdict.page, verdict.reason, {name: 1 for name in verdict.counters})


def _english(page: Page) -> Verdict:
    from c4clean.cleaning.langid import english_verdict

    return _english_verdict(english_verdict(page))


def _english_many(pages: Sequence[Page]) -> list:
    from c4clean.cleaning.langid import english_verdicts

    return [_english_verdict(v) for v in english_verdicts(pages)]


def _language_step(backend: str) -> Step:
    def apply(page: Page) -> Verdict:
        if backend == "cld3":
            from c4clean.cleaning.cld3 import language_verdict
        else:
            from c4clean.cleaning.langid import language_verdict
        verdict = language_verdict(page.text)
        kept = None if verdict.language is None else page.replace(language=verdict.language)
        reason = reasons.PASSED if kept is not None else (verdict.counters or (reasons.FILTERED,))[-1]
        return Verdict(kept, reason, {name: 1 for name in verdict.counters})

    return Step("language", reasons.NS_LANGUAGE, apply, LATE)


def _badwords_step(fraction: float) -> Step:
    from c4clean.cleaning.badwords import BadwordsFilter

    badwords = BadwordsFilter(fraction)

    def apply(page: Page) -> Verdict:
        decision = badwords(page)
        return Verdict(page if decision.keep else None, decision.reason, {decision.reason: 1})

    return Step("badwords", reasons.NS_BADWORDS, apply, LATE)


def page_steps(
    recipe,
    domain_filter=None,
    language_id: str = "langdetect",
    where: Sequence[str] = (FILE, STAGED, LATE),
) -> tuple[Step, ...]:
    """The steps of a variant's recipe (`pipelines.options.Recipe`: its `clean`, `paragraph_filter`,
    `english_only` and `badwords_fraction` flags), in order, restricted to those run `where`.

    `domain_filter`: a `url.DomainFilter` (realnewslike or `--domains`), or None.
    `language_id`: the multilingual variant's backend, "cld3" or "langdetect"."""
    from c4clean.cleaning import rules

    steps = [_decision_step("length", reasons.NS_TOO_LONG, rules.is_valid_length, FILE)]
    if domain_filter is not None:
        steps.append(_decision_step("domains", reasons.NS_REALNEWS, domain_filter, FILE))
    if recipe.clean:
        steps.append(Step("clean", reasons.NS_CLEAN, _clean, STAGED))
    elif recipe.paragraph_filter:
        steps.append(_decision_step("paragraph", reasons.NS_PARAGRAPH, rules.paragraph_filter, STAGED))
    if LATE in where:  # built only when asked for: the late steps load models and word lists
        if recipe.english_only:
            steps.append(Step("english", reasons.NS_ENGLISH, _english, LATE, _english_many))
        else:
            steps.append(_language_step(language_id))
        if recipe.badwords_fraction > 0.0:
            steps.append(_badwords_step(recipe.badwords_fraction))
    return tuple(s for s in steps if s.where in where)


def step_named(steps: Sequence[Step], name: str) -> Step:
    return next(s for s in steps if s.name == name)
