"""C4's page and line rules (TFDS c4 v3.1.0 `clean_page`, `is_valid_length`, `paragraph_filter`).

The order of the line rules is the order of the TFDS code, which is narrower than the paper's prose:
the too-long-word test runs before citation removal and the word count after it; "lorem ipsum" and
"{" kill a page only on a line that reached those steps (a "{" line without an end mark is merely
dropped). Outputs are identical to the reference; the shortcuts below only skip work whose result
cannot change the outcome.
"""

from __future__ import annotations

import collections
import dataclasses
import heapq
import re
from typing import Optional

from c4clean.cleaning import reasons
from c4clean.cleaning.page import Decision, Page
from c4clean.cleaning.sentences import count_sentences

# --- constants of the recipe (TFDS c4 v3.1.0) ----------------------------------------------------
MAX_PAGE_LENGTH = 190_000  # characters of raw WET text (`is_valid_length`, 1.9e5)
MIN_WORDS_PER_LINE = 5
MIN_NUM_SENTENCES = 3
MAX_WORD_LENGTH = 1000
END_MARKS = (".", "?", "!", '"')  # straight double quote only; not "'" nor curly quotes nor "…"
ELLIPSIS = "..."
POLICY_SUBSTRINGS = (
    "terms of use",
    "privacy policy",
    "cookie policy",
    "uses cookies",
    "use of cookies",
    "use cookies",
)
# All but two policy phrases contain "cookie": one substring test rules most lines out at once.
_COOKIE_POLICIES = tuple(p for p in POLICY_SUBSTRINGS if "cookie" in p)
_OTHER_POLICIES = tuple(p for p in POLICY_SUBSTRINGS if "cookie" not in p)
# Case-sensitive, and `\d*` also matches an empty "[]".
CITATION_RE = re.compile(r"\[\d*\]|\[edit\]|\[citation needed\]")
LINE_DELIMITER = "\n"
MIN_PARAGRAPHS = 3  # mC4 `paragraph_filter`
MIN_PARAGRAPH_LEN = 200


@dataclasses.dataclass
class CleanResult:
    """What a line-level stage did to one page.

    `page` is the cleaned page, or None when the page was dropped; `reason` is the page-level code
    (PASSED or the `filtered:*` code that dropped it); `dropped_lines` lists `(line, code)` for every
    line removed (for a page killed by a line, that line comes last with the page code); `counts`
    holds the stage's counters exactly as TFDS increments them.
    """

    page: Optional[Page]
    reason: str
    dropped_lines: list = dataclasses.field(default_factory=list)
    counts: collections.Counter = dataclasses.field(default_factory=collections.Counter)

    @property
    def kept(self) -> bool:
        return self.page is not None


def is_valid_length(page: Page, max_length: int = MAX_PAGE_LENGTH) -> Decision:
    """Drops pages with more than `max_length` characters (namespace NS_TOO_LONG)."""
    if len(page.text) > max_length:
        return Decision(False, reasons.FILTERED)
    return Decision(True, reasons.PASSED)


def clean_page(
    page: Page,
    *,
    min_words_per_line: int = MIN_WORDS_PER_LINE,
    min_num_sentences: int = MIN_NUM_SENTENCES,
    max_word_length: int = MAX_WORD_LENGTH,
) -> CleanResult:
    """TFDS `clean_page`: the line rules in their exact order, then the page's sentence count."""
    dropped: list = []
    valid_lines: list = []
    n_too_long = n_no_endmark = n_too_short = n_javascript = n_policy = 0
    kill_reason = None

    for raw_line in page.text.splitlines():
        line = raw_line.strip()
        # A line no longer than the limit cannot hold a longer word: skip the split then.
        if len(line) > max_word_length and any(len(w) > max_word_length for w in line.split()):
            n_too_long += 1
            dropped.append((line, reasons.LINE_TOO_LONG_WORD))
            continue
        original = line
        if "[" in line:
            line = CITATION_RE.sub("", line)
        if not line.endswith(END_MARKS) or line.endswith(ELLIPSIS):
            n_no_endmark += 1
            dropped.append((original, reasons.LINE_NO_ENDMARK))
            continue
        if len(line.split()) < min_words_per_line:
            n_too_short += 1
            dropped.append((original, reasons.LINE_TOO_SHORT))
            continue
        line_lower = line.lower()
        if "lorem ipsum" in line_lower:
            kill_reason = reasons.PAGE_LOREM_IPSUM
            dropped.append((original, kill_reason))
            break
        if "javascript" in line_lower:
            n_javascript += 1
            dropped.append((original, reasons.LINE_JAVASCRIPT))
            continue
        if "{" in line:
            kill_reason = reasons.PAGE_CURLY_BRACKET
            dropped.append((original, kill_reason))
            break
        if ("cookie" in line_lower and any(p in line_lower for p in _COOKIE_POLICIES)) or any(
            p in line_lower for p in _OTHER_POLICIES
        ):
            n_policy += 1
            dropped.append((original, reasons.LINE_POLICY))
            continue
        valid_lines.append(line)

    counts = collections.Counter()
    for name, n in (
        (reasons.LINE_TOO_LONG_WORD, n_too_long),
        (reasons.LINE_NO_ENDMARK, n_no_endmark),
        (reasons.LINE_TOO_SHORT, n_too_short),
        (reasons.LINE_JAVASCRIPT, n_javascript),
        (reasons.LINE_POLICY, n_policy),
        (reasons.LINE_PASSED, len(valid_lines)),
    ):
        if n:
            counts[name] = n

    if kill_reason is not None:
        counts[kill_reason] += 1
        return CleanResult(None, kill_reason, dropped, counts)

    if not _has_enough_sentences(valid_lines, min_num_sentences):
        counts[reasons.PAGE_TOO_FEW_SENTENCES] += 1
        return CleanResult(None, reasons.PAGE_TOO_FEW_SENTENCES, dropped, counts)
    counts[reasons.PASSED] += 1
    text = LINE_DELIMITER.join(valid_lines).strip()
    return CleanResult(page.replace(text=text), reasons.PASSED, dropped, counts)


def _has_enough_sentences(valid_lines: list, min_num_sentences: int) -> bool:
    """Whether the per-line Punkt sentence counts add up to `min_num_sentences`.

    A kept line has at least five words, and Punkt finds at least one sentence in any text that
    is not blank, so with that many lines the answer is yes without running Punkt at all.
    """
    if len(valid_lines) >= min_num_sentences:
        return True
    needed = min_num_sentences
    for line in valid_lines:
        needed -= count_sentences(line, limit=needed)
        if needed <= 0:
            return True
    return False


def paragraph_filter(
    page: Page, min_paragraphs: int = MIN_PARAGRAPHS, min_paragraph_len: int = MIN_PARAGRAPH_LEN
) -> Decision:
    """mC4: at least `min_paragraphs` lines, and the three longest at least `min_paragraph_len` long.

    TFDS takes the three longest lines whatever `min_paragraphs` is; so does this.
    """
    lines = page.text.split(LINE_DELIMITER)
    if len(lines) < min_paragraphs or min(heapq.nlargest(3, map(len, lines))) < min_paragraph_len:
        return Decision(False, reasons.FILTERED)
    return Decision(True, reasons.PASSED)
