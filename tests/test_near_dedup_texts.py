"""Near-dedup's candidate texts in `c4clean run`: each file's candidates are spilled to one file
beside the key packs and only references cross the groupings; verification reads them back and
decides exactly as with the texts inline (`RemoveNearDuplicates`), on the local workers too."""

from __future__ import annotations

import random

import apache_beam as beam
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from test_near_dedup import edit_words, random_words, reference  # pytest puts tests/ on sys.path

from c4clean.cleaning import minhash
from c4clean.cleaning.page import Page
from c4clean.pipelines import candidate_texts, near_dedup, passes, perfile, pool, spill
from c4clean.pipelines.near_dedup import NearDuplicates

THRESHOLD = 0.8


def _pages() -> list[Page]:
    """12 distinct pages and 4 near-copies (Jaccard ~0.97), with non-ASCII text."""
    rng = random.Random(5)
    originals = [random_words(rng, 300) for _ in range(12)]
    pages = [Page(url=f"http://s{i}.example/é", text="ü " + " ".join(w)) for i, w in enumerate(originals)]
    pages += [
        Page(url=f"http://copy{i}.example/", text="ü " + " ".join(edit_words(originals[i], [100], rng)))
        for i in range(4)
    ]
    return pages


def _stage(pages: list[Page], tmp_path, files: int = 2) -> list[tuple[int, str]]:
    """The pages staged in `files` work files, round robin -> [(file position, path)]."""
    staged = []
    for position in range(files):
        path = tmp_path / f"file{position}.arrow"
        path.write_bytes(perfile.encode([perfile.Staged(p, None, {}) for p in pages[position::files]]))
        staged.append((position, str(path)))
    return staged


