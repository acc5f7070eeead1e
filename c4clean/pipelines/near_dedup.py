"""MinHash near-duplicate removal as Beam steps, verified by exact Jaccard inside each component.

    band keys (band key, id) ─► buckets (ids only) ─► candidate pairs, by page ─► connected
          components of the candidate pairs (hash-to-min rounds on ids) ─► each candidate page's
          text, read once (`texts`: in the pipeline, from its staged file, and spilled to one
          file per input file so that only a reference travels) and sent to its component's root
          (components are verified in batches, on the local workers when they run)
          ─► within a component: the exact shingle-set Jaccard of its pages (all pairs, or the
             pairs prefix filtering leaves: the same ones at >= threshold); the page with the most
             near-duplicates is kept, every page with exact Jaccard >= threshold *to that kept
             page* is removed, and the rest repeat the rule among themselves (so no page is
             removed for a chain A~B~C alone)
          ─► ids of the removed pages + one audit row each {url, kept_url, jaccard}

Every step groups by a key (a band bucket shard, a page id, a component root), so no worker ever
holds the whole corpus; the largest group is one key shard of LSH buckets (ids) or one candidate
component (its texts, or in the pipeline references to them). Pages outside every candidate pair
never leave their files, and a candidate page's text travels once, to its component. A page's id
sorts by md5(url) (`minhash.page_id`), and the rules above only compare ids and Jaccards (ties go
to the smallest id), so the result depends neither on input order nor on how the runner splits
the work. The components are found on shards of ids, with the messages between shards packed (and
in the pipeline spilled to work files): see `near_dedup_components`.
`NearDuplicates` is the core on ids; `RemoveNearDuplicates` applies it to a PCollection of pages.
"""

from __future__ import annotations

import collections
import itertools
import math
from typing import Iterator, Optional

import apache_beam as beam
from apache_beam.transforms.window import GlobalWindows

from c4clean.cleaning import minhash, reasons
from c4clean.pipelines import candidate_texts, spill
from c4clean.pipelines.counting import Counted, CountElements, CountingDoFn
from c4clean.pipelines.near_dedup_audit import AUDIT_FILE, audit_lines, audit_row
from c4clean.pipelines.near_dedup_components import CandidateComponents
from c4clean.pipelines.passes import pack_by_key_shard
from c4clean.pipelines.pool import Pooled

DEFAULT_MAX_ROUNDS = 8
# Components up to this size compare all their pairs; larger ones only the pairs prefix filtering
# leaves (`_near_pairs`: the same pairs at >= threshold, found without the quadratic work).
MAX_ALL_PAIRS_COMPONENT = 32
# Groups of near-duplicates up to this size are clustered around their best-connected pages;
# larger ones keep their smallest id first (`keep_or_remove`).
MAX_STAR_COMPONENT = 1000
# Finding a component's pairs at >= threshold may compare this many pairs per page; beyond that
# (thousands of near-identical pages) its smallest id is kept first (`keep_or_remove`).
COMPARISONS_PER_PAGE = 64
# Components are verified in batches of about this many pages (`_Batches`): one local-pool task each.
BATCH_PAGES = 512
# Bucket-key shards and page-id shards of `RemoveNearDuplicates` (the pipeline scales them with its
# input files).
STANDALONE_SHARDS = 64
STANDALONE_NODE_SHARDS = 8


def _to_root(requested) -> tuple[bytes, tuple[bytes, object]]:
    """(root + id, text) -> (root, (id, text)): the page's text (a `candidate_texts` record or a
    reference to one) goes to its component."""
    request, text = requested
    width = len(request) // 2
    return request[:width], (request[width:], text)


class _Batches(beam.DoFn):
    """Components -> lists of components of about BATCH_PAGES pages in all, so that one task of
    the local pool verifies many small components (a task per component costs more than its work)."""

    def start_bundle(self):
        self._batch, self._pages = [], 0

    def process(self, component):
        root, members = component
        members = list(members)
        self._batch.append((root, members))
        self._pages += len(members)
        if self._pages >= BATCH_PAGES:
            yield self._batch
            self._batch, self._pages = [], 0

    def finish_bundle(self):
        if self._batch:
            yield GlobalWindows.windowed_value(self._batch)
        self._batch, self._pages = [], 0


