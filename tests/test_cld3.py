"""mC4's cld3 stage (`cleaning.cld3`): TFDS `detect_languages` verdicts and counters."""

import pytest

from c4clean.cleaning import cld3, reasons

pytest.importorskip("gcld3")

GERMAN = (
    "Alle Menschen sind frei und gleich an Würde und Rechten geboren. Sie sind mit Vernunft und "
    "Gewissen begabt und sollen einander im Geist der Brüderlichkeit begegnen."
)
ENGLISH = (
    "All human beings are born free and equal in dignity and rights. They are endowed with reason "
    "and conscience and should act towards one another in a spirit of brotherhood."
)


def test_reliable_language_in_mc4_list_is_kept_with_its_counters():
    verdict = cld3.language_verdict(GERMAN)
    assert verdict.language == "de" and verdict.probability >= cld3.MIN_PROBABILITY
    assert verdict.counters == (reasons.PASSED, "passed:de")


def test_short_text_is_und_and_kept():
    # Under min_num_bytes=100 cld3 gives no reliable answer: TFDS keeps the page as `und`.
    verdict = cld3.language_verdict("Guten Tag, wie geht es?")
    assert verdict.language == reasons.UNKNOWN_LANGUAGE
    assert verdict.counters == (reasons.NO_PREDICTIONS, reasons.PASSED, "passed:und")


def test_reliable_language_outside_the_list_is_dropped():
    verdict = cld3.language_verdict(GERMAN, valid_languages={"en"})
    assert verdict.language is None and verdict.counters == (reasons.IGNORED_LANGUAGE,)
    assert cld3.language_verdict(ENGLISH, valid_languages={"en"}).language == "en"


def test_below_the_threshold_is_und():
    verdict = cld3.language_verdict(GERMAN, min_probability=1.01)
    assert verdict.language == reasons.UNKNOWN_LANGUAGE
    assert verdict.counters[0] == reasons.LOW_CONFIDENCE


def test_mc4_languages_are_tfds_list():
    tfds_c4 = pytest.importorskip("tensorflow_datasets.text.c4")
    assert list(cld3.MC4_LANGUAGES) == tfds_c4.MC4_LANGUAGES and len(cld3.MC4_LANGUAGES) == 107
