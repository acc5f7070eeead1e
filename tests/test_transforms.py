"""The pipeline's transforms on small in-memory collections: outputs and the counts they report."""

from __future__ import annotations

import itertools
import json
import pickle

import apache_beam as beam

from c4clean.cleaning import reasons
from c4clean.cleaning.page import Page
from c4clean.cleaning.url import split_for_url
from c4clean.pipelines import counting, transforms
from c4clean.pipelines.perfile import Staged


def _staged(url: str, timestamp: str, order: tuple, text: str = "") -> Staged:
    page = Page(url=url, text=text or f"{url} at {timestamp}", timestamp=timestamp, normalized_url="a.com/x")
    return Staged(page, None, {}, order)


def _save(elements, path: str) -> None:
    with open(path, "wb") as f:
        pickle.dump(elements, f)


def _run(build, tmp_path, inputs):
    """Runs `build(pcoll)` on `inputs`; returns (outputs, counts)."""
    found_path, counts_path = str(tmp_path / "found.pickle"), str(tmp_path / "counts.json")
    with beam.Pipeline() as p:
        out = build(p | beam.Create(inputs))
        _ = out | beam.combiners.ToList() | beam.Map(_save, path=found_path)
        _ = p | counting.WriteCounts(counts_path)
    with open(found_path, "rb") as f:
        found = pickle.load(f)
    with open(counts_path) as f:
        return found, json.load(f)


def test_newest_page_wins_and_ties_go_to_the_first_read_whatever_the_bundling():
    old = _staged("http://a.com/x", "2019-01-01", (0, 5))
    new_late = _staged("https://a.com/x", "2019-02-01", (1, 0))
    new_early = _staged("http://www.a.com/x", "2019-02-01", (0, 9))
    combine = transforms._NewestPerUrl()
    winners = []
    for perm in itertools.permutations([old, new_late, new_early]):
        for cut in range(4):  # two bundles, merged in either order
            parts = [perm[:cut], perm[cut:]]
            accs = [combine.create_accumulator() for _ in parts]
            for i, part in enumerate(parts):
                for s in part:
                    accs[i] = combine.add_input(accs[i], s)
            for merged in (combine.merge_accumulators(accs), combine.merge_accumulators(accs[::-1])):
                best, n = combine.extract_output(merged)
                winners.append(best)
                assert n == 3
    assert len(winners) == 6 * 4 * 2 and all(w is new_early for w in winners)
    assert transforms._newer(None, old) is old and transforms._newer(old, None) is old


def test_select_newest_per_url_counts_the_duplicates(tmp_path):
    staged = [
        _staged("http://a.com/x", "2019-01-01", (0, 0)),
        _staged("http://a.com/x", "2019-03-01", (0, 1)),
    ]
    staged.append(Staged(Page(url="http://b.com/", text="b", normalized_url="b.com"), None, {}, (1, 0)))
    found, counts = _run(lambda pc: pc | transforms.SelectNewestPerUrl(), tmp_path, staged)
    assert sorted(s.page.timestamp for s in found) == ["", "2019-03-01"]
    assert counts[reasons.NS_URL_DEDUP] == {reasons.FILTERED: 1, reasons.PASSED: 2}
    stages = counts[reasons.NS_STAGES]
    assert stages[f"{transforms.URL_DEDUP}:in"] == 3 and stages[f"{transforms.URL_DEDUP}:out"] == 2


def test_staged_verdicts_drop_at_their_position_with_their_counts(tmp_path):
    kept = Staged(Page(url="k", text="kept text"), None, {reasons.PASSED: 1, "line-filtered:x": 2}, (0, 0))
    dropped = Staged(Page(url="d", text=""), (reasons.NS_CLEAN, reasons.PAGE_LOREM_IPSUM), {}, (0, 1))
    found, counts = _run(
        lambda pc: transforms.apply_staged_verdicts(pc, reasons.NS_CLEAN), tmp_path, [kept, dropped]
    )
    assert found == [kept.page]
    assert counts[reasons.NS_CLEAN] == {reasons.PASSED: 1, "line-filtered:x": 2}
    stages = counts[reasons.NS_STAGES]
    assert (stages[f"{transforms.PAGE_RULES}:in"], stages[f"{transforms.PAGE_RULES}:out"]) == (2, 1)
    assert stages[f"{transforms.PAGE_RULES}:bytes"] == len("kept text")


def test_assign_split_by_url_hash_and_language(tmp_path):
    # find a URL of each split (validation is 0.1% of URLs)
    urls = [f"example.com/{i}" for i in range(5000)]
    train = next(u for u in urls if split_for_url(u) == "train")
    validation = next(u for u in urls if split_for_url(u) == "validation")
    pages = [Page(url=u, text="t", normalized_url=u, language="de") for u in (train, validation)]
    found, counts = _run(lambda pc: pc | beam.ParDo(transforms.AssignSplit(True)), tmp_path, pages)
    assert sorted((s, p.url) for s, p in found) == [("train", train), ("validation", validation)]
    found, _ = _run(lambda pc: pc | beam.ParDo(transforms.AssignSplit(False)), tmp_path, pages)
    assert sorted((s, p.url) for s, p in found) == [("de", train), ("de-validation", validation)]


def test_dedup_lines_keeps_each_line_in_one_page(tmp_path):
    shared = "This line is shared by both pages of the test."
    a = Page(url="http://a.com/", text="\n".join([shared, "Only page a has this line in it."]))
    b = Page(url="http://b.com/", text="\n".join([shared, "Only page b has this line in it."]))
    found, counts = _run(lambda pc: pc | transforms.DedupLines(min_num_sentences=1), tmp_path, [a, b])
    texts = sorted(p.text for p in found)
    assert sum(shared in t for t in texts) == 1 and len(texts) == 2
    assert counts[reasons.NS_DEDUP_LINES]["line-filtered:global_duplicate"] == 1
