import collections
import random

import pytest

from c4clean.cleaning import reasons, tfds_reference
from c4clean.cleaning.page import Page
from c4clean.cleaning.rules import (
    MAX_PAGE_LENGTH,
    clean_page,
    is_valid_length,
    paragraph_filter,
)

GOOD = [
    "The committee met on Tuesday to review the annual budget.",
    "Several members asked for more time to read the report.",
    "The chair agreed and moved the vote to next week.",
]


def page(*lines, url="http://example.com/p"):
    return Page(url=url, text="\n".join(lines), normalized_url="example.com/p")


def kept_text(*lines):
    result = clean_page(page(*lines))
    assert result.page is not None, result.reason
    return result.page.text.split("\n")


# --- end marks ---------------------------------------------------------------------------------


def test_straight_double_quote_is_an_end_mark():
    line = 'She said the plan was, in her words, "good enough for now."'
    assert line in kept_text(*GOOD, line)
    line2 = 'He called the whole affair "a disaster"'
    assert line2 in kept_text(*GOOD, line2)


@pytest.mark.parametrize(
    "ending",
    ["\u201d", "'", "\u2026", "...", ".\u2019", "!...", ":", ")"],
)
def test_other_endings_are_not_end_marks(ending):
    line = "This line has plenty of words but ends oddly" + ending
    result = clean_page(page(*GOOD, line))
    assert line not in result.page.text.split("\n")
    assert (line, reasons.LINE_NO_ENDMARK) in result.dropped_lines


@pytest.mark.parametrize("mark", [".", "?", "!"])
def test_period_question_exclamation_pass(mark):
    line = "Is this line long enough to be kept here" + mark
    assert line in kept_text(*GOOD, line)


# --- order of too-long-word, citations and word count --------------------------------------------


def test_too_long_word_is_checked_before_citation_removal():
    # 995 letters + "[1234]" is 1001 characters as written; 995 after citation removal
    line = "Word " + "a" * 995 + "[1234] is in this line of text."
    result = clean_page(page(*GOOD, line))
    assert result.dropped_lines == [(line, reasons.LINE_TOO_LONG_WORD)]
    assert result.counts[reasons.LINE_TOO_LONG_WORD] == 1


def test_word_of_exactly_max_length_is_allowed():
    line = "Word " + "a" * 1000 + " is long but allowed here."
    assert line in kept_text(*GOOD, line)


def test_word_count_is_taken_after_citation_removal():
    # six tokens as written, four after the citations go
    line = "Alpha beta gamma [1] [2] delta."
    result = clean_page(page(*GOOD, line))
    assert (line, reasons.LINE_TOO_SHORT) in result.dropped_lines


def test_citations_removed_before_end_mark_check_including_empty_brackets():
    kept = kept_text(
        *GOOD,
        "This claim is well supported by sources.[12]",
        "Another claim here needs proof, they say.[citation needed]",
        "The history section was edited last year.[edit]",
        "Even empty brackets vanish from this line.[]",
    )
    assert "This claim is well supported by sources." in kept
    assert "Another claim here needs proof, they say." in kept
    assert "The history section was edited last year." in kept
    assert "Even empty brackets vanish from this line." in kept


def test_citation_regex_is_case_sensitive_and_digits_only():
    lines = [
        "This line carries a capitalised marker.[Citation needed]",
        "This line carries a lettered note marker.[a]",
    ]
    result = clean_page(page(*GOOD, *lines))
    for line in lines:
        assert (line, reasons.LINE_NO_ENDMARK) in result.dropped_lines
    # citations in the middle of a kept line go too, leaving their surrounding spaces
    assert "The river  is long and very wide." in kept_text(*GOOD, "The river [3][] is long and very wide.")


# --- page kills fire only on lines that reached their step ---------------------------------------


def test_curly_bracket_on_line_without_end_mark_does_not_kill_page():
    line = "function init() { return window.location; }"
    result = clean_page(page(*GOOD, line))
    assert result.reason == reasons.PASSED
    assert (line, reasons.LINE_NO_ENDMARK) in result.dropped_lines


def test_curly_bracket_on_short_line_does_not_kill_page():
    assert clean_page(page(*GOOD, "x = {a: 1}.")).reason == reasons.PASSED


def test_curly_bracket_on_javascript_line_does_not_kill_page():
    line = "Please enable JavaScript in your browser settings {now}."
    result = clean_page(page(*GOOD, line))
    assert result.reason == reasons.PASSED
    assert (line, reasons.LINE_JAVASCRIPT) in result.dropped_lines


