"""Near-dedup inside a candidate component: the packed bucket scan, prefix filtering and the
clustering rule, against brute force."""

import itertools
import random

import pytest
from test_near_dedup import (  # pytest puts tests/ on sys.path
    check_audit,
    edit_words,
    random_words,
    reference,
    run_near_dedup,
)

from c4clean.cleaning import minhash, reasons
from c4clean.cleaning.page import Page
from c4clean.pipelines import near_dedup, near_dedup_components, passes


def test_shared_buckets_are_the_keys_with_several_entries():
    rng = random.Random(1)
    for _ in range(200):
        # Few distinct keys (3 bytes of 0..2), so keys repeat, sometimes with the same id twice.
        entries = [
            (bytes(rng.randrange(3) for _ in range(3)), bytes(rng.randrange(4) for _ in range(5)))
            for _ in range(rng.randrange(40))
        ]
        packs = [pack for _, pack in passes.pack_by_key_shard(entries, 1)]
        rng.shuffle(packs)
        expected = sorted(sorted(ids) for ids in passes.unpack_groups((0, packs)).values() if len(ids) > 1)
        assert sorted(sorted(ids) for ids in near_dedup_components._shared_buckets((0, packs))) == expected


def random_sets(rng: random.Random, count: int) -> dict[bytes, set]:
    """Shingle sets in families (a base set and edited copies), so that some pairs are above and
    some just below usual thresholds."""
    sets = {}
    for family in range(count // 5):
        base = {f"f{family}-{i}".encode() for i in range(rng.randrange(1, 60))}
        for copy in range(5):
            edited = {s for s in base if rng.random() > 0.12 * copy}
            edited |= {f"f{family}-c{copy}-{i}".encode() for i in range(rng.randrange(4))}
            sets[rng.randbytes(8)] = edited
    return sets


@pytest.mark.parametrize("threshold", [0.5, 0.7, 0.8, 0.9, 1.0])
def test_prefix_filtering_finds_exactly_the_pairs_at_the_threshold(threshold):
    rng = random.Random(threshold)
    sets = random_sets(rng, 100)
    sets[b"empty" + bytes(3)] = set()
    for pid in sorted(sets)[:3]:  # exact copies (Jaccard 1)
        sets[pid[::-1]] = set(sets[pid])
    assert len(sets) > near_dedup.MAX_ALL_PAIRS_COMPONENT  # the prefix-filtering path
    expected = {
        (a, b): minhash.exact_jaccard(sets[a], sets[b])
        for a, b in itertools.combinations(sorted(sets), 2)
        if minhash.exact_jaccard(sets[a], sets[b]) >= threshold
    }
    near = near_dedup._near_pairs(sets, threshold, budget=len(sets) ** 2)
    found = {(a, b): j for a in near for b, j in near[a].items() if a < b}
    assert found == expected and expected


def component(rng: random.Random, families: int) -> list[tuple]:
    """(id, (url, text)) members: families of a text and edited copies (0 to 60 of 300 words)."""
    members = []
    for family in range(families):
        words = random_words(rng, 300)
        for copy in range(4):
            text = " ".join(edit_words(words, rng.sample(range(300), rng.randrange(0, 60)), rng))
            url = f"http://f{family}-{copy}.example/"
            members.append((minhash.page_id(url, text), (url, text)))
    return members


def smallest_first(members, threshold=0.8) -> dict:
    """Brute force: the smallest id left is kept and removes every page left at >= threshold."""
    sets = {pid: set(minhash.shingles(text)) for pid, (_, text) in members}
    left, removed = sorted(sets), {}
    while left:
        keeper, *rest = left
        near = [pid for pid in rest if minhash.exact_jaccard(sets[keeper], sets[pid]) >= threshold]
        removed.update(dict.fromkeys(near, keeper))
        left = [pid for pid in rest if pid not in near]
    return removed


def removed_by(rows, members) -> dict:
    url_of = {url: pid for pid, (url, _) in members}
    return {pid: url_of[row["kept_url"]] for pid, row in rows}


def test_dense_component_keeps_its_smallest_id_first(monkeypatch):
    # A component whose pairs would take too many comparisons to find: each kept page is compared
    # with the pages its prefix index points to, which must be all its near-duplicates.
    members = component(random.Random(4), 10)
    monkeypatch.setattr(near_dedup, "COMPARISONS_PER_PAGE", 0)
    kept, rows, found = near_dedup.keep_or_remove(members, 0.8, minhash.DEFAULT_NGRAM, "nfkc")
    expected = smallest_first(members)
    assert expected and removed_by(rows, members) == expected and found == len(expected)
    assert sorted(kept) == sorted(pid for pid, _ in members if pid not in expected)
    sets = {pid: set(minhash.shingles(text)) for pid, (_, text) in members}
    for pid, row in rows:
        assert row["jaccard"] == round(minhash.exact_jaccard(sets[pid], sets[expected[pid]]), 4) >= 0.8


def test_large_group_of_near_duplicates_keeps_its_smallest_id_first(monkeypatch):
    # One text and 11 copies with 0 to 10 of 300 words edited: pairs above and below the threshold,
    # one large group of near-duplicates (over MAX_STAR_COMPONENT here) where the star rule and
    # smallest-id-first differ.
    rng = random.Random(7)
    words = random_words(rng, 300)
    members = []
    for copy in range(12):
        text = " ".join(edit_words(words, rng.sample(range(300), rng.randrange(0, 10)), rng))
        members.append((minhash.page_id(f"http://c{copy}/", text), (f"http://c{copy}/", text)))
    _, star_rows, _ = near_dedup.keep_or_remove(members, 0.8, minhash.DEFAULT_NGRAM, "nfkc")
    expected = smallest_first(members)
    assert removed_by(star_rows, members) != expected
    monkeypatch.setattr(near_dedup, "MAX_STAR_COMPONENT", 3)
    kept, rows, _ = near_dedup.keep_or_remove(members, 0.8, minhash.DEFAULT_NGRAM, "nfkc")
    assert removed_by(rows, members) == expected
    assert sorted(kept) == sorted(pid for pid, _ in members if pid not in expected)


def test_star_rule_within_a_component_matches_brute_force():
    members = component(random.Random(5), 12)  # 48 pages: the prefix-filtering path
    assert len(members) > near_dedup.MAX_ALL_PAIRS_COMPONENT
    pages = [Page(url=url, text=text) for _, (url, text) in members]
    expected_kept, expected_removed = reference(pages)
    kept, rows, found = near_dedup.keep_or_remove(members, 0.8, minhash.DEFAULT_NGRAM, "nfkc")
    url_of = dict(members)
    assert sorted(url_of[pid][0] for pid in kept) == expected_kept
    assert {row["url"]: row["kept_url"] for _, row in rows} == expected_removed
    sets = [set(minhash.shingles(p.text)) for p in pages]
    assert found == sum(minhash.exact_jaccard(a, b) >= 0.8 for a, b in itertools.combinations(sets, 2))


def test_pipeline_clusters_a_large_candidate_component(tmp_path):
    # 36 pages of one text with 0 to 50 of 300 words edited: one candidate component beyond
    # MAX_ALL_PAIRS_COMPONENT, where some pairs are above the threshold and some below.
    rng = random.Random(6)
    words = random_words(rng, 300)
    texts = [
        " ".join(edit_words(words, rng.sample(range(300), rng.randrange(0, 50)), rng)) for _ in range(36)
    ]
    pages = [Page(url=f"http://v{i}.example/", text=t) for i, t in enumerate(texts)]
    kept, counters, audit = run_near_dedup(pages, tmp_path)
    expected, removed = reference(pages)
    assert kept == expected and removed
    check_audit(pages, audit, 0.8, removed)
    assert counters[reasons.NEAR_DUPLICATE] == len(removed)
    assert counters.get(reasons.NEAR_DEDUP_UNCONVERGED, 0) == 0
