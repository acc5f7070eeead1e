"""The pipeline's global steps and per-page steps on small inputs: outputs and the counts they report."""

from __future__ import annotations

import collections
import itertools
import json
import pickle
from pathlib import Path

import apache_beam as beam
from test_perfile import GOOD, _record, _rules, _wet  # noqa: E402 - pytest puts tests/ on sys.path

from c4clean.cleaning import reasons
from c4clean.cleaning.dedup_lines import line_key
from c4clean.cleaning.page import Page
from c4clean.cleaning.url import split_for_url
from c4clean.pipelines import arrow_sink, counting, passes, perfile, steps, transforms
from c4clean.pipelines.options import VARIANTS
from c4clean.pipelines.perfile import Staged, UrlEntry


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


class _Counts(collections.Counter):
    def __call__(self, namespace: str, name: str, amount: int = 1) -> None:
        self[(namespace, name)] += amount


def test_newest_page_wins_and_ties_go_to_the_first_read_whatever_the_order():
    old = UrlEntry("2019-01-01", (0, 5))
    new_late = UrlEntry("2019-02-01", (1, 0))
    new_early = UrlEntry("2019-02-01", (0, 9))
    for perm in itertools.permutations([old, new_late, new_early]):
        best = None
        for entry in perm:
            best = transforms._newer(best, entry)
        assert best is new_early
    assert transforms._newer(None, old) is old and transforms._newer(old, None) is old


def _url_packs(files: dict[int, list], shards: int) -> list:
    """(URL shard, pack) of files {file position: [(normalized url, timestamp)]}."""
    return [
        packed
        for position, rows in files.items()
        for packed in transforms.pack_url_entries(
            position, [(url, UrlEntry(ts, (position, i))) for i, (url, ts) in enumerate(rows)], shards
        )
    ]


def test_url_entries_are_packed_per_url_shard_and_spilled(tmp_path):
    path = _staged_file(
        tmp_path, ("http://a.com/1", GOOD), ("http://b.com/2", GOOD), ("http://a.com/1", GOOD)
    )
    dofn = transforms._UrlEntries(4, str(tmp_path / "keys"))
    (tmp_path / "keys").mkdir()
    dofn.start_bundle()
    refs = list(dofn.process((3, path)))
    assert all(isinstance(ref, tuple) and ref[0].endswith("urls-3.keys") for _, ref in refs)  # not the URLs
    newest, pages = transforms.newest_per_url([ref for _, ref in refs])
    assert pages == {"a.com/1": 2, "b.com/2": 1}
    assert newest["a.com/1"].order == (3, 0) and newest["b.com/2"].order == (3, 1)
    for url, entry in newest.items():  # every URL's copies in one shard
        assert [shard for shard, ref in refs if url in transforms.newest_per_url([ref])[0]] == [
            transforms.url_shard(url, 4)
        ]


def test_newest_page_per_url_sends_each_file_its_winners_and_counts_the_duplicates(tmp_path):
    files = {
        0: [("a.com/x", "2019-01-01"), ("b.com", ""), ("c.com", "2019-01-01")],
        1: [("a.com/x", "2019-03-01"), ("c.com", "2019-01-01")],
    }
    groups: dict = {}
    for shard, pack in _url_packs(files, shards=3):
        groups.setdefault(shard, []).append(pack)
    elements = [(shard, {"entries": packs, "listed": []}) for shard, packs in sorted(groups.items())]
    found, counts = _run(
        lambda pc: pc | counting.Counted(transforms._NewestInShard(False)), tmp_path, elements
    )
    winners: dict = {}
    for position, pack in found:
        winners.setdefault(position, set()).update(passes.unpack_ordinals([pack]))
    assert winners == {0: {1, 2}, 1: {0}}  # c.com: same timestamp, the first read wins
    assert counts[reasons.NS_URL_DEDUP] == {reasons.FILTERED: 2, reasons.PASSED: 3}
    stages = counts[reasons.NS_STAGES]
    assert stages[f"{steps.URL_DEDUP}:in"] == 5 and stages[f"{steps.URL_DEDUP}:out"] == 3

    listed = [(shard, {**group, "listed": ["b.com", "nowhere.org"]}) for shard, group in elements]
    found, counts = _run(lambda pc: pc | counting.Counted(transforms._NewestInShard(True)), tmp_path, listed)
    assert [(position, passes.unpack_ordinals([pack])) for position, pack in found] == [(0, {1})]
    assert counts[reasons.NS_WEBTEXT] == {reasons.PASSED: 1, reasons.FILTERED: 2}