def test_curly_bracket_on_surviving_line_kills_page():
    line = "The set {1, 2, 3} has exactly three members."
    result = clean_page(page(*GOOD, line))
    assert result.page is None
    assert result.reason == reasons.PAGE_CURLY_BRACKET
    assert result.dropped_lines[-1] == (line, reasons.PAGE_CURLY_BRACKET)


def test_curly_bracket_on_policy_line_kills_page_since_policy_comes_later():
    result = clean_page(page(*GOOD, "Read our privacy policy {updated} before you go on."))
    assert result.reason == reasons.PAGE_CURLY_BRACKET


def test_lorem_ipsum_kills_only_lines_that_reached_it():
    assert clean_page(page(*GOOD, "Lorem ipsum dolor sit amet")).reason == reasons.PASSED  # no end mark
    assert clean_page(page(*GOOD, "Lorem ipsum dolor.")).reason == reasons.PASSED  # 3 words
    result = clean_page(page(*GOOD, "Lorem Ipsum dolor sit amet, consectetur."))
    assert result.reason == reasons.PAGE_LOREM_IPSUM and result.page is None


def test_lorem_ipsum_is_checked_before_javascript():
    line = "Lorem ipsum needs javascript to render here."
    assert clean_page(page(*GOOD, line)).reason == reasons.PAGE_LOREM_IPSUM


def test_page_kill_stops_counting_later_lines():
    result = clean_page(page(GOOD[0], "Lorem ipsum dolor sit amet, consectetur.", "short", GOOD[1]))
    assert result.counts == collections.Counter({reasons.LINE_PASSED: 1, reasons.PAGE_LOREM_IPSUM: 1})


# --- javascript and policy lines -----------------------------------------------------------------


def test_javascript_substring_drops_line_case_insensitively():
    line = "Our site works best with JAVASCRIPTS turned on."
    result = clean_page(page(*GOOD, line))
    assert result.reason == reasons.PASSED
    assert (line, reasons.LINE_JAVASCRIPT) in result.dropped_lines


@pytest.mark.parametrize(
    "phrase",
    ["terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies"],
)
def test_policy_substrings_drop_line(phrase):
    line = f"By staying here you accept our {phrase.upper()} in full."
    result = clean_page(page(*GOOD, line))
    assert (line, reasons.LINE_POLICY) in result.dropped_lines
    assert result.reason == reasons.PASSED


# --- sentences --------------------------------------------------------------------------------------


def test_three_sentences_counted_per_line_with_c4_punkt():
    # one line with three sentences is enough
    line = "It rained all day. The roads were flooded. Schools stayed closed."
    assert clean_page(page(line)).reason == reasons.PASSED
    # abbreviations do not end sentences with C4's Punkt parameters (untrained Punkt would count 5)
    mr = "Mr. Smith and Dr. Jones went to see the game."
    result = clean_page(page(mr, GOOD[0]))
    assert result.reason == reasons.PAGE_TOO_FEW_SENTENCES
    assert result.page is None


def test_too_few_sentences_after_dropping_lines():
    result = clean_page(page(GOOD[0], GOOD[1], "too short.", "no end mark here at all"))
    assert result.reason == reasons.PAGE_TOO_FEW_SENTENCES
    assert clean_page(page(GOOD[0]), min_num_sentences=1).reason == reasons.PASSED


# --- line handling and the result -----------------------------------------------------------------


def test_lines_are_split_with_splitlines_stripped_and_joined_with_newline():
    text = "  " + GOOD[0] + "  \r" + GOOD[1] + "\u2028" + GOOD[2] + "\x0c\n\n"
    result = clean_page(Page(url="u", text=text))
    assert result.page.text == "\n".join(GOOD)


def test_counts_are_the_tfds_counter_names():
    result = clean_page(
        page(
            *GOOD, "nope", "Enable javascript please, it is needed.", "Read our terms of use today, friends."
        )
    )
    assert result.counts == collections.Counter(
        {
            reasons.LINE_PASSED: 3,
            reasons.LINE_NO_ENDMARK: 1,
            reasons.LINE_JAVASCRIPT: 1,
            reasons.LINE_POLICY: 1,
            reasons.PASSED: 1,
        }
    )
    assert result.page.url == "http://example.com/p" and result.page.normalized_url == "example.com/p"


# --- page length and paragraphs --------------------------------------------------------------------


