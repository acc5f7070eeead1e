"""Language id: `detect_langs` must equal langdetect's own `detect_langs` (seed 0) bit for bit, and
`detect_english` must give the TFDS v3.1.0 `detect_english` verdicts and counters."""

from __future__ import annotations

import collections

import pytest
from langdetect.lang_detect_exception import LangDetectException

from c4clean.cleaning import langid, reasons
from c4clean.cleaning.page import Page
from c4clean.cleaning.tfds_reference import as_page, counters, differential_corpus, load_c4_utils, tfds_page

ENGLISH = (
    "All human beings are born free and equal in dignity and rights. They are endowed with "
    "reason and conscience and should act towards one another in a spirit of brotherhood."
)
GERMAN = (
    "Alle Menschen sind frei und gleich an Würde und Rechten geboren. Sie sind mit Vernunft "
    "und Gewissen begabt und sollen einander im Geist der Brüderlichkeit begegnen."
)
FRENCH = (
    "Tous les êtres humains naissent libres et égaux en dignité et en droits. Ils sont doués "
    "de raison et de conscience et doivent agir les uns envers les autres dans un esprit de "
    "fraternité."
)
RUSSIAN = (
    "Все люди рождаются свободными и равными в своем достоинстве и правах. Они наделены "
    "разумом и совестью и должны поступать в отношении друг друга в духе братства."
)
CHINESE = "人人生而自由，在尊严和权利上一律平等。他们赋有理性和良心，并应以兄弟关系的精神相对待。"
JAPANESE = (
    "すべての人間は、生まれながらにして自由であり、かつ、尊厳と権利とについて平等である。"
    "人間は、理性と良心とを授けられており、互いに同胞の精神をもって行動しなければならない。"
)
VIETNAMESE_COMBINING = "Tie\u0302\u0301ng Vie\u0323\u0302t co\u0301 da\u0302\u0301u"  # decomposed marks

# Texts that take every branch of langdetect's preparation: URLs, e-mails, runs of spaces,
# capitalised words, mostly non-Latin text with Latin in it, decomposed Vietnamese, the 10,000
# character cut (English first, German after it, and the reverse), and texts with no features.
EDGE_TEXTS = [
    ENGLISH,
    GERMAN,
    FRENCH,
    RUSSIAN,
    CHINESE,
    JAPANESE,
    VIETNAMESE_COMBINING,
    f"see https://example.com/path?q=1&x=~y and mail me at john.doe@example.org {ENGLISH}",
    "THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG. NASA and the USA AND UK.",
    "spaces     between      words   and\ttabs\n\nand newlines  " + ENGLISH,
    RUSSIAN + " with some English words in it, USA, NATO",
    CHINESE + " iPhone 13 Pro Max",
    (ENGLISH + " ") * 60 + (GERMAN + " ") * 60,
    (GERMAN + " ") * 60 + (ENGLISH + " ") * 60,
    "http://example.com/" + "a" * 3000 + " " + ENGLISH,
    ENGLISH[:40],
    "ok",
    "a",
    "I",
    "",
    "12345 67890",
    "!!! ??? ...",
    "https://only.a/url",
    "x@y.zz",
    "\ud800 lone surrogate \udfff " + RUSSIAN,
]


@pytest.fixture(scope="module")
def reference_pages(shared_data):
    pages = [as_page(p) for p in differential_corpus(shared_data)]
    assert len(pages) >= 300
    return pages


def _as_outcome(result):
    if isinstance(result, LangDetectException):
        return ("exception", result.code, str(result))
    return [(language.lang, language.prob) for language in result]


def _outcome(detect, text):
    try:
        return _as_outcome(detect(text))
    except LangDetectException as error:
        return _as_outcome(error)


@pytest.fixture(scope="module")
def all_texts(reference_pages):
    return [p.text for p in reference_pages] + EDGE_TEXTS


