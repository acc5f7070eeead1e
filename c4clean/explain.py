"""`c4clean explain FILE`: why each page of one WET file is kept or dropped, and why each line went.

Runs the per-page part of the C4 `en` recipe in the C4 order (length filter, clean_page, English
language id, bad words). URL dedup and line dedup need the whole corpus, so they are not applied here.
"""

from __future__ import annotations

import json
import sys
from typing import Iterator, Optional

import click

from c4clean.cleaning import reasons
from c4clean.cleaning.badwords import BadwordsFilter
from c4clean.cleaning.langid import detect_english
from c4clean.cleaning.page import Page
from c4clean.cleaning.rules import clean_page, is_valid_length
from c4clean.cleaning.url import normalize_url
from c4clean.cleaning.wet import ReadIssue, iter_records


def explain_page(page: Page, badwords: BadwordsFilter) -> dict:
    """One page's verdict: `stage` and `reason` name the first rule that dropped it."""
    page = page.replace(normalized_url=normalize_url(page.url))
    verdict = {
        "url": page.url,
        "kept": False,
        "stage": None,
        "reason": None,
        "text": None,
        "dropped_lines": [],
    }

    length = is_valid_length(page)
    if not length.keep:
        verdict.update(stage=reasons.NS_TOO_LONG, reason=length.reason)
        return verdict

    cleaned = clean_page(page)
    verdict["dropped_lines"] = [{"line": line, "reason": code} for line, code in cleaned.dropped_lines]
    if cleaned.page is None:
        verdict.update(stage=reasons.NS_CLEAN, reason=cleaned.reason)
        return verdict

    english, reason = detect_english(cleaned.page)
    if english is None:
        verdict.update(stage=reasons.NS_ENGLISH, reason=reason)
        return verdict

    decision = badwords(english)
    if not decision.keep:
        verdict.update(stage=reasons.NS_BADWORDS, reason=decision.reason)
        return verdict

    verdict.update(kept=True, text=english.text)
    return verdict


def explain_file(path: str, url: Optional[str] = None) -> Iterator[dict]:
    """Verdicts for every record of `path`; unreadable records appear with their reader code."""
    badwords = BadwordsFilter()
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
        yield explain_page(record, badwords)


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--url", default=None, help="Explain only the page with this WARC-Target-URI.")
def explain(file: str, url: Optional[str]) -> None:
    """Print one JSON line per page of FILE (WET or WET.gz): kept or not, the reason, the
    cleaned text, and every dropped line with its reason code."""
    found = False
    for verdict in explain_file(file, url):
        found = True
        sys.stdout.write(json.dumps(verdict, ensure_ascii=False) + "\n")
    if url is not None and not found:
        raise click.ClickException(f"no page with url {url!r} in {file}")