def _band_packs(pages: list[Page], files: int) -> list:
    """(key shard, pack of (band key, id + ref)) of the pages, as the first pass emits them."""
    bands, rows = minhash.recall_bands(THRESHOLD, minhash.DEFAULT_NUM_PERM)
    hasher = minhash.MinHasher(minhash.DEFAULT_NUM_PERM, minhash.DEFAULT_SEED)
    entries = []
    for i, page in enumerate(pages):
        pid = passes.with_ref(minhash.page_id(page.url, page.text), i % files, i // files)
        entries += [(key, pid) for key in minhash.band_keys(hasher.signature(page.text), bands, rows)]
    return passes.pack_by_key_shard(entries, 8)


_SEEN: list = []  # what `CandidateTexts` gives `GroupComponents` (the runner runs in this process)


def _seen(element):
    _SEEN.append(element)
    return element


class _Recorded(beam.PTransform):
    def __init__(self, texts):
        super().__init__()
        self._texts = texts

    def expand(self, requests):
        return requests | self._texts | beam.Map(_seen)


def _run(pages, tmp_path, keys_dir, name):
    """(ids removed, audit bytes, what crossed to the components) of `NearDuplicates` over the pages
    staged in files, their texts read by `passes.TextsOfPages`."""
    _SEEN.clear()
    audit = tmp_path / f"{name}.jsonl"
    with beam.Pipeline(runner=FnApiRunner()) as p:
        files = p | "Files" >> beam.Create(_stage(pages, tmp_path))
        removed = (
            p
            | beam.Create(_band_packs(pages, 2))
            | NearDuplicates(_Recorded(passes.TextsOfPages(files, keys_dir)), audit_path=str(audit))
        )
        _ = (
            removed
            | beam.combiners.ToList()
            | beam.Map(lambda ids: (tmp_path / name).write_bytes(b"".join(sorted(ids))))
        )
    return (tmp_path / name).read_bytes(), audit.read_bytes(), list(_SEEN)


def test_candidate_texts_cross_as_references_and_decide_as_inline(tmp_path, monkeypatch):
    pages = _pages()
    keys_dir = tmp_path / "keys"
    inline = _run(pages, tmp_path, None, "inline")
    spilled = _run(pages, tmp_path, str(keys_dir), "spilled")
    monkeypatch.setattr(near_dedup, "BATCH_PAGES", 3)  # several batches, several pool tasks
    with pool.local_pool(2):
        pooled = _run(pages, tmp_path, str(keys_dir), "pooled")
    expected_kept, expected_removed = reference(pages)
    assert len(expected_removed) == 4
    assert inline[:2] == spilled[:2] == pooled[:2]  # same ids removed, same audit bytes
    removed_ids = sorted(
        passes.with_ref(minhash.page_id(p.url, p.text), i % 2, i // 2)
        for i, p in enumerate(pages)
        if p.url in expected_removed
    )
    assert inline[0] == b"".join(removed_ids) and inline[1].count(b"\n") == 4
    # inline, the records hold the texts; spilled, only (path, offset, length) of one file per input
    assert all(isinstance(text, bytes) for _, text in inline[2])
    assert len(spilled[2]) == len(inline[2]) > 4
    paths = {text[0] for _, text in spilled[2] + pooled[2]}
    assert paths == {str(keys_dir / "texts-0.bin"), str(keys_dir / "texts-1.bin")}
    assert all(len(text) == 3 and isinstance(text[1], int) for _, text in spilled[2])
    assert not any(page.text[:40] in repr(spilled[2] + pooled[2]) for page in pages)
    assert sorted(spill.read([t for _, t in spilled[2]])) == sorted(t for _, t in inline[2])


def test_texts_of_a_file_spill_to_one_file(tmp_path):
    pages = _pages()[:5]
    [(position, path)] = _stage(pages, tmp_path, files=1)
    element = (position, {"path": [path], "want": [(3, b"r3"), (1, b"r1")]})
    inline = list(passes._TextsOfFile().process(element))
    spilled = list(passes._TextsOfFile(str(tmp_path / "keys")).process(element))
    assert [r for r, _ in inline] == [r for r, _ in spilled] == [b"r1", b"r3"]
    assert [candidate_texts.decode(t) for _, t in inline] == [(pages[i].url, pages[i].text) for i in (1, 3)]
    spill_file = tmp_path / "keys" / f"texts-{position}.bin"
    assert [t for _, t in spilled] == [
        (str(spill_file), 0, len(inline[0][1])),
        (str(spill_file), len(inline[0][1]), len(inline[1][1])),
    ]
    assert spill_file.read_bytes() == inline[0][1] + inline[1][1]
    # read back in the order asked for, whichever order the references come in, mixed with inline ones
    refs = [t for _, t in spilled]
    assert spill.read([refs[1], inline[0][1], refs[0]]) == [
        inline[1][1],
        inline[0][1],
        inline[0][1],
    ]


def test_a_batch_of_components_decides_each_as_alone():
    pages = _pages()
    ids = [minhash.page_id(p.url, p.text) for p in pages]
    # two components (original i with its copy) and a lone page, in one batch
    components = [(ids[i], [(ids[i], pages[i]), (ids[12 + i], pages[12 + i])]) for i in (0, 1)]
    components.append((ids[5], [(ids[5], pages[5])]))
    keep = near_dedup._KeepOrRemove(THRESHOLD, minhash.DEFAULT_NGRAM, minhash.DEFAULT_NORMALIZE)

    def decide(batch):
        keep.start_bundle()
        batch = [(root, [(pid, candidate_texts.encode(p.url, p.text)) for pid, p in m]) for root, m in batch]
        outputs = list(keep.process(batch))
        return sorted(o for o in outputs if isinstance(o, bytes)), dict(keep._counts)

    together = decide(components)
    alone = [decide([c]) for c in components]
    assert together[0] == sorted(pid for removed, _ in alone for pid in removed) and len(together[0]) == 2
    assert together[1] == {k: sum(c.get(k, 0) for _, c in alone) for k in together[1]}