@pytest.fixture(scope="module")
def langdetect_outcomes(all_texts):
    """langdetect itself (seed 0), computed once for the module."""
    return [_outcome(langid.detect_langs_reference, t) for t in all_texts]


def test_detect_langs_is_identical_to_langdetect(all_texts, langdetect_outcomes):
    # Exact float equality of every probability, same order, same exceptions.
    got = [_outcome(langid.detect_langs, t) for t in all_texts]
    mismatches = [i for i, (a, b) in enumerate(zip(got, langdetect_outcomes)) if a != b]
    assert mismatches == []
    assert sum(isinstance(o, tuple) for o in langdetect_outcomes) >= 3  # exceptions were compared


@pytest.mark.parametrize("batch_size", [512, 7])
def test_detect_langs_many_is_identical_to_langdetect(all_texts, langdetect_outcomes, batch_size):
    got = [_as_outcome(r) for r in langid.detect_langs_many(all_texts, batch_size=batch_size)]
    mismatches = [i for i, (a, b) in enumerate(zip(got, langdetect_outcomes)) if a != b]
    assert len(got) == len(all_texts) and mismatches == []


def test_detect_english_matches_tfds(reference_pages):
    c4_utils = load_c4_utils()
    pages = reference_pages + [
        Page(url=f"edge/{i}", text=t, normalized_url=f"edge/{i}") for i, t in enumerate(EDGE_TEXTS)
    ]
    with counters(c4_utils) as expected:
        expected_pages = [list(c4_utils.detect_english(tfds_page(c4_utils, p))) for p in pages]
    got = collections.Counter()
    batch = langid.english_verdicts(pages)
    for p, reference, batched in zip(pages, expected_pages, batch):
        verdict = langid.english_verdict(p)
        assert batched == verdict
        for name in verdict.counters:
            got[(reasons.NS_ENGLISH, name)] += 1
        assert langid.detect_english(p) == (verdict.page, verdict.reason)
        assert ([verdict.page] if verdict.page else []) == [as_page(r) for r in reference]
    assert got == expected
    # The comparison covered kept pages, other languages and exceptions.
    for code in (reasons.PASSED, reasons.IGNORED_LANGUAGE, reasons.LANGDETECT_EXCEPTION):
        assert expected[(reasons.NS_ENGLISH, code)] > 0


def test_detect_english_reasons():
    kept, reason = langid.detect_english(Page(url="u", text=ENGLISH))
    assert reason == reasons.PASSED and kept.language == "en" and kept.text == ENGLISH

    verdict = langid.english_verdict(Page(url="u", text=GERMAN))
    assert verdict.page is None and verdict.reason == reasons.IGNORED_LANGUAGE
    assert verdict.counters == (reasons.IGNORED_LANGUAGE, "filtered:ignored_language-de")

    assert langid.detect_english(Page(url="u", text="12345"))[1] == reasons.LANGDETECT_EXCEPTION
    # English is found, but a probability can never reach 1.01.
    assert langid.detect_english(Page(url="u", text=ENGLISH), min_probability=1.01) == (
        None,
        reasons.LOW_CONFIDENCE,
    )


def test_no_predictions_when_langdetect_returns_none(monkeypatch):
    # langdetect returns an empty list when no language gets over 0.1.
    monkeypatch.setattr(langid, "detect_langs", lambda text: [])
    assert langid.detect_english(Page(url="u", text=ENGLISH)) == (None, reasons.NO_PREDICTIONS)
    assert langid.detect_language(ENGLISH) == (reasons.UNKNOWN_LANGUAGE, 0.0)


def test_detect_language_multilingual():
    for text, expected in [(GERMAN, "de"), (FRENCH, "fr"), (RUSSIAN, "ru"), (JAPANESE, "ja")]:
        lang, prob = langid.detect_language(text)
        assert lang == expected and prob >= langid.MULTILINGUAL_MIN_PROBABILITY
    assert langid.detect_language("") == (reasons.UNKNOWN_LANGUAGE, 0.0)
    # Half English, half German: no language reaches 0.95, so the page is "und".
    lang, prob = langid.detect_language(ENGLISH + " " + GERMAN)
    assert lang == reasons.UNKNOWN_LANGUAGE and 0.0 < prob < 0.95