def _prefix_length(size: int, threshold: float) -> int:
    """Shingles of a page's prefix for prefix filtering: two sets with Jaccard >= t share one of the
    first |x| - ceil(t |x|) + 1 shingles of each (in one global order); one more, so that float
    rounding of t |x| never drops a pair."""
    return min(size, size - math.ceil(threshold * size) + 2)


def _ordered(sets: dict) -> dict[bytes, list[bytes]]:
    """Each set's shingles, rarest in the component first (ties: by bytes): the one global order
    prefix filtering needs."""
    frequency = collections.Counter(s for shingles in sets.values() for s in shingles)
    return {pid: sorted(shingles, key=lambda s: (frequency[s], s)) for pid, shingles in sets.items()}


def _prefix_candidates(sets: dict, threshold: float) -> Iterator[tuple[bytes, bytes]]:
    """Each pair of ids whose prefixes share a shingle, once."""
    index: dict[bytes, list] = collections.defaultdict(list)
    for pid, ordered in sorted(_ordered(sets).items()):
        prefix = ordered[: _prefix_length(len(ordered), threshold)]
        seen: set[bytes] = set()
        for s in prefix:
            for other in index[s]:
                if other not in seen:
                    seen.add(other)
                    yield other, pid
        for s in prefix:
            index[s].append(pid)


def _near_pairs(sets: dict, threshold: float, budget: int) -> Optional[dict[bytes, dict[bytes, float]]]:
    """{id: {id: exact Jaccard}} of every pair of `sets` (id -> shingle set) with exact Jaccard >=
    threshold. Small components compare all pairs; larger ones the pairs that share a shingle of
    their prefixes (All-Pairs prefix filtering, rarest shingles first): the same pairs, since
    every pair at >= threshold shares one, and the others never reach the threshold. None when that
    takes more than `budget` comparisons (a large group of near-identical pages)."""
    ids = sorted(sets)
    near: dict[bytes, dict[bytes, float]] = {pid: {} for pid in ids}
    if len(ids) <= MAX_ALL_PAIRS_COMPONENT:
        compared = itertools.combinations(ids, 2)
    else:
        compared = _prefix_candidates(sets, threshold)
    for n, (a, b) in enumerate(compared):
        if n == budget:
            return None
        jaccard = minhash.exact_jaccard(sets[a], sets[b])
        if jaccard >= threshold:
            near[a][b] = near[b][a] = jaccard
    return near


def _groups(ids: list, near: dict) -> Iterator[list]:
    """The connected components of the pairs in `near`, each sorted, in order of their smallest id."""
    done: set = set()
    for pid in ids:
        if pid not in done:
            group, todo = {pid}, [pid]
            while todo:
                for other in near[todo.pop()]:
                    if other not in group:
                        group.add(other)
                        todo.append(other)
            done |= group
            yield sorted(group)


def _greedy(ids: list, pick, near_of, by_id: dict) -> tuple[list, list[tuple]]:
    """Keeps `pick(left)` and removes `near_of(keeper, left)` (id -> Jaccard), until no page is left."""
    kept: list = []
    rows: list[tuple] = []
    left = dict.fromkeys(ids)  # insertion-ordered: ids ascending
    while left:
        keeper = pick(left)
        removed = near_of(keeper, left)
        kept.append(keeper)
        kept_url = by_id[keeper][0][0]
        for pid in sorted(removed):
            rows += [(pid, audit_row(url, kept_url, removed[pid])) for url, _ in by_id[pid]]
        for pid in [keeper, *removed]:
            del left[pid]
    return kept, rows


def _smallest(left: dict) -> bytes:
    return next(iter(left))


