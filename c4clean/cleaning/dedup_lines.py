"""Exact line dedup across the corpus: the pure logic of TFDS c4 v3.1.0 `remove_duplicate_text`.

Every distinct line (key: md5 of the stripped, lower-cased line, as 16 bytes) is kept in exactly one page: the
page whose ORIGINAL url has the smallest md5 hexdigest (hashing first avoids favouring a domain).
The pipeline does the grouping: `emit_line_keys` per page, all pages of a line key meet, the owner
is picked (`pick_line_owner`'s rule) and every other page learns the key it lost; then
`remove_lost_lines` per page.
"""

from __future__ import annotations

import collections
import hashlib
from collections.abc import Iterable, Iterator
from typing import Optional

from c4clean.cleaning import reasons
from c4clean.cleaning.page import Page
from c4clean.cleaning.rules import LINE_DELIMITER, CleanResult
from c4clean.cleaning.sentences import count_sentences
from c4clean.cleaning.url import url_rank


def line_key(line: str) -> bytes:
    # The raw digest, not TFDS's hex text: the same identity, half the bytes in a shuffle.
    return hashlib.md5(line.strip().lower().encode("utf-8")).digest()


def emit_line_keys(page: Page) -> Iterator[tuple[bytes, str]]:
    """`(line_key, page.url)` for each distinct line of the page.

    TFDS emits repeats of a line within a page too; one pair per key picks the same owner and
    shuffles less.
    """
    url = page.url
    md5 = hashlib.md5
    seen = set()
    for line in page.text.split(LINE_DELIMITER):
        key = md5(line.strip().lower().encode("utf-8")).digest()  # line_key, inlined: hot loop
        if key not in seen:
            seen.add(key)
            yield key, url


def pick_line_owner(urls: Iterable[Optional[str]]) -> Optional[str]:
    """The url that keeps a line: smallest `url_rank` (TFDS `Top.PerKey(1, key=md5, reverse=True)`).

    Associative, so `beam.CombinePerKey(pick_line_owner)` may apply it to partial results; `None`
    entries (Beam merging empty accumulators) are skipped, and an empty input gives `None`.
    """
    return min((u for u in urls if u is not None), key=url_rank, default=None)


def line_losers(members: Iterable) -> list:
    """All pages of one line key but its owner: one member per page, each starting with its url's
    rank (`url_rank`, or `url_digest` + anything as bytes: the same order); the owner is the
    smallest (`pick_line_owner`'s rule; the rest of a member only breaks ties between copies of a
    URL)."""
    members = list(members)
    owner = min(members, default=None)
    return [m for m in members if m != owner]


def keep_keys_by_url(pages: Iterable[Page]) -> dict[str, set[bytes]]:
    """url -> the line keys its page keeps, for pages held in memory (benchmarks, tests, small
    corpora). The Beam pipeline computes the same with `pick_line_owner` as a per-key combine."""
    owners: dict[bytes, str] = {}
    for page in pages:
        for key, url in emit_line_keys(page):
            owners[key] = pick_line_owner((owners.get(key), url))
    keep: dict[str, set[bytes]] = {}
    for key, url in owners.items():
        keep.setdefault(url, set()).add(key)
    return keep


def remove_lines(page: Page, keep_keys: Iterable[bytes], min_num_sentences: int) -> CleanResult:
    """TFDS `_remove_lines_from_text`: drop lines owned by other pages and repeats within the page.

    `keep_keys`: the line keys this page owns. `min_num_sentences` is 3 for cleaned configs and 0
    (no check) otherwise; Punkt counts the sentences of the whole remaining text, not line by line.
    """
    keep_keys = keep_keys if isinstance(keep_keys, (set, frozenset)) else set(keep_keys)
    return _remove_lines(page, keep_keys.__contains__, min_num_sentences)


def remove_lost_lines(page: Page, lost_keys: Iterable[bytes], min_num_sentences: int) -> CleanResult:
    """`remove_lines` given the line keys this page does NOT own (every other line is its own).
    Most lines of a corpus are in one page only, so the pipeline sends pages what they lost."""
    lost_keys = lost_keys if isinstance(lost_keys, (set, frozenset)) else set(lost_keys)
    return _remove_lines(page, lambda key: key not in lost_keys, min_num_sentences)


def _remove_lines(page: Page, owns, min_num_sentences: int) -> CleanResult:
    new_lines: list = []
    dropped: list = []
    seen: set = set()
    n_global = n_local = 0
    md5 = hashlib.md5
    for line in page.text.split(LINE_DELIMITER):
        key = md5(line.strip().lower().encode("utf-8")).digest()  # line_key, inlined: hot loop
        if not owns(key):
            n_global += 1
            dropped.append((line, reasons.LINE_GLOBAL_DUPLICATE))
        elif key in seen:
            n_local += 1
            dropped.append((line, reasons.LINE_LOCAL_DUPLICATE))
        else:
            new_lines.append(line)
            seen.add(key)

    counts = collections.Counter()
    for name, n in (
        (reasons.LINE_GLOBAL_DUPLICATE, n_global),
        (reasons.LINE_LOCAL_DUPLICATE, n_local),
        (reasons.LINE_PASSED, len(new_lines)),
    ):
        if n:
            counts[name] = n

    new_text = LINE_DELIMITER.join(new_lines)
    if not new_text:
        reason = reasons.PAGE_EMPTY
    elif min_num_sentences > 0 and count_sentences(new_text, limit=min_num_sentences) < min_num_sentences:
        reason = reasons.PAGE_TOO_FEW_SENTENCES
    else:
        counts[reasons.PASSED] += 1
        return CleanResult(page.replace(text=new_text), reasons.PASSED, dropped, counts)
    counts[reason] += 1
    return CleanResult(None, reason, dropped, counts)