def test_staged_verdicts_drop_at_their_position_with_their_counts():
    kept = Staged(Page(url="k", text="kept text"), None, {reasons.PASSED: 1, "line-filtered:x": 2}, (0, 0))
    dropped = Staged(Page(url="d", text=""), (reasons.NS_CLEAN, reasons.PAGE_LOREM_IPSUM), {}, (0, 1))
    count = _Counts()
    verdict = steps.ApplyStagedVerdict(reasons.NS_CLEAN)
    found = [p for s in (kept, dropped) for p in steps.run_step(verdict, s, count)]
    assert found == [kept.page]
    assert (
        count[(reasons.NS_CLEAN, reasons.PASSED)] == 1 and count[(reasons.NS_CLEAN, "line-filtered:x")] == 2
    )
    assert count[(reasons.NS_STAGES, f"{steps.PAGE_RULES}:in")] == 2
    assert count[(reasons.NS_STAGES, f"{steps.PAGE_RULES}:out")] == 1
    assert count[(reasons.NS_STAGES, f"{steps.PAGE_RULES}:bytes")] == len("kept text")


def test_assign_split_by_url_hash_and_language():
    # find a URL of each split (validation is 0.1% of URLs)
    urls = [f"example.com/{i}" for i in range(5000)]
    train = next(u for u in urls if split_for_url(u) == "train")
    validation = next(u for u in urls if split_for_url(u) == "validation")
    pages = [Page(url=u, text="t", normalized_url=u, language="de") for u in (train, validation)]
    count = _Counts()
    found = steps.run_steps([steps.AssignSplit(True)], pages, count)
    assert sorted((s, p.url) for s, p in found) == [("train", train), ("validation", validation)]
    assert count[(reasons.NS_SPLIT, "train")] == 1 and count[(reasons.NS_STAGES, f"{steps.SPLIT}:in")] == 2
    found = steps.run_steps([steps.AssignSplit(False)], pages, _Counts())
    assert sorted((s, p.url) for s, p in found) == [("de", train), ("de-validation", validation)]


def test_packs_by_key_shard_give_back_every_entry_grouped_by_key():
    entries = [(bytes([i % 7]) * 16, passes.with_ref(bytes([i]) * 16, i, i + 1)) for i in range(50)]
    packs = passes.pack_by_key_shard(entries, shards=4)
    assert len(packs) <= 4 and all(isinstance(pack, bytes) for _, pack in packs)
    groups = passes.unpack_groups((None, [pack for _, pack in packs]))
    assert groups == {key: [v for k, v in entries if k == key] for key, _ in entries}


def test_spilled_packs_cross_the_shuffle_as_references_and_read_back_the_same(tmp_path):
    entries = [(bytes([i % 7]) * 16, passes.with_ref(bytes([i]) * 16, i, i + 1)) for i in range(50)]
    packs = passes.pack_by_key_shard(entries, shards=4)
    assert passes.spill_packs(packs, None, "0-3.keys") == packs  # no folder: the packs themselves
    refs = passes.spill_packs(packs, str(tmp_path), "0-3.keys")
    assert [shard for shard, _ in refs] == [shard for shard, _ in packs]
    assert all(ref[0] == str(tmp_path / "0-3.keys") for _, ref in refs)  # a path, not the keys
    # read_packs takes both forms (`RemoveNearDuplicates` sends the packs themselves)
    mixed = [ref for _, ref in refs[1:]] + [packs[0][1]]
    assert sorted(passes.read_packs(mixed)) == sorted(pack for _, pack in packs)
    assert passes.unpack_groups((None, mixed)) == passes.unpack_groups((None, [p for _, p in packs]))


def test_only_the_pages_that_lose_a_line_hear_of_it(tmp_path):
    shared, only_a = line_key("shared line"), line_key("only in a")
    a, owner = passes.with_ref(b"\xff" * 16, 0, 1), passes.with_ref(b"\x00" * 16, 1, 7)
    # a has the larger md5(url): it loses the line it shares; packed as the passes send them
    entries = passes.pack_by_key_shard([(shared, a), (shared, owner), (only_a, a)], shards=3)
    found, _ = _run(lambda pc: pc | passes.LostLines(), tmp_path, entries)
    assert [(position, list(passes.unpack_entries(pack))) for position, pack in found] == [
        (0, [((1).to_bytes(4, "big"), shared)])
    ]


def _staged_file(tmp_path: Path, *records: tuple[str, str]) -> str:
    """A per-file result of `records` (url, text), as the per-file stage writes it."""
    wet = _wet(tmp_path / "a.wet", *(_record(url, text) for url, text in records))
    return perfile.run_file("a.wet", wet, _rules(tmp_path))


def _pass(plan: passes.PassPlan, element) -> tuple[list, _Counts]:
    dofn = passes.FilePass(plan)
    dofn.setup()
    dofn.start_bundle()
    outputs = list(dofn.process(element))
    count = _Counts({key: n for key, n in dofn._counts.items()})
    return outputs, count