def keep_or_remove(members: list[tuple], threshold: float, ngram: int, normalization: str):
    """One component of (id, (url, text)) members -> (ids kept, [(id, audit row)] of the pages
    removed, pairs found at >= threshold), by greedy star clustering: the page with the most
    near-duplicates (exact shingle-set Jaccard >= threshold) among the pages left is kept (ties:
    the smallest id, i.e. md5(url)) and removes those near-duplicates; the rest repeat. Every
    removed page is compared with the page kept in its place, directly. This runs on each group of
    pages linked by near-duplicate pairs (the same result as on the whole component: the groups
    share no pair). A group larger than MAX_STAR_COMPONENT keeps its smallest id first instead, and
    so does a component whose pairs take more than COMPARISONS_PER_PAGE comparisons per page to
    find (thousands of near-identical pages): then each kept page is compared with the pages left
    whose prefix shares a shingle with its own, linear per kept page. Pages with one id (same url
    and text) share their fate."""
    by_id: dict[bytes, list[tuple]] = {}
    for pid, page in members:
        by_id.setdefault(pid, []).append(page)
    ids = sorted(by_id)
    sets = {pid: set(minhash.shingles(by_id[pid][0][1], ngram, normalization)) for pid in ids}
    near = _near_pairs(sets, threshold, COMPARISONS_PER_PAGE * len(ids))
    if near is None:
        return _smallest_first_by_prefix(ids, sets, threshold, by_id)

    def star(left: dict) -> bytes:
        return min(left, key=lambda pid: (-sum(other in left for other in near[pid]), pid))

    def known(keeper: bytes, left: dict) -> dict:
        return {pid: j for pid, j in near[keeper].items() if pid in left}

    kept, rows = [], []
    for group in _groups(ids, near):
        group_kept, group_rows = _greedy(
            group, star if len(group) <= MAX_STAR_COMPONENT else _smallest, known, by_id
        )
        kept += group_kept
        rows += group_rows
    return sorted(kept), rows, sum(len(partners) for partners in near.values()) // 2


def _smallest_first_by_prefix(ids: list, sets: dict, threshold: float, by_id: dict):
    """`keep_or_remove` for a component too dense to find all its pairs: the smallest id left is
    kept and removes every page left with exact Jaccard >= threshold to it, found among the pages
    whose prefix shares a shingle with the kept page's (all of them: see `_near_pairs`)."""
    prefixes = {
        pid: ordered[: _prefix_length(len(ordered), threshold)] for pid, ordered in _ordered(sets).items()
    }
    index: dict[bytes, list] = collections.defaultdict(list)
    for pid in ids:
        for s in prefixes[pid]:
            index[s].append(pid)

    def near_of(keeper: bytes, left: dict) -> dict:
        candidates = {pid for s in prefixes[keeper] for pid in index[s] if pid in left and pid != keeper}
        jaccards = {pid: minhash.exact_jaccard(sets[keeper], sets[pid]) for pid in candidates}
        return {pid: j for pid, j in jaccards.items() if j >= threshold}

    kept, rows = _greedy(ids, _smallest, near_of, by_id)
    return sorted(kept), rows, len({pid for pid, _ in rows})


class _KeepOrRemove(CountingDoFn):
    """A batch of components, each (root, [(id, text)]) with the text a `candidate_texts` record
    or a reference to one -> the ids removed, and one audit row each (tagged "audit")."""

    def __init__(self, threshold: float, ngram: int, normalization: str):
        self._args = (threshold, ngram, normalization)

    def process(self, batch):
        # The batch's texts are read at once: one open of each file they were spilled to.
        records = iter(spill.read([text for _, members in batch for _, text in members]))
        for _, members in batch:
            yield from self._component([(pid, candidate_texts.decode(next(records))) for pid, _ in members])

    def _component(self, members: list[tuple]):
        _, removed, found = keep_or_remove(members, *self._args)
        self.count(reasons.NS_NEAR_DEDUP, reasons.NEAR_DEDUP_VERIFIED_PAIRS, found)
        self.count(reasons.NS_NEAR_DEDUP, reasons.NEAR_DUPLICATE, len(removed))
        self.count(
            reasons.NS_NEAR_DEDUP, reasons.NEAR_DEDUP_CLUSTERS, len({row["kept_url"] for _, row in removed})
        )
        yield from sorted({pid for pid, _ in removed})
        for _, row in removed:
            yield beam.pvalue.TaggedOutput("audit", row)


