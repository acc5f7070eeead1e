"""MinHash near-duplicate removal as Beam steps, verified by exact Jaccard.

    band keys (band key, id) ─► buckets (ids only) ─► candidate pairs ─► candidate ids
          ─► the texts of the candidates only (`texts`: in the pipeline, read from the staged files)
          ─► texts ⋈ pairs (twice) ─► exact shingle-set Jaccard >= threshold: edges
          ─► connected components (hash-to-min rounds) ─► each component's texts, by its root
          ─► within a component: the page with the most near-duplicates is kept, every page
             with exact Jaccard >= threshold *to that kept page* is removed, and the rest
             repeat the rule among themselves (so no page is removed for a chain A~B~C alone)
          ─► ids of the removed pages + one audit row each {url, kept_url, jaccard}

Every step groups by a key (a band bucket, a page id, a component root), so no worker ever holds
the whole corpus; the largest group is one LSH bucket (ids) or one component (its texts). Pages
outside every candidate pair never leave their files. A page's id sorts by md5(url)
(`minhash.page_id`), and the rules above only compare ids and Jaccards (ties go to the smallest
id), so the result depends neither on input order nor on how the runner splits the work.
`NearDuplicates` is the core on ids; `RemoveNearDuplicates` applies it to a PCollection of pages.
"""

from __future__ import annotations

import itertools
from typing import Iterator, Optional

import apache_beam as beam

from c4clean.cleaning import minhash, reasons
from c4clean.pipelines.counting import Counted, CountElements, CountingDoFn
from c4clean.pipelines.near_dedup_audit import AUDIT_FILE, audit_lines, audit_row
from c4clean.pipelines.passes import pack_by_key_shard, unpack_groups

DEFAULT_MAX_ROUNDS = 8
# Buckets up to this size give all their pairs as candidates; larger ones a star from their
# smallest id (enough to connect them, and what keeps a bucket of thousands of copies linear).
MAX_ALL_PAIRS_BUCKET = 32
# Components up to this size are clustered around their best-connected pages (all pairs compared).
MAX_STAR_COMPONENT = 1000
# Bucket-key shards of `RemoveNearDuplicates` (the pipeline scales them with its input files).
STANDALONE_SHARDS = 64


def _bucket_pairs(members) -> Iterator[tuple[bytes, bytes]]:
    """(smaller id, larger id) pairs of one bucket: all of them, or a star for a large bucket."""
    members = sorted(set(members))
    if len(members) <= MAX_ALL_PAIRS_BUCKET:
        yield from itertools.combinations(members, 2)
    else:
        for other in members[1:]:
            yield members[0], other


def _candidate_pairs(shard) -> Iterator[tuple[bytes, bytes]]:
    """The candidate pairs of the buckets of one key shard (`passes.pack_by_key_shard`)."""
    for members in unpack_groups(shard).values():
        if len(members) > 1:
            yield from _bucket_pairs(members)


def _both_ends(pair) -> Iterator[bytes]:
    yield pair[0]
    yield pair[1]


class _Shingler:
    """A page's shingles with the transform's settings, computed once per candidate page and sent
    along as (url, shingles): verification and clustering compare sets, never re-shingle."""

    def __init__(self, ngram: int, normalization: str):
        self._args = (ngram, normalization)

    def __call__(self, keyed_page) -> tuple[bytes, tuple[str, tuple[bytes, ...]]]:
        pid, page = keyed_page
        return pid, (page.url, tuple(minhash.shingles(page.text, *self._args)))


def _send_shingles_to_larger(joined) -> Iterator[tuple[bytes, tuple[bytes, tuple]]]:
    """Joined by the smaller id of each pair: its shingles travel to the larger id."""
    pid, groups = joined
    pages = list(groups["page"])
    if pages:
        for other in groups["larger"]:
            yield other, (pid, pages[0][1])


def _verified_edges(joined, threshold: float) -> Iterator[tuple[bytes, bytes]]:
    """Joined by the larger id of each pair: the pairs whose exact Jaccard reaches the threshold."""
    pid, groups = joined
    pages = list(groups["page"])
    if not pages:
        return
    mine = set(pages[0][1])
    for other, shingles in groups["smaller"]:
        if minhash.exact_jaccard(mine, set(shingles)) >= threshold:
            yield other, pid


