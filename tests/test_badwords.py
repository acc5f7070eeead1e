"""The C4 bad-words filter: every rule of TFDS v3.1.0 `get_badwords_filter_fn`, then page-by-page
agreement with the reference on real and TFDS fake pages."""

from __future__ import annotations

import ast
import collections
import hashlib
import random
from fractions import Fraction
from pathlib import Path

import pytest

from c4clean.cleaning import reasons
from c4clean.cleaning.badwords import (
    BadwordsFilter,
    BadwordsMatcher,
    compile_badwords_regex,
    load_words,
    packaged_list_files,
)
from c4clean.cleaning.page import Page
from c4clean.cleaning.tfds_reference import as_page, counters, differential_corpus, load_c4_utils, tfds_page

PACKAGED = Path(__file__).resolve().parents[1] / "c4clean" / "cleaning" / "data" / "badwords"
KEEP = (reasons.PASSED, reasons.SOFT_PASSED)


def page(text, language="en", url="https://example.com/a"):
    return Page(url=url, text=text, language=language, normalized_url=url.split("://")[-1])


@pytest.fixture
def custom(tmp_path):
    """A filter over small hand-written lists, so each rule is tested on words chosen for it."""
    (tmp_path / "en").write_text("ass\nsex toy\na.b\nx+\n", encoding="utf-8")
    (tmp_path / "zh").write_text("性\n13.\n黄片\n", encoding="utf-8")
    (tmp_path / "de").write_text("arsch\n", encoding="utf-8")
    (tmp_path / "de-AT-x-test").write_text("  oasch  \n", encoding="utf-8")
    return BadwordsFilter(lists_dir=tmp_path)


def verdict(f, text, language="en"):
    return f(page(text, language)).reason


# --- matching rules --------------------------------------------------------------------------------


def test_word_must_be_flanked_by_non_word_characters(custom):
    for text in ["ass", "an ass here", "ass, then more", "the end: ass", "(ass)", "x\nass\ny"]:
        assert verdict(custom, text) == reasons.FILTERED, text
    # Inside a word, or joined to letters, digits or "_", it is not a bad word.
    for text in ["class", "passage", "assist", "bass", "ass_", "2ass", "asses"]:
        assert verdict(custom, text) == reasons.PASSED, text


def test_match_at_start_and_end_of_text_and_of_lines(custom):
    assert verdict(custom, "ass is at the start") == reasons.FILTERED
    assert verdict(custom, "at the end is ass") == reasons.FILTERED
    assert verdict(custom, "line one.\nass starts line two.") == reasons.FILTERED
    assert verdict(custom, "line one ends with ass\nline two.") == reasons.FILTERED


def test_text_is_lowercased_before_matching(custom):
    assert verdict(custom, "What an ASS.") == reasons.FILTERED
    assert verdict(custom, "A Sex Toy shop") == reasons.FILTERED


def test_multiword_entry_matches_only_with_its_exact_spacing(custom):
    assert verdict(custom, "buy a sex toy now") == reasons.FILTERED
    assert verdict(custom, "sex  toy") == reasons.PASSED
    assert verdict(custom, "sex\ntoy") == reasons.PASSED
    assert verdict(custom, "sex toys") == reasons.PASSED


def test_words_are_regex_escaped(custom):
    # Unescaped, "a.b" would match "axb" and "x+" would match "xxx" (TFDS 3.0 did exactly that).
    assert verdict(custom, "a.b is listed") == reasons.FILTERED
    assert verdict(custom, "axb is not") == reasons.PASSED
    assert verdict(custom, "x+ is listed") == reasons.FILTERED
    assert verdict(custom, "xxx is not") == reasons.PASSED
    assert verdict(custom, "13a", "zh") == reasons.PASSED
    assert verdict(custom, "去13.看", "zh") == reasons.FILTERED


def test_unspaced_languages_match_inside_runs_of_characters(custom):
    assert verdict(custom, "我不看黄片的", "zh") == reasons.FILTERED
    # The same embedding in a spaced language is not a match.
    assert verdict(custom, "zuarschlos", "de") == reasons.PASSED
    assert verdict(custom, "zu arsch los", "de") == reasons.FILTERED