def test_only_the_first_10000_prepared_characters_count():
    # langdetect's max_text_length: German after 10,000 characters of English changes nothing.
    english = (ENGLISH + " ") * 60
    assert len(english) > 10000
    assert _outcome(langid.detect_langs, english + GERMAN * 50) == _outcome(langid.detect_langs, english)
    # URLs are removed before the cut and space runs collapsed, so 24,000 characters of URLs up
    # front do not push the English out.
    assert langid.prepare_text("https://x.org/a " * 1500 + ENGLISH).strip() == ENGLISH


def test_ngrams_are_langdetects_in_order(all_texts):
    # The random walk draws n-grams by position, so the list must be langdetect's, in its order:
    # capitalised runs (NASA, USA), a word at the end, non-Latin text and the edge texts.
    from langdetect.detector_factory import PROFILES_DIRECTORY, DetectorFactory

    factory = DetectorFactory()
    factory.load_profile(PROFILES_DIRECTORY)
    profiles = langid._get_profiles()
    gram_of_row = {row: gram for gram, row in profiles.inner_words.row.items()}
    for text in all_texts:
        detector = factory.create()
        detector.append(text)
        detector.cleaning_text()
        expected = detector._extract_ngrams()
        rows = langid._ngram_rows(profiles, langid.prepare_text(text))
        assert [gram_of_row[row] for row in rows] == expected


def test_inline_random_draw_matches_random_choice():
    assert langid._inline_randbelow_matches_choice()


def test_sums_follow_pythons_sum_on_any_version(monkeypatch, all_texts, langdetect_outcomes):
    # Python 3.12+ `sum` is compensated; the walk then sums with `sum` itself. Forcing that path
    # here must still give langdetect's results on 3.11 (where both sums agree bit for bit).
    monkeypatch.setattr(langid, "_SUM_IS_SEQUENTIAL", False)
    texts = all_texts[:40] + EDGE_TEXTS
    expected = langdetect_outcomes[:40] + langdetect_outcomes[-len(EDGE_TEXTS) :]
    assert [_outcome(langid.detect_langs, t) for t in texts] == expected
    assert [_as_outcome(r) for r in langid.detect_langs_many(texts)] == expected


def test_profile_table_is_langdetects_factory_bit_for_bit(tmp_path):
    import json

    import numpy as np
    from langdetect.detector_factory import PROFILES_DIRECTORY, DetectorFactory

    def factory_table(directory):
        factory = DetectorFactory()
        factory.load_profile(directory)
        grams = list(factory.word_lang_prob_map)
        return factory.langlist, grams, np.array([factory.word_lang_prob_map[g] for g in grams])

    languages, rows, table = langid.profile_table()
    expected_languages, expected_grams, expected = factory_table(PROFILES_DIRECTORY)
    assert languages == expected_languages and list(rows) == expected_grams
    assert table.tobytes() == expected.tobytes()
    # n-grams shared across languages and longer than 3 characters (a row of zeros) too
    for name, freq in (("aa", {"x": 3, "xy": 1, "long": 5}), ("bb", {"xy": 2, "z": 7})):
        profile = {"name": name, "freq": freq, "n_words": [10, 4, 2]}
        (tmp_path / name).write_text(json.dumps(profile), encoding="utf-8")
    (tmp_path / ".hidden").write_text("not a profile")
    languages, rows, table = langid.profile_table(str(tmp_path))
    expected_languages, expected_grams, expected = factory_table(str(tmp_path))
    assert languages == expected_languages and list(rows) == expected_grams
    assert table.tobytes() == expected.tobytes()
