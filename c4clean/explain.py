"""`c4clean explain FILE`: why each page of one WET file is kept or dropped, and why each line went.

Runs the per-page steps of a variant's recipe (`cleaning.recipe`; for `en`: length filter,
clean_page, English language id, bad words) in the C4 order. URL dedup, near-dedup and line dedup
need the whole corpus, so they are not applied here.
"""

from __future__ import annotations

import json
import sys
from typing import Iterator, Optional, Sequence

import click

from c4clean.cleaning import reasons, recipe
from c4clean.cleaning.page import Page
from c4clean.cleaning.wet import ReadIssue, iter_records
from c4clean.pipelines.options import VARIANTS


def explain_page(page: Page, steps: Sequence[recipe.Step]) -> dict:
    """One page's verdict: `stage` and `reason` name the first step that dropped it."""
    page = recipe.prepare(page)
    verdict = {
        "url": page.url,
        "kept": False,
        "stage": None,
        "reason": None,
        "text": None,
        "dropped_lines": [],
    }
    for step in steps:
        outcome = step.apply(page)
        if outcome.dropped_lines:
            verdict["dropped_lines"] = [
                {"line": line, "reason": code} for line, code in outcome.dropped_lines
            ]
        if not outcome.keep:
            verdict.update(stage=step.namespace, reason=outcome.reason)
            return verdict
        page = outcome.page
    verdict.update(kept=True, text=page.text)
    return verdict


def variant_steps(variant: str = "en") -> tuple:
    """The per-page steps of a `c4clean run --variant` (its default domain list and language id)."""
    from c4clean.cleaning.url import DomainFilter

    flags = VARIANTS[variant]
    return recipe.page_steps(flags, DomainFilter.realnews() if flags.realnews else None)


def explain_file(path: str, url: Optional[str] = None, variant: str = "en") -> Iterator[dict]:
    """Verdicts for every record of `path`; unreadable records appear with their reader code."""
    steps = variant_steps(variant)
    for record in iter_records(path):
        if isinstance(record, ReadIssue):
            if url is None:
                # repairs and warnings concern a record that is still read (and explained on its own line)
                lost = not record.code.startswith(reasons.READ_KEPT_PREFIXES)
                yield {
                    "url": None,
                    "kept": False if lost else None,
                    "stage": reasons.NS_READ,
                    "reason": record.code,
                    "record_index": record.record_index,
                    "detail": record.detail,
                    "text": None,
                    "dropped_lines": [],
                }
            continue
        if url is not None and record.url != url:
            continue
        yield explain_page(record, steps)


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--url", default=None, help="Explain only the page with this WARC-Target-URI.")
@click.option(
    "--variant",
    type=click.Choice(list(VARIANTS)),
    default="en",
    show_default=True,
    help="Whose per-page steps to apply (as `c4clean run --variant`).",
)
def explain(file: str, url: Optional[str], variant: str) -> None:
    """Print one JSON line per page of FILE (WET or WET.gz): kept or not, the reason, the
    cleaned text, and every dropped line with its reason code."""
    found = False
    for verdict in explain_file(file, url, variant):
        found = True
        sys.stdout.write(json.dumps(verdict, ensure_ascii=False) + "\n")
    if url is not None and not found:
        raise click.ClickException(f"no page with url {url!r} in {file}")
