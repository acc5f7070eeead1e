"""mC4's language id: cld3 (`gcld3`, from the `cld3-py` wheel) with TFDS c4 v3.1.0's settings.

TFDS `detect_languages` builds `gcld3.NNetLanguageIdentifier(min_num_bytes=100,
max_num_bytes=10000)` and, per page, calls `FindLanguage(page.text)`:
* not `is_reliable` -> `und` (counter `filtered:no_predictions`), page kept;
* probability < 0.95 -> `und` (`filtered:low_confidence`), page kept;
* a reliable language outside `MC4_LANGUAGES` -> page dropped (`filtered:ignored_language`);
* otherwise the page gets that language. Kept pages also count `passed` and `passed:<lang>`.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Optional

from c4clean.cleaning import reasons

MIN_NUM_BYTES = 100  # "CLD3 is not expected to work well on very short documents."
MAX_NUM_BYTES = 10000
MIN_PROBABILITY = 0.95  # v3.1.0 (0.7 in v3.0.x)

# TFDS c4.py MC4_LANGUAGES: "languages in CLD3 that produce at least 10k pages" (107 codes).
MC4_LANGUAGES = tuple(
    (
        "af am ar az be bg bg-Latn bn ca ceb co cs cy da de el el-Latn en eo es et eu fa fi fil fr fy "
        "ga gd gl gu ha haw hi hi-Latn hmn ht hu hy id ig is it iw ja ja-Latn jv ka kk km kn ko ku ky "
        "la lb lo lt lv mg mi mk ml mn mr ms mt my ne nl no ny pa pl ps pt ro ru ru-Latn sd si sk sl "
        "sm sn so sq sr st su sv sw ta te tg th tr uk ur uz vi xh yi yo zh zh-Latn zu"
    ).split()
)


@dataclasses.dataclass(frozen=True)
class LanguageVerdict:
    """`detect_languages`' outcome for one page: `language` is None when the page is dropped;
    `counters` are the names TFDS increments in `reasons.NS_LANGUAGE`."""

    language: Optional[str]
    counters: tuple[str, ...]
    probability: float = 0.0


_local = threading.local()  # one identifier per thread (the C++ object is not thread-safe)


def _identifier():
    detector = getattr(_local, "detector", None)
    if detector is None:
        import gcld3

        detector = _local.detector = gcld3.NNetLanguageIdentifier(
            min_num_bytes=MIN_NUM_BYTES, max_num_bytes=MAX_NUM_BYTES
        )
    return detector


def language_verdict(
    text: str, valid_languages=frozenset(MC4_LANGUAGES), min_probability: float = MIN_PROBABILITY
) -> LanguageVerdict:
    """TFDS `_PredictLanguageFn.process` for one page text."""
    result = _identifier().FindLanguage(text)
    if not result.is_reliable:
        language, counters = reasons.UNKNOWN_LANGUAGE, (reasons.NO_PREDICTIONS,)
    elif result.probability < min_probability:
        language, counters = reasons.UNKNOWN_LANGUAGE, (reasons.LOW_CONFIDENCE,)
    else:
        language, counters = result.language, ()
        if language not in valid_languages:
            return LanguageVerdict(None, (reasons.IGNORED_LANGUAGE,), result.probability)
    counters += (reasons.PASSED, reasons.passed_language(language))
    return LanguageVerdict(language, counters, result.probability)