def test_allowlist_applies_to_its_own_language_only(custom):
    # "性" is on the custom zh list, but allowlisted for zh.
    assert verdict(custom, "他的性别", "zh") == reasons.PASSED
    packaged = BadwordsFilter()
    ja_words = load_words([PACKAGED / "5faf2ba" / "ja"], "xx")  # "xx": no allowlist applied
    assert {"sm", "グロ", "女の子"} <= ja_words
    for word in ["sm", "グロ", "女の子"]:
        # A text holding only the allowlisted word (checked: no other ja word occurs in it).
        assert not any(w in word for w in ja_words - {word})
        assert verdict(packaged, f"これは{word}です", "ja") == reasons.PASSED
    # "性" is allowlisted for zh, not ja: ja words containing it still filter ja pages, and the
    # zh allowlist does not touch them.
    assert "性交" in ja_words
    assert verdict(packaged, "性交", "ja") == reasons.FILTERED


def test_language_suffixes_are_stripped_and_lists_merged(custom):
    # "oasch" comes from the file de-AT-x-test, merged into de; lines are strip()ped.
    assert verdict(custom, "so a oasch", "de") == reasons.FILTERED
    assert verdict(custom, "so a oasch", "de-AT") == reasons.FILTERED
    assert verdict(custom, "du arsch", "de-CH") == reasons.FILTERED
    assert custom.languages == {"en", "zh", "de"}


def test_languages_without_a_list_pass_and_missing_language_is_an_error(custom):
    assert verdict(custom, "ass", "fr") == reasons.PASSED
    assert custom.language_namespace(page("ass", "fr")) is None
    assert custom.language_namespace(page("ass", "de-AT")) == "badwords-filter-de"
    with pytest.raises(ValueError, match="no language"):
        custom(Page(url="u", text="ass"))


def test_filter_fraction_out_of_range_is_rejected():
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError):
            BadwordsFilter(filter_fraction=bad)


def test_matcher_finds_a_word_exactly_when_the_tfds_pattern_does():
    # The matcher looks single-token words up in the set of the text's \w+ runs; the TFDS pattern
    # tries the whole alternation. Texts glued from listed words, parts of them and separators
    # that are word characters ("_", "é", digits) or not ("-", "🖕", newline) must agree.
    rng = random.Random(7)
    words = sorted(load_words(packaged_list_files()["en"], "en"))
    glue = [" ", "", "_", "é", "7", "-", ".", "\n", "🖕", "&", "'", "ß"]
    matcher, pattern = BadwordsMatcher("en", words), compile_badwords_regex("en", words)
    found = 0
    for _ in range(4000):
        parts = []
        for _ in range(rng.randint(1, 4)):
            w = rng.choice(words)
            if rng.random() < 0.3:
                w = w[: rng.randint(1, len(w))]
            parts += [w, rng.choice(glue)]
        text = rng.choice(glue) + "".join(parts)
        expected = pattern.search(text) is not None
        assert (matcher.search(text) is not None) == expected, text
        found += expected
    assert 500 < found < 3500  # both outcomes were exercised


# --- the packaged C4 lists -------------------------------------------------------------------------


def test_packaged_selection_is_the_c4_one():
    files = packaged_list_files()
    en = load_words(files["en"], "en")
    assert len(en) == 377  # LDNOOBW 25e679f/en, as c4-rules.md counts it
    assert {"2 girls 1 cup", "g-spot", "s&m", "🖕"} <= en
    # fr merges fr and fr-CA-u-sd-caqc (both at 5faf2ba).
    assert {p.name for p in files["fr"]} == {"fr", "fr-CA-u-sd-caqc"}
    f = BadwordsFilter()
    # "bangbus" is in 5faf2ba/en but not in 25e679f/en: English uses the older list.
    newer_en = load_words([PACKAGED / "5faf2ba" / "en"], "en")
    assert "bangbus" in newer_en and "bangbus" not in en
    assert verdict(f, "watch bangbus now") == reasons.PASSED
    assert verdict(f, "a g-spot.") == reasons.FILTERED
    assert verdict(f, "he showed 🖕 to me") == reasons.FILTERED
    # A word only in fr-CA-u-sd-caqc filters fr pages.
    only_ca = load_words([PACKAGED / "5faf2ba" / "fr-CA-u-sd-caqc"], "fr") - load_words(
        [PACKAGED / "5faf2ba" / "fr"], "fr"
    )
    word = sorted(only_ca)[0]
    assert verdict(f, f"c'est {word} ici", "fr") == reasons.FILTERED


# --- soft filtering --------------------------------------------------------------------------------


def _expected_keep(normalized_url, fraction):
    n, d = Fraction(fraction).numerator, Fraction(fraction).denominator
    return int(hashlib.md5(normalized_url.encode("utf-8")).hexdigest(), 16) % d >= n