def _write_audit(rows: list[dict], path: str) -> None:
    from c4clean import atomic

    atomic.write_bytes_fs(path, audit_lines(rows))


class NearDuplicates(beam.PTransform):
    """PCollection[(key shard, pack of (band key, page id))] (`passes.pack_by_key_shard`; ids of
    one width) -> PCollection[page id] of the pages to remove.

    `texts`: a PTransform from a PCollection of requests, each `root + page id` (two ids; a
    request ends with the page's id, so `passes.TextsOfPages` finds the page's file in it), to
    (request, text) for the pages asked for, the text a `candidate_texts` record of the page's url
    and text or a reference to one spilled to a file (`spill.write`: then no grouping
    holds the texts, only the step that verifies a component reads them). Two pages are
    candidates when they share a band key. Within each connected component of the candidate pairs
    a pair is a near-duplicate when the exact Jaccard similarity of the two shingle sets
    (`minhash.shingles` with `ngram` and `normalization`) is >= `threshold`; the page with the
    most near-duplicates (ties: smallest id) is kept and removes the pages whose exact Jaccard
    *with it* is >= `threshold`; the pages it does not remove repeat the rule among themselves
    (`keep_or_remove`). `max_rounds` hash-to-min rounds are unrolled; the counter
    `unconverged-nodes` > 0 says more were needed (the run then keeps some duplicates, never
    removes a page without a kept near-duplicate). With `audit_path`, one JSON line per removed
    page {"url", "kept_url", "jaccard"} is written there atomically, sorted (see
    `near_dedup_audit`). `node_shards` and `spill_dir`: see `CandidateComponents`.
    """

    def __init__(
        self,
        texts,
        threshold: float = minhash.DEFAULT_THRESHOLD,
        ngram: int = minhash.DEFAULT_NGRAM,
        normalization: str = minhash.DEFAULT_NORMALIZE,
        max_rounds: int = DEFAULT_MAX_ROUNDS,
        audit_path: Optional[str] = None,
        node_shards: int = STANDALONE_NODE_SHARDS,
        spill_dir: Optional[str] = None,
    ):
        super().__init__()
        self._components = CandidateComponents(max_rounds, node_shards, spill_dir)
        self._texts = texts
        self._ngram = ngram
        self._normalization = normalization
        self._threshold = threshold
        self._audit_path = audit_path

    def expand(self, band_entries):
        requests = band_entries | "Components" >> self._components
        keep = _KeepOrRemove(self._threshold, self._ngram, self._normalization)
        decided = (
            requests
            | "CandidateTexts" >> self._texts
            | "ToRoot" >> beam.Map(_to_root)
            | "GroupComponents" >> beam.GroupByKey()
            | "Batches" >> beam.ParDo(_Batches())
            | "KeepOrRemove" >> Counted(Pooled(keep), tags=("audit",), main="removed")
        )
        if self._audit_path is not None:
            _ = (
                decided["audit"]
                | "CollectAudit" >> beam.combiners.ToList()
                | "WriteAudit" >> beam.Map(_write_audit, self._audit_path)
            )
        return decided["removed"]


class _TextsFrom(beam.PTransform):
    """`NearDuplicates.texts` over a PCollection of (page id, page) held in the pipeline."""

    def __init__(self, keyed_pages):
        super().__init__()
        self._keyed = keyed_pages

    def expand(self, requests):
        return (
            {"page": self._keyed, "want": requests | "Want" >> beam.Map(_requested_id)}
            | "JoinWanted" >> beam.CoGroupByKey()
            | "Wanted" >> beam.FlatMap(_wanted_pages)
        )