def _initial_neighbourhood(edge) -> Iterator[tuple[bytes, bytes]]:
    a, b = edge
    yield a, a
    yield a, b
    yield b, b
    yield b, a


def _hash_to_min_messages(element) -> Iterator[tuple[bytes, tuple[str, tuple[bytes, ...]]]]:
    """One hash-to-min round (Rastogi et al. 2013): send the whole set C(v) to its minimum m and
    m to every member of C(v). At the fixed point the cluster's minimum holds the cluster and every
    other member holds just that minimum. 'old' carries C(v) over, to detect the fixed point."""
    node, members = element
    root = members[0]
    yield root, ("set", members)
    for m in members:
        yield m, ("set", (root,))
    yield node, ("old", members)


class _MergeRound(CountingDoFn):
    def __init__(self, count_changes: bool):
        self._count_changes = count_changes

    def process(self, element):
        node, messages = element
        merged: set[bytes] = set()
        old: tuple[bytes, ...] = ()
        for kind, members in messages:
            if kind == "old":
                old = members
            else:
                merged.update(members)
        new = tuple(sorted(merged))
        if self._count_changes and new != old:
            self.count(reasons.NS_NEAR_DEDUP, reasons.NEAR_DEDUP_UNCONVERGED)
        yield node, new


def _root_of(element) -> tuple[bytes, bytes]:
    """node -> the smallest id it knows in its component (its root once the rounds converged;
    before, a component may be split among several roots: fewer removals, never wrong ones)."""
    node, members = element
    return node, members[0]


def _route_to_root(joined) -> Iterator:
    """Candidates of a component go to its root; the others (no verified edge) stay."""
    pid, groups = joined
    roots = list(groups["root"])
    if roots:
        for page in groups["page"]:
            yield roots[0], (pid, page)


def keep_or_remove(members: list[tuple], threshold: float) -> tuple[list, list[tuple]]:
    """One component of (id, (url, shingles)) members: (ids kept, (id, audit row) of each page
    removed), by greedy star clustering:
    the page with the most near-duplicates (exact Jaccard >= threshold) among the pages left is
    kept (ties: the smallest id, i.e. md5(url)) and removes those near-duplicates; the rest repeat.
    Every removed page is compared with the page kept in its place, directly. A component larger
    than MAX_STAR_COMPONENT keeps its smallest id first instead (linear, not quadratic, per kept
    page). Pages with one id (same url and text) share their fate."""
    by_id: dict[bytes, list[tuple]] = {}
    for pid, page in members:
        by_id.setdefault(pid, []).append(page)
    ids = sorted(by_id)
    sets = {pid: set(by_id[pid][0][1]) for pid in ids}
    near: dict[bytes, dict[bytes, float]] = {pid: {} for pid in ids}
    star = len(ids) <= MAX_STAR_COMPONENT
    if star:
        for i, a in enumerate(ids):
            for b in ids[i + 1 :]:
                jaccard = minhash.exact_jaccard(sets[a], sets[b])
                if jaccard >= threshold:
                    near[a][b] = near[b][a] = jaccard
    kept: list = []
    rows: list[tuple] = []
    left = dict.fromkeys(ids)  # insertion-ordered: ids ascending
    while left:
        if star:
            keeper = min(left, key=lambda pid: (-sum(other in left for other in near[pid]), pid))
            removed = {pid: j for pid, j in near[keeper].items() if pid in left}
        else:
            keeper = next(iter(left))
            removed = {}
            for pid in left:
                if pid != keeper:
                    jaccard = minhash.exact_jaccard(sets[keeper], sets[pid])
                    if jaccard >= threshold:
                        removed[pid] = jaccard
        kept.append(keeper)
        kept_url = by_id[keeper][0][0]
        for pid in sorted(removed):
            rows += [(pid, audit_row(url, kept_url, removed[pid])) for url, _ in by_id[pid]]
        for pid in [keeper, *removed]:
            del left[pid]
    return kept, rows


