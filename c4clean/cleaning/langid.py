"""Language id with C4 semantics: langdetect (seed 0), reimplemented for speed with identical outputs.

TFDS c4 v3.1.0 `detect_english` takes a global lock, sets `DetectorFactory.seed = 0` and calls
`langdetect.detect_langs(page.text)`. `detect_langs` here returns exactly what that call returns (same
languages, same float probabilities, same order, same exception), by doing the same arithmetic in
the same order, without the lock and without langdetect's per-character Python work:

* the profiles are langdetect's own files, read as its factory reads them (`profile_table`), so the
  language order, and with it the order of every floating-point sum, is the reference's; its n-gram
  probabilities go once per process into one numpy table;
* text preparation is the same transformation done with regexes over whole strings (URL and e-mail
  removal, Vietnamese normalization, first 10,000 characters, runs of spaces collapsed, the
  "mostly non-Latin" Latin strip);
* n-gram extraction works per space-separated word: a word's n-grams depend only on the word (the
  n-gram buffer restarts at every space), so they are computed once per distinct word and cached;
* the random walk draws from `random.Random(0)` in the reference's order (one `gauss`, then one
  `choice` per update, 7 trials); each update multiplies by a row of `weight + P(ngram|lang)` (the
  same two roundings as `prob[i] *= weight + p[i]`), each check sums as Python's `sum` does
  (sequentially, `np.add.accumulate`, up to 3.11; with `sum` itself on 3.12+) and divides;
* `detect_langs_many` / `english_verdicts` run the walks of many texts in lock-step, one numpy
  operation per step for all of them (each text keeps its own random stream), which is where most
  of the remaining time went.

`tests/test_langid.py` checks identity against langdetect itself on real pages.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import re
import threading
from itertools import chain
from typing import Optional

import numpy as np
from langdetect import detector_factory
from langdetect.detector import Detector
from langdetect.lang_detect_exception import ErrorCode, LangDetectException
from langdetect.language import Language
from langdetect.utils.ngram import NGram

from c4clean.cleaning import reasons
from c4clean.cleaning.cld3 import MIN_PROBABILITY as MULTILINGUAL_MIN_PROBABILITY  # mC4's threshold
from c4clean.cleaning.cld3 import LanguageVerdict
from c4clean.cleaning.page import Page
from c4clean.lazy import Lazy

EN_MIN_PROBABILITY = 0.99  # TFDS detect_english
SEED = 0

_N_TRIAL = 7  # Detector.n_trial
_MAX_TEXT_LENGTH = 10000  # Detector.max_text_length
_LATIN = re.compile("[A-z]")  # Detector.cleaning_text: 'A' <= ch <= 'z' (includes [\]^_`)
_SPACE_RUNS = re.compile("  +")


class _NormalizedChars(dict):
    """str.translate table: code point -> NGram.normalize(char), filled on first sight."""

    def __missing__(self, code: int) -> str:
        value = NGram.normalize(chr(code))
        self[code] = value
        return value


class _WordRows(dict):
    """word -> table rows of the n-grams langdetect's NGram buffer emits for it, filled on first
    sight. `followed_by_space`: the word is followed by a space (every word but a text's last),
    whose step emits the word's final 2- and 3-grams ending in " "."""

    MAX_WORDS = 500_000  # bound memory on endless vocabularies

    def __init__(self, row: dict, followed_by_space: bool):
        super().__init__()
        self.row = row
        self.followed_by_space = followed_by_space

    def __missing__(self, word: str) -> tuple:
        # Detector._extract_ngrams on one word: the buffer starts as " " (it restarts at every space),
        # so at position i of " " + word (+ " ") it holds the last 1-3 characters, whose 1-, 2- and
        # 3-grams it emits in that order, except " " alone, and nothing at a position where this
        # and the previous character are upper case. Slices of one string rather than a rolling
        # buffer: ~2x faster, and a run's ~150k distinct words fill this in every worker.
        row = self.row
        text = " " + word + " " if self.followed_by_space and word else " " + word
        out = []
        last_upper = False
        for i in range(1, len(text)):
            ch = text[i]
            upper = ch.isupper()
            if upper and last_upper:
                continue
            last_upper = upper
            if ch != " " and ch in row:
                out.append(row[ch])
            gram = text[i - 1 : i + 1]
            if gram in row:
                out.append(row[gram])
            if i > 1:
                gram = text[i - 2 : i + 1]
                if gram in row:
                    out.append(row[gram])
        if len(self) > self.MAX_WORDS:
            self.clear()
        rows = self[word] = tuple(out)
        return rows


def profile_table(directory: str = detector_factory.PROFILES_DIRECTORY) -> tuple[list[str], dict, np.ndarray]:
    """(languages, n-gram -> row, table[row, language]): what langdetect's
    `DetectorFactory.load_profile(directory)` builds (`langlist`, `word_lang_prob_map`), read straight
    into one numpy table. Same languages in the same order (`os.listdir`'s, as langdetect takes it),
    same n-grams in the same order, same floats (`1.0 * count / n_words[len - 1]`; 0.0 for n-grams
    longer than 3), without a Python list per n-gram (~3x faster: ~0.3 s of every worker's start-up)."""
    files = os.listdir(directory)
    languages: list[str] = []
    rows: dict[str, int] = {}
    cell_rows: list[int] = []
    cell_columns: list[int] = []
    values: list[float] = []
    for filename in files:
        path = os.path.join(directory, filename)
        if filename.startswith(".") or not os.path.isfile(path):
            continue
        with open(path, encoding="utf-8") as f:
            profile = json.load(f)
        if profile["name"] in languages:
            raise ValueError(f"duplicate language profile {profile['name']!r} in {directory}")
        column = len(languages)
        languages.append(profile["name"])
        n_words = profile["n_words"]
        for gram, count in profile["freq"].items():
            row = rows.setdefault(gram, len(rows))
            if 1 <= len(gram) <= 3:
                cell_rows.append(row)
                cell_columns.append(column)
                values.append(1.0 * count / n_words[len(gram) - 1])
    # langdetect sizes every row by the directory's entry count (equal to the languages' when the
    # folder holds only profiles, as langdetect's own does).
    table = np.zeros((len(rows), len(files)), dtype=np.float64)
    table[cell_rows, cell_columns] = values
    return languages, rows, table


class _Profiles:
    """langdetect's profiles as a numpy table, built once per process."""

    def __init__(self):
        self.langlist, row, self.table = profile_table()
        self.uniform = 1.0 / len(self.langlist)
        self.normalized = _NormalizedChars()
        self.inner_words = _WordRows(row, followed_by_space=True)
        self.final_words = _WordRows(row, followed_by_space=False)


_get_profiles = Lazy(_Profiles)


def prepare_text(text: str) -> str:
    """Detector.append + cleaning_text: the text langdetect extracts n-grams from."""
    text = Detector.URL_RE.sub(" ", text)
    if "@" in text:  # MAIL_RE needs one; skipping the scan changes nothing
        text = Detector.MAIL_RE.sub(" ", text)
    text = NGram.normalize_vi(text)
    text = _SPACE_RUNS.sub(" ", text[:_MAX_TEXT_LENGTH])
    # Detector.cleaning_text, counted with numpy over the code points. It compares
    # unicode_block(ch), an int, with a block *name*: always unequal, so every character from
    # U+0300 on counts as non-Latin.
    codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    latin = int(np.count_nonzero((codes >= 0x41) & (codes <= 0x7A)))
    if latin * 2 < int(np.count_nonzero(codes >= 0x300)):
        text = _LATIN.sub("", text)
    return text


def _ngram_rows(profiles: _Profiles, text: str) -> list[int]:
    """Detector._extract_ngrams as table rows: the normalized text's words looked up in order."""
    words = text.translate(profiles.normalized).split(" ")
    rows = list(chain.from_iterable(map(profiles.inner_words.__getitem__, words[:-1])))
    rows.extend(profiles.final_words[words[-1]])
    return rows


def _inline_randbelow(rng: random.Random, n: int):
    """`rng._randbelow(n)` (what `rng.choice` draws with) without two Python frames per draw."""
    getrandbits = rng.getrandbits
    k = n.bit_length()

    def draw() -> int:
        r = getrandbits(k)
        while r >= n:
            r = getrandbits(k)
        return r

    return draw


def _inline_randbelow_matches_choice() -> bool:
    """The inlined draw is CPython's `_randbelow_with_getrandbits`; check it on this interpreter."""
    for n in (1, 2, 3, 5, 7, 100, 1000, 4097, 65535, 100_003):
        a, b = random.Random(SEED), random.Random(SEED)
        seq = range(n)
        draw = _inline_randbelow(b, n)
        if any(a.choice(seq) != draw() for _ in range(200)):
            return False
    return True


def _index_sampler(rng: random.Random, n: int):
    if _INLINE_RANDBELOW:
        return _inline_randbelow(rng, n)
    return rng._randbelow


_INLINE_RANDBELOW = _inline_randbelow_matches_choice()


def _no_features() -> LangDetectException:
    return LangDetectException(ErrorCode.CantDetectError, "No features in text.")


def _languages(profiles: _Profiles, langprob: list[float]) -> list[Language]:
    """Detector._sort_probability."""
    result = [
        Language(lang, p) for lang, p in zip(profiles.langlist, langprob) if p > Detector.PROB_THRESHOLD
    ]
    result.sort(reverse=True)
    return result


def detect_langs(text: str) -> list[Language]:
    """Exactly `DetectorFactory.seed = 0; langdetect.detect_langs(text)`, without the global state.

    Raises langdetect's `LangDetectException` where it does ("No features in text.").
    """
    profiles = _get_profiles()
    rows = _ngram_rows(profiles, prepare_text(text))
    if not rows:
        raise _no_features()
    return _languages(profiles, _random_walk(profiles, rows))


def detect_langs_many(texts, batch_size: int = 512) -> list:
    """`detect_langs` of each text, computed together: a list holding, per text, its languages or
    the `LangDetectException` langdetect would raise. Same results, less time per text (the random
    walks of up to `batch_size` texts advance in one numpy step, see `_random_walks`)."""
    profiles = _get_profiles()
    rows = [_ngram_rows(profiles, prepare_text(t)) for t in texts]
    walked = iter(_random_walks(profiles, [r for r in rows if r], batch_size))
    return [_languages(profiles, next(walked)) if r else _no_features() for r in rows]


# Detector._normalize_prob sums with Python's `sum`: plain left-to-right addition up to 3.11,
# compensated (Neumaier) from 3.12. np.add.accumulate is the former; otherwise use `sum` itself.
_SUM_IS_SEQUENTIAL = sum([1.0, 1e100, 1.0, -1e100]) == 0.0


def _row_sums(prob: np.ndarray) -> np.ndarray:
    """Python's `sum` of each row (of a 1-D array: of the array), shaped to divide `prob` by."""
    if _SUM_IS_SEQUENTIAL:
        return np.add.accumulate(prob, axis=-1)[..., -1:]
    return np.array([sum(row) for row in prob.reshape(-1, prob.shape[-1]).tolist()]).reshape(
        prob.shape[:-1] + (1,)
    )


def _random_walk(profiles: _Profiles, rows: list[int]) -> list[float]:
    """Detector._detect_block after n-gram extraction: the averaged language probabilities."""
    distinct, position = np.unique(np.asarray(rows, dtype=np.int64), return_inverse=True)
    position = position.tolist()
    probabilities = profiles.table[distinct]
    n_lang = len(profiles.langlist)
    langprob = np.zeros(n_lang)
    rng = random.Random(SEED)
    draw = _index_sampler(rng, len(position))
    for _ in range(_N_TRIAL):
        prob = np.full(n_lang, profiles.uniform)
        alpha = Detector.ALPHA_DEFAULT + rng.gauss(0.0, 1.0) * Detector.ALPHA_WIDTH
        factors = (alpha / Detector.BASE_FREQ) + probabilities
        i = 0
        while True:
            prob *= factors[position[draw()]]
            if i % 5 == 0:
                prob /= _row_sums(prob)
                if prob.max() > Detector.CONV_THRESHOLD or i >= Detector.ITERATION_LIMIT:
                    break
            i += 1
        langprob += prob / _N_TRIAL
    return langprob.tolist()


def _random_walks(
    profiles: _Profiles, rows_per_text: list[list[int]], max_batch: int = 512
) -> list[list[float]]:
    """`_random_walk` of many texts in lock-step: each step draws one n-gram per still-running
    walk (each text has its own `Random(0)`, drawn from in the reference's order) and multiplies
    all their probability rows in one numpy operation; walks leave the batch as they converge.
    Element by element the arithmetic is the reference's (same products, sequential sums)."""
    out: list[list[float]] = []
    for start in range(0, len(rows_per_text), max_batch):
        out.extend(_random_walk_batch(profiles, rows_per_text[start : start + max_batch]))
    return out


def _random_walk_batch(profiles: _Profiles, rows_per_text: list[list[int]]) -> list[list[float]]:
    n = len(rows_per_text)
    if n == 0:
        return []
    table = profiles.table
    n_lang = len(profiles.langlist)
    rngs = [random.Random(SEED) for _ in range(n)]
    draws = [_index_sampler(rng, len(rows)) for rng, rows in zip(rngs, rows_per_text)]
    langprob = np.zeros((n, n_lang))
    for _ in range(_N_TRIAL):
        weights = np.array(
            [
                (Detector.ALPHA_DEFAULT + rng.gauss(0.0, 1.0) * Detector.ALPHA_WIDTH) / Detector.BASE_FREQ
                for rng in rngs
            ]
        )
        active = np.arange(n)  # texts still walking in this trial
        walkers = list(zip(rows_per_text, draws))
        weight = weights[:, None]
        prob = np.full((n, n_lang), profiles.uniform)
        i = 0
        while True:
            prob *= table[[rows[draw()] for rows, draw in walkers]] + weight
            if i % 5 == 0:
                prob /= _row_sums(prob)
                if i >= Detector.ITERATION_LIMIT:
                    done = np.ones(len(active), dtype=bool)
                else:
                    done = prob.max(axis=1) > Detector.CONV_THRESHOLD
                if done.any():
                    langprob[active[done]] += prob[done] / _N_TRIAL
                    if done.all():
                        break
                    keep = ~done
                    active, prob, weight = active[keep], prob[keep], weight[keep]
                    walkers = [w for w, k in zip(walkers, keep.tolist()) if k]
            i += 1
    return langprob.tolist()


_reference_lock = threading.Lock()


def detect_langs_reference(text: str) -> list[Language]:
    """langdetect itself, as TFDS calls it (global lock, global seed): for tests and benchmarks."""
    import langdetect

    with _reference_lock:
        langdetect.DetectorFactory.seed = SEED
        return langdetect.detect_langs(text)


@dataclasses.dataclass(frozen=True)
class EnglishVerdict:
    """`detect_english`'s outcome with everything the counters need.

    `counters`: the names to increment in `reasons.NS_ENGLISH` (TFDS counts two for another language).
    """

    page: Optional[Page]
    reason: str
    counters: tuple[str, ...]
    language: Optional[str] = None
    probability: Optional[float] = None


def english_verdict(page: Page, min_probability: float = EN_MIN_PROBABILITY) -> EnglishVerdict:
    """TFDS `detect_english` for one page, with its counters."""
    try:
        predictions = detect_langs(page.text)
    except LangDetectException as error:
        predictions = error
    return _english_verdict(page, predictions, min_probability)


def english_verdicts(pages, min_probability: float = EN_MIN_PROBABILITY) -> list[EnglishVerdict]:
    """`english_verdict` of many pages at once (`detect_langs_many`): the same verdicts, faster.
    Pipelines call it on batches of pages (e.g. `beam.BatchElements`)."""
    pages = list(pages)
    return [
        _english_verdict(page, predictions, min_probability)
        for page, predictions in zip(pages, detect_langs_many([p.text for p in pages]))
    ]


def _english_verdict(page: Page, predictions, min_probability: float) -> EnglishVerdict:
    if isinstance(predictions, LangDetectException):
        return EnglishVerdict(None, reasons.LANGDETECT_EXCEPTION, (reasons.LANGDETECT_EXCEPTION,))
    if not predictions:
        return EnglishVerdict(None, reasons.NO_PREDICTIONS, (reasons.NO_PREDICTIONS,))
    best = predictions[0]
    if best.prob < min_probability:
        return EnglishVerdict(None, reasons.LOW_CONFIDENCE, (reasons.LOW_CONFIDENCE,), best.lang, best.prob)
    if best.lang != "en":
        return EnglishVerdict(
            None,
            reasons.IGNORED_LANGUAGE,
            (reasons.IGNORED_LANGUAGE, reasons.ignored_language(best.lang)),
            best.lang,
            best.prob,
        )
    return EnglishVerdict(
        page.replace(language="en"), reasons.PASSED, (reasons.PASSED,), best.lang, best.prob
    )


def detect_english(page: Page, min_probability: float = EN_MIN_PROBABILITY) -> tuple[Optional[Page], str]:
    """TFDS `detect_english`: (page with language "en", PASSED) or (None, the filtered:* code)."""
    verdict = english_verdict(page, min_probability)
    return verdict.page, verdict.reason


def detect_language(text: str, min_probability: float = MULTILINGUAL_MIN_PROBABILITY) -> tuple[str, float]:
    """`--variant multilingual --langid langdetect`: (language, probability); `und` when unsure.

    The documented alternative to mC4's cld3 (`cleaning.cld3`): codes are langdetect's 55 (`zh-cn`,
    `zh-tw`, ...), there is no "is_reliable" flag, and no language is dropped; a page with no
    features, no prediction or a top probability under `min_probability` (0.95, as v3.1.0) is `und`.
    """
    try:
        predictions = detect_langs(text)
    except LangDetectException:
        return reasons.UNKNOWN_LANGUAGE, 0.0
    if not predictions:
        return reasons.UNKNOWN_LANGUAGE, 0.0
    best = predictions[0]
    if best.prob < min_probability:
        return reasons.UNKNOWN_LANGUAGE, best.prob
    return best.lang, best.prob


def language_verdict(text: str, min_probability: float = MULTILINGUAL_MIN_PROBABILITY):
    """`detect_language` as a `cld3.LanguageVerdict` (same counters as mC4's cld3 stage)."""
    language, probability = detect_language(text, min_probability)
    if language != reasons.UNKNOWN_LANGUAGE:
        counters = ()
    elif probability == 0.0:
        counters = (reasons.NO_PREDICTIONS,)
    else:
        counters = (reasons.LOW_CONFIDENCE,)
    return LanguageVerdict(
        language, counters + (reasons.PASSED, reasons.passed_language(language)), probability
    )
