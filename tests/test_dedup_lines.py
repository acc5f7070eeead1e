import collections
import hashlib
import random

import pytest

from c4clean.cleaning import reasons, tfds_reference
from c4clean.cleaning.dedup_lines import (
    emit_line_keys,
    keep_keys_by_url,
    line_key,
    pick_line_owner,
    remove_lines,
    url_rank,
)
from c4clean.cleaning.page import Page
from c4clean.cleaning.rules import clean_page
from c4clean.cleaning.url import select_newest_page


def md5(s):
    return hashlib.md5(s.encode("utf-8")).digest()


def test_line_key_is_md5_of_stripped_lowercased_line():
    assert line_key("  Hello World.\t") == md5("hello world.")
    assert line_key("HELLO WORLD.") == line_key("hello world.")
    assert line_key("hello  world.") != line_key("hello world.")


def test_url_rank_uses_the_original_url_not_the_normalized_one():
    assert url_rank("https://www.a.com/x/") == md5("https://www.a.com/x/").hex()
    assert url_rank("https://www.a.com/x/") != url_rank("a.com/x")


def test_emit_line_keys_splits_on_newline_only_and_emits_each_key_once():
    p = Page(url="http://a.com/", text="One line.\u2028Same line.\nTWO.\n two. \n", normalized_url="a.com")
    assert list(emit_line_keys(p)) == [
        (md5("one line.\u2028same line."), "http://a.com/"),
        (md5("two."), "http://a.com/"),
        (md5(""), "http://a.com/"),
    ]


def test_pick_line_owner_takes_smallest_md5_not_smallest_url():
    urls = [f"http://site{i}.com/" for i in range(20)]
    winner = pick_line_owner(urls)
    assert winner == min(urls, key=lambda u: md5(u))
    assert winner != min(urls)  # the md5 order differs from the plain order here
    # associative, as Beam's CombinePerKey needs; None from merged empty accumulators is skipped
    assert pick_line_owner([pick_line_owner(urls[:7]), None, pick_line_owner(urls[7:])]) == winner
    assert pick_line_owner([]) is None


LINES = ["It rained all day.", "The roads were flooded.", "Schools stayed closed."]


def test_remove_lines_global_and_local_duplicates_keep_original_line_text():
    text = "\n".join([LINES[0], "  " + LINES[1].upper(), LINES[1], "Owned elsewhere.", LINES[2]])
    p = Page(url="u", text=text)
    keep = {line_key(x) for x in LINES}
    result = remove_lines(p, keep, min_num_sentences=3)
    assert result.page.text == "\n".join([LINES[0], "  " + LINES[1].upper(), LINES[2]])
    assert result.dropped_lines == [
        (LINES[1], reasons.LINE_LOCAL_DUPLICATE),
        ("Owned elsewhere.", reasons.LINE_GLOBAL_DUPLICATE),
    ]
    assert result.counts == collections.Counter(
        {
            reasons.LINE_PASSED: 3,
            reasons.LINE_LOCAL_DUPLICATE: 1,
            reasons.LINE_GLOBAL_DUPLICATE: 1,
            reasons.PASSED: 1,
        }
    )


def test_repeat_of_a_line_owned_elsewhere_is_a_global_duplicate():
    p = Page(url="u", text="A.\na.\nB.")
    result = remove_lines(p, {line_key("B.")}, min_num_sentences=0)
    assert [code for _, code in result.dropped_lines] == [reasons.LINE_GLOBAL_DUPLICATE] * 2
    assert result.page.text == "B."


def test_nothing_left_is_empty():
    result = remove_lines(Page(url="u", text="A.\nB."), set(), min_num_sentences=0)
    assert result.page is None and result.reason == reasons.PAGE_EMPTY
    assert result.counts[reasons.PAGE_EMPTY] == 1


def test_sentences_are_counted_on_the_whole_joined_text():
    # four lines, one sentence each when counted line by line, but Punkt reads "Dr.\nSmith" as one
    # sentence in the joined text: two sentences in all, so the page goes
    lines = ["Dr.", "Smith went home.", "Mr.", "Jones did too."]
    p = Page(url="u", text="\n".join(lines))
    keep = {line_key(x) for x in lines}
    result = remove_lines(p, keep, min_num_sentences=3)
    assert result.reason == reasons.PAGE_TOO_FEW_SENTENCES and result.page is None
    # without a sentence minimum (en.noclean, mC4) it stays
    assert remove_lines(p, keep, min_num_sentences=0).page.text == p.text


# --- differential against the TFDS reference, remove_duplicate_text semantics in plain Python ---------


@pytest.fixture(scope="module")
def c4_utils():
    pytest.importorskip("tensorflow_datasets")
    return tfds_reference.load_c4_utils()


def corpus_with_duplicates(shared_data):
    """Cleaned real pages, plus copies under other urls that mix, repeat and re-case their lines."""
    by_url = collections.defaultdict(list)
    for p in tfds_reference.differential_corpus(shared_data):
        by_url[p.normalized_url].append(tfds_reference.as_page(p))
    # as in the pipeline: URL dedup, then clean_page, then line dedup
    pages = [select_newest_page(group) for group in by_url.values()]
    pages = [r.page for r in map(clean_page, pages) if r.page is not None]
    rng = random.Random(7)
    extra = []
    for i in range(120):
        a, b = rng.sample(pages, 2)
        lines = a.text.split("\n")[:4] + b.text.split("\n")[-3:]
        lines += [rng.choice(lines).upper(), " " + rng.choice(lines) + " "]
        rng.shuffle(lines)
        extra.append(Page(url=f"http://copy{i}.example/{a.url}", text="\n".join(lines)))
    return pages + extra


def reference_dedup(c4_utils, pages, min_num_sentences):
    owner = {}
    for p in pages:
        for key, url in c4_utils._emit_url_to_lines(tfds_reference.tfds_page(c4_utils, p)):
            # Top.PerKey(1, key=_hash_text, reverse=True) keeps the url with the smallest hash
            if key not in owner or c4_utils._hash_text(url) < c4_utils._hash_text(owner[key]):
                owner[key] = url
    lines_of = collections.defaultdict(list)
    for key, url in owner.items():
        lines_of[url].append(key)
    counts = collections.Counter()
    out = {}
    for p in pages:
        el = (p.url, {"pages": [tfds_reference.tfds_page(c4_utils, p)], "lines": lines_of[p.url]})
        for kept in c4_utils._remove_lines_from_text(
            el, counter_inc_fn=lambda n, a=1: counts.update({n: a}), min_num_sentences=min_num_sentences
        ):
            out[p.url] = tfds_reference.as_page(kept)
    return out, counts


def our_dedup(pages, min_num_sentences):
    keep = keep_keys_by_url(pages)
    counts = collections.Counter()
    out = {}
    for p in pages:
        result = remove_lines(p, keep.get(p.url, ()), min_num_sentences)
        counts.update(result.counts)
        if result.page is not None:
            out[p.url] = result.page
    return out, counts


@pytest.mark.parametrize("min_num_sentences", [3, 0])
def test_dedup_matches_reference(c4_utils, shared_data, min_num_sentences):
    pages = corpus_with_duplicates(shared_data)
    assert len({p.url for p in pages}) == len(pages)
    expected, expected_counts = reference_dedup(c4_utils, pages, min_num_sentences)
    ours, counts = our_dedup(pages, min_num_sentences)
    assert ours == expected
    assert counts == expected_counts
    assert counts[reasons.LINE_GLOBAL_DUPLICATE] > 0 and counts[reasons.LINE_LOCAL_DUPLICATE] > 0
    assert 0 < len(ours) < len(pages)