class _KeepOrRemove(CountingDoFn):
    def __init__(self, threshold: float):
        self._threshold = threshold

    def process(self, element):
        _, members = element
        _, removed = keep_or_remove(list(members), self._threshold)
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

    `texts`: a PTransform from a PCollection of page ids (the candidates) to (page id, page) for
    those ids (anything with `.url` and `.text`). Two pages are candidates when they share a band
    key; a candidate pair is an edge when the exact Jaccard similarity of the two shingle sets
    (`minhash.shingles` with `ngram` and `normalization`) is >= `threshold`. Within each connected
    component of the edges the page with the most near-duplicates (ties: smallest id) is kept and
    removes the pages whose exact Jaccard *with it* is >= `threshold`; the pages it does not remove
    repeat the rule among themselves (`keep_or_remove`). `max_rounds` hash-to-min rounds are
    unrolled; the counter `unconverged-nodes` > 0 says more were needed (the run then keeps some
    duplicates, never removes a page without a kept near-duplicate). With `audit_path`, one JSON
    line per removed page {"url", "kept_url", "jaccard"} is written there atomically, sorted (see
    `near_dedup_audit`).
    """

    def __init__(
        self,
        texts,
        threshold: float = minhash.DEFAULT_THRESHOLD,
        ngram: int = minhash.DEFAULT_NGRAM,
        normalization: str = minhash.DEFAULT_NORMALIZE,
        max_rounds: int = DEFAULT_MAX_ROUNDS,
        audit_path: Optional[str] = None,
    ):
        super().__init__()
        if max_rounds < 1:
            raise ValueError(f"max_rounds must be >= 1, got {max_rounds}")
        self._texts = texts
        self._ngram = ngram
        self._normalization = normalization
        self._threshold = threshold
        self._max_rounds = max_rounds
        self._audit_path = audit_path

    def expand(self, band_entries):
        pairs = (
            band_entries
            | "GroupBucketShards" >> beam.GroupByKey()
            | "CandidatePairs" >> beam.FlatMap(_candidate_pairs)
            | "DistinctCandidates" >> beam.Distinct()
            | "CountCandidates" >> CountElements(reasons.NS_NEAR_DEDUP, reasons.NEAR_DEDUP_CANDIDATE_PAIRS)
        )
        # An id once per pair it is in: `texts` reads each page once (its join dedups).
        candidate_ids = pairs | "CandidateIds" >> beam.FlatMap(_both_ends)
        texts = (
            candidate_ids
            | "CandidateTexts" >> self._texts
            | "Shingle" >> beam.Map(_Shingler(self._ngram, self._normalization))
        )
        half = (
            {"page": texts, "larger": pairs}
            | "JoinSmaller" >> beam.CoGroupByKey()
            | "SendShingles" >> beam.FlatMap(_send_shingles_to_larger)
        )
        edges = (
            {"page": texts, "smaller": half}
            | "JoinLarger" >> beam.CoGroupByKey()
            | "ExactJaccard" >> beam.FlatMap(_verified_edges, self._threshold)
            | "CountVerified" >> CountElements(reasons.NS_NEAR_DEDUP, reasons.NEAR_DEDUP_VERIFIED_PAIRS)
        )
        clusters = (
            edges
            | "Neighbourhoods" >> beam.FlatMap(_initial_neighbourhood)
            | "GroupNeighbourhoods" >> beam.GroupByKey()
            | "SortNeighbourhoods" >> beam.MapTuple(lambda node, ms: (node, tuple(sorted(set(ms)))))
        )
        for i in range(self._max_rounds):
            clusters = (
                clusters
                | f"HashToMin{i}" >> beam.FlatMap(_hash_to_min_messages)
                | f"GroupRound{i}" >> beam.GroupByKey()
                | f"MergeRound{i}" >> Counted(_MergeRound(count_changes=i == self._max_rounds - 1))
            )
        decided = (
            {"page": texts, "root": clusters | "RootOf" >> beam.Map(_root_of)}
            | "JoinRoots" >> beam.CoGroupByKey()
            | "RouteToRoot" >> beam.FlatMap(_route_to_root)
            | "GroupComponents" >> beam.GroupByKey()
            | "KeepOrRemove" >> Counted(_KeepOrRemove(self._threshold), tags=("audit",), main="removed")
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

    def expand(self, page_ids):
        return (
            {"page": self._keyed, "want": page_ids | "Want" >> beam.Map(lambda pid: (pid, None))}
            | "JoinWanted" >> beam.CoGroupByKey()
            | "Wanted" >> beam.FlatMap(_wanted_pages)
        )


def _wanted_pages(joined):
    pid, groups = joined
    if any(True for _ in groups["want"]):
        for page in groups["page"]:
            yield pid, page


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