def test_is_valid_length_limit_is_inclusive():
    assert MAX_PAGE_LENGTH == 190_000
    assert is_valid_length(Page(url="u", text="a" * 190_000)) == (True, reasons.PASSED)
    assert is_valid_length(Page(url="u", text="a" * 190_001)) == (False, reasons.FILTERED)


@pytest.mark.parametrize(
    "lengths, keep",
    [
        ([200, 200, 200], True),
        ([300, 300], False),
        ([200, 200, 199], False),
        ([5, 250, 1, 400, 200], True),
        ([5, 250, 1, 400, 199], False),
    ],
)
def test_paragraph_filter(lengths, keep):
    text = "\n".join("x" * n for n in lengths)
    assert paragraph_filter(Page(url="u", text=text)) == (keep, reasons.PASSED if keep else reasons.FILTERED)


# --- differential against the TFDS reference --------------------------------------------------------


@pytest.fixture(scope="module")
def c4_utils():
    pytest.importorskip("tensorflow_datasets")
    return tfds_reference.load_c4_utils()


def reference_clean(c4_utils, clean_fn, p, **kwargs):
    counts = collections.Counter()
    out = list(
        clean_fn(
            tfds_reference.tfds_page(c4_utils, p),
            counter_inc_fn=lambda n, a=1: counts.update({n: a}),
            **kwargs,
        )
    )
    return (tfds_reference.as_page(out[0]) if out else None), counts


def assert_same_as_reference(c4_utils, pages, **kwargs):
    clean_fn = c4_utils.get_clean_page_fn()
    outcomes = collections.Counter()
    for p in pages:
        expected_page, expected_counts = reference_clean(c4_utils, clean_fn, p, **kwargs)
        result = clean_page(p, **kwargs)
        assert result.page == expected_page, p.url
        assert result.counts == expected_counts, p.url
        outcomes[result.reason] += 1
    return outcomes


def test_clean_page_matches_reference_on_real_and_tfds_fake_pages(c4_utils, shared_data):
    pages = [tfds_reference.as_page(p) for p in tfds_reference.differential_corpus(shared_data)]
    assert len(pages) >= 300
    outcomes = assert_same_as_reference(c4_utils, pages)
    assert outcomes[reasons.PASSED] > 0 and len(outcomes) >= 3
    assert_same_as_reference(
        c4_utils, pages[:60], min_num_sentences=5, min_words_per_line=3, max_word_length=20
    )


FRAGMENTS = [
    "The quick brown fox jumps over the lazy dog",
    "lorem ipsum dolor sit amet",
    "Enable JavaScript to continue",
    "see our privacy policy and terms of use",
    "var x = {a: 1}",
    "Mr. Smith met Dr. Jones",
    "It rained. It poured. It stopped",
    "[1]",
    "[]",
    "[edit]",
    "[citation needed]",
    "[Citation needed]",
    "a" * 998,
    "word",
    "two words",
    "\u201cquoted\u201d",
    "  ",
    "\t",
]
ENDINGS = ["", ".", "?", "!", '"', "...", "\u2026", "\u201d", "'", ".[2]", "[]", " ."]


def test_clean_page_matches_reference_on_generated_rule_edge_cases(c4_utils):
    rng = random.Random(20190418)
    pages = []
    for i in range(1500):
        lines = []
        for _ in range(rng.randint(1, 7)):
            parts = [rng.choice(FRAGMENTS) for _ in range(rng.randint(1, 4))]
            lines.append(" ".join(parts) + rng.choice(ENDINGS))
        sep = rng.choice(["\n", "\n", "\r\n", "\u2028"])
        pages.append(Page(url=f"http://gen.example/{i}", text=sep.join(lines)))
    outcomes = assert_same_as_reference(c4_utils, pages)
    # the generator reaches every page-level outcome
    assert {
        reasons.PASSED,
        reasons.PAGE_LOREM_IPSUM,
        reasons.PAGE_CURLY_BRACKET,
        reasons.PAGE_TOO_FEW_SENTENCES,
    } <= set(outcomes)


def test_paragraph_filter_matches_reference(c4_utils, shared_data):
    pages = [tfds_reference.as_page(p) for p in tfds_reference.differential_corpus(shared_data)]
    with tfds_reference.counters(c4_utils):
        for p in pages:
            assert paragraph_filter(p).keep == c4_utils.paragraph_filter(
                tfds_reference.tfds_page(c4_utils, p)
            )
    assert any(paragraph_filter(p).keep for p in pages) and not all(paragraph_filter(p).keep for p in pages)