def test_a_pass_applies_the_decisions_about_its_file_and_counts_each_step_once(tmp_path):
    other = "\n".join(f"Another page says this in line {i} of its own." for i in range(6))
    path = _staged_file(
        tmp_path, ("http://a.com/1", GOOD), ("http://a.com/2", other), ("http://a.com/3", other)
    )
    recipe = VARIANTS["en"]
    lost = [passes.pack_entries([((1).to_bytes(4, "big"), line_key(other.split("\n")[0]))])]
    groups = {"path": [path], "winner": [passes.pack_ordinals([0, 1, 2])], "removed": [2], "lost": lost}
    plan = passes.PassPlan(
        emit=passes.FINAL,
        after_near_dedup=True,
        count_near_dedup=True,
        after_line_dedup=True,
        min_num_sentences=3,
        recipe=recipe,
        language_id="langdetect",
        pieces_dir=str(tmp_path / "pieces"),
        shards_for=lambda split: 2,
        parts=2,  # the file's pages in two tasks: ordinals 0 and 1 (half, rounded up), then 2
    )
    outputs, count = [], _Counts()
    for part in range(2):
        part_outputs, part_count = _pass(plan, ((4, part), groups))
        outputs += part_outputs
        count.update(part_count)
    # the pages go to pieces (one per shard, named for the file and part), and only where they are
    # is emitted
    rows = []
    for (split, index, n), ((position, part), piece, written) in outputs:
        assert position == 4 and piece.endswith(arrow_sink.piece_name(split, index, n, 4, part))
        mine = list(arrow_sink.piece_rows(piece))
        assert written == len(mine) and all(arrow_sink.shard_of(row[0], 2) == index for row in mine)
        assert part == 0 and {row[0] for row in mine} <= {"http://a.com/1", "http://a.com/2"}
        rows += mine
    texts = sorted(row[1] for row in rows)
    assert texts == sorted([GOOD, "\n".join(other.split("\n")[1:])])  # page 3 removed, a line lost
    assert count[(reasons.NS_STAGES, f"{steps.NEAR_DEDUP}:out")] == 2
    assert count[(reasons.NS_DEDUP_LINES, reasons.LINE_GLOBAL_DUPLICATE)] == 1
    assert count[(reasons.NS_STAGES, f"{steps.SPLIT}:out")] == 2
    assert (reasons.NS_STAGES, f"{steps.PAGE_RULES}:in") not in count  # counted by the first pass

    first = passes.PassPlan(emit=passes.LINES, rules_namespace=reasons.NS_CLEAN)
    outputs, count = _pass(first, ((4, 0), {"path": [path], "winner": [passes.pack_ordinals([1])]}))
    assert count[(reasons.NS_STAGES, f"{steps.PAGE_RULES}:in")] == 1
    assert {o.tag for o in outputs} == {passes.LINES}
    groups = passes.unpack_groups((None, [o.value[1] for o in outputs]))  # packed per key shard
    assert sorted(groups) == sorted(line_key(line) for line in other.split("\n"))
    assert {passes.page_ref(m) for members in groups.values() for m in members} == {(4, 1)}


def test_a_files_parts_cover_its_pages_once_in_order_halving():
    for pages in (0, 1, 5, 16, 101):
        ordinals = list(range(0, 3 * pages, 3))
        for parts in (1, 2, 3, 7):
            split = [passes.part_of(ordinals, part, parts) for part in range(parts)]
            assert [o for part in split for o in part] == ordinals
            sizes = list(map(len, split))
            assert sizes[0] == (pages if parts == 1 else pages - pages // 2)  # half, a quarter, ...
            assert all(a >= b for a, b in zip(sizes, sizes[1:-1]))
            assert parts == 1 or abs(sizes[-1] - sizes[-2]) <= 1  # the last two alike
    assert [len(passes.part_of(list(range(160)), part, 5)) for part in range(5)] == [80, 40, 20, 10, 10]


def test_the_heavy_passes_are_split_and_only_on_local_workers():
    from c4clean.pipelines.options import RunOptions

    def parts(files=8, **kw):
        return passes.pass_parts(RunOptions(output="out", inputs=("in",), **kw), files=files)

    # signatures: smallest parts 1/16 of a worker's share, 1/4 of a file; line keys: one per file;
    # last: 1/64 of a worker's share, 1/16 of a file
    assert parts(workers=2) == [3, 1, 5]
    assert parts(workers=2, near_dedup=False) == [1, 5]
    assert parts(workers=1) == [1, 1, 1]  # one process: nothing to balance
    assert parts(workers=2, runner="dask") == [1, 1, 1]  # a cluster balances its own tasks
    assert parts(files=40, workers=2) == [1, 1, 3]
    assert parts(files=3, workers=2) == [5, 1, 7]
    ordered = sorted([((f, p), None) for f in range(3) for p in range(3)], key=passes.largest_first)
    assert [task for task, _ in ordered][:4] == [(0, 0), (1, 0), (2, 0), (0, 1)]  # halves first


def test_every_part_of_a_file_marks_itself_done_even_with_no_pages_left(tmp_path):
    path = _staged_file(tmp_path, ("http://a.com/1", GOOD))
    plan = passes.PassPlan(emit=passes.LINES, parts=3, progress_dir=str(tmp_path / "passes"), index=1)
    groups = {"path": [path], "winner": [passes.pack_ordinals([0])]}
    emitted = [len(_pass(plan, ((4, part), groups))[0]) for part in range(3)]
    assert emitted.count(0) == 2  # the one page is in one part only
    assert sorted(p.name for p in (tmp_path / "passes").iterdir()) == [f"1-4-{i}.done" for i in range(3)]