@pytest.mark.parametrize("fraction", [1.0, 0.999, 0.75, 0.5, 0.0])
def test_soft_filtering_keeps_pages_by_url_hash(fraction):
    f = BadwordsFilter(filter_fraction=fraction)
    urls = [f"site{i % 97}.example/{i}/page" for i in range(20000)]
    kept = [f(page("an ass here", url="http://" + u)).reason == reasons.SOFT_PASSED for u in urls]
    assert kept == [_expected_keep(u, fraction) for u in urls]
    # float.as_integer_ratio is exact, so the kept share is 1 - fraction up to sampling noise.
    share = sum(kept) / len(urls)
    assert abs(share - (1 - fraction)) <= 4 * max(
        (fraction * (1 - fraction) / len(urls)) ** 0.5, 1 / len(urls)
    )
    # Pages without a bad word always pass, whatever their hash.
    assert all(f(page("a clean text", url="http://" + u)).reason == reasons.PASSED for u in urls[:500])


def test_soft_passed_pages_are_kept():
    f = BadwordsFilter(filter_fraction=0.5)
    decisions = {f(page("ass", url=f"http://x.org/{i}")) for i in range(50)}
    assert {(d.keep, d.reason) for d in decisions} == {(True, reasons.SOFT_PASSED), (False, reasons.FILTERED)}


# --- differential: TFDS reference, page by page ----------------------------------------------------


def _tfds_constants():
    """`_BADWORDS_LANGS` and `_BADWORDS_ALLOWLIST` read from the installed TFDS c4.py source."""
    import tensorflow_datasets

    source = (Path(tensorflow_datasets.__file__).parent / "text" / "c4.py").read_text()
    values = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if name in ("_BADWORDS_LANGS", "_BADWORDS_ALLOWLIST"):
                values[name] = ast.literal_eval(node.value)
    return values["_BADWORDS_LANGS"], values["_BADWORDS_ALLOWLIST"]


def _tfds_badwords():
    """The word sets exactly as TFDS c4.py `_get_pages_pcollection` builds them from its downloads."""
    langs, allowlist = _tfds_constants()
    files = {lang: PACKAGED / "5faf2ba" / lang for lang in langs}
    files["en"] = PACKAGED / "25e679f" / "en"  # _EN_BADWORDS_URL
    badwords = collections.defaultdict(set)
    for lang, path in files.items():
        lang = lang.split("-")[0]
        with open(path) as f:
            badwords[lang].update(line.strip() for line in f)
    for lang, allowed in allowlist.items():
        badwords[lang] -= allowed
    return badwords


@pytest.fixture(scope="module")
def reference_pages(shared_data):
    pages = [as_page(p) for p in differential_corpus(shared_data)]
    assert len(pages) >= 300
    return pages


def _with_language_and_words(pages, badwords):
    """Each page gets a language in turn (all list languages, suffixed tags, one without a list),
    and every third page a word of its language's list in the middle of its text, so that every
    list and both outcomes are exercised."""
    tags = sorted(badwords) + ["fr-CA", "zh-Hant", "en-US", "xx"]
    out = []
    for i, p in enumerate(pages):
        tag = tags[i % len(tags)]
        text = p.text
        words = sorted(badwords.get(tag.split("-")[0], ()))
        if words and i % 3 == 0:
            middle = len(text) // 2
            text = f"{text[:middle]} {words[i % len(words)]} {text[middle:]}"
        out.append(p.replace(language=tag, text=text))
    return out


@pytest.mark.parametrize("fraction", [1.0, 0.999, 0.5])
def test_matches_tfds_get_badwords_filter_fn(reference_pages, fraction):
    c4_utils = load_c4_utils()
    badwords = _tfds_badwords()
    pages = _with_language_and_words(reference_pages, badwords) + [
        p.replace(language="en") for p in reference_pages
    ]
    ours = BadwordsFilter(filter_fraction=fraction)
    with counters(c4_utils) as expected:
        reference = c4_utils.get_badwords_filter_fn(badwords, filter_fraction=fraction)
        expected_keep = [reference(tfds_page(c4_utils, p)) for p in pages]
    got = collections.Counter()
    got_keep = []
    for p in pages:
        decision = ours(p)
        got_keep.append(decision.keep)
        got[(reasons.NS_BADWORDS, decision.reason)] += 1
        namespace = ours.language_namespace(p)
        if namespace:
            got[(namespace, decision.reason)] += 1
    assert got_keep == expected_keep
    assert got == expected
    assert expected[(reasons.NS_BADWORDS, reasons.FILTERED)] > 50  # the comparison saw both outcomes