def _requested_id(request: bytes) -> tuple[bytes, bytes]:
    return request[len(request) // 2 :], request


def _wanted_pages(joined):
    _, groups = joined
    for request in groups["want"]:
        for page in groups["page"]:
            yield request, candidate_texts.encode(page.url, page.text)


def _survivors(joined):
    _, groups = joined
    if not list(groups["removed"]):
        yield from groups["page"]


class _BandEntries(beam.DoFn):
    """(id, page) -> its band entries, packed by key shard; pages without any shingle give none."""

    def __init__(self, num_perm: int, seed: int, ngram: int, normalization: str, bands: int, rows: int):
        self._args = (num_perm, seed, ngram, normalization)
        self._bands = (bands, rows)
        self._hasher = None

    def setup(self):
        # The permutations are drawn once per worker, not once per page.
        self._hasher = minhash.MinHasher(*self._args)

    def process(self, element):
        pid, page = element
        sig = self._hasher.signature(page.text)
        if sig is not None:
            entries = ((key, pid) for key in minhash.band_keys(sig, *self._bands))
            yield from pack_by_key_shard(entries, STANDALONE_SHARDS)


class RemoveNearDuplicates(beam.PTransform):
    """PCollection[Page] -> PCollection[Page] without near-duplicates (`NearDuplicates` on pages
    held in the pipeline; `c4clean run` keeps them in their staged files instead, see `passes`).

    The bands (`minhash.recall_bands`) make a pair at exactly `threshold` a candidate with
    probability >= 0.99. Pages that share url and text share an id and are kept or removed
    together: run URL dedup first (the C4 recipe does).
    """

    def __init__(
        self,
        threshold: float = minhash.DEFAULT_THRESHOLD,
        num_perm: int = minhash.DEFAULT_NUM_PERM,
        ngram: int = minhash.DEFAULT_NGRAM,
        seed: int = minhash.DEFAULT_SEED,
        *,
        normalization: str = minhash.DEFAULT_NORMALIZE,
        min_candidate_recall: float = minhash.MIN_CANDIDATE_RECALL,
        max_rounds: int = DEFAULT_MAX_ROUNDS,
        audit_path: Optional[str] = None,
        label: str | None = None,
    ):
        super().__init__(label)
        minhash.check_settings(threshold, num_perm, ngram, normalization)
        if max_rounds < 1:
            raise ValueError(f"max_rounds must be >= 1, got {max_rounds}")
        self.threshold = threshold
        self.num_perm = num_perm
        self.ngram = ngram
        self.seed = seed
        self.normalization = normalization
        self.max_rounds = max_rounds
        self.audit_path = audit_path
        self.bands, self.rows = minhash.recall_bands(threshold, num_perm, min_candidate_recall)

    def expand(self, pages):
        keyed = pages | "KeyById" >> beam.Map(lambda p: (minhash.page_id(p.url, p.text), p))
        bands = keyed | "BandKeys" >> beam.ParDo(
            _BandEntries(self.num_perm, self.seed, self.ngram, self.normalization, self.bands, self.rows)
        )
        removed = bands | "NearDuplicates" >> NearDuplicates(
            _TextsFrom(keyed),
            self.threshold,
            self.ngram,
            self.normalization,
            self.max_rounds,
            self.audit_path,
        )
        return (
            {"page": keyed, "removed": removed | "Removed" >> beam.Map(lambda pid: (pid, None))}
            | "JoinRemoved" >> beam.CoGroupByKey()
            | "Survivors" >> beam.FlatMap(_survivors)
            | "CountPassed" >> CountElements(reasons.NS_NEAR_DEDUP, reasons.PASSED)
        )


def commit_audit(staging: str, output: str) -> None:
    """Moves the staged audit file into the output folder; without one (near-dedup off), removes
    an earlier run's, which no longer describes the shards."""
    from apache_beam.io.filesystems import FileSystems

    staged, final = FileSystems.join(staging, AUDIT_FILE), FileSystems.join(output, AUDIT_FILE)
    if FileSystems.exists(staged):
        if FileSystems.exists(final):
            FileSystems.delete([final])
        FileSystems.rename([staged], [final])
    elif FileSystems.exists(final):
        FileSystems.delete([final])
