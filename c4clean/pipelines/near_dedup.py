"""MinHash near-duplicate removal as Beam steps.

    pages ─► (id, page) ─► signatures ─► LSH band keys ─► buckets (ids only) ─► candidate edges
          ─► [verify by estimated Jaccard] ─► connected components (hash-to-min rounds)
          ─► drop marks ─► CoGroupByKey with the pages ─► pages without near-duplicates

Every step groups by a key (a band bucket, a page id, a cluster root), so no worker ever holds the
whole corpus; the largest group is one LSH bucket (ids) or one cluster (ids and signatures).
A page's id sorts by md5(url) (`minhash.page_id`), and each cluster keeps its smallest id, so the
result depends neither on input order nor on how the runner splits the work.
"""

from __future__ import annotations

from typing import Iterable, Iterator

import apache_beam as beam
from apache_beam.metrics import Metrics

from c4clean.cleaning import minhash, reasons
from c4clean.cleaning.page import Page

DEFAULT_MAX_ROUNDS = 8
# LSH bands weighted towards recall (fp 0.1 / fn 0.9 in datasketch's optimiser: 14 bands x 9 rows for
# 0.8 / 128): verification removes the extra false positives, and datasketch's even weighting finds
# a pair at Jaccard 0.8 only ~40% of the time (measured recall of planted pairs: 6/15 -> 10/15).
RECALL_WEIGHT = 0.9


def _counter(name: str):
    return Metrics.counter(reasons.NS_NEAR_DEDUP, name)


class _Signatures(beam.DoFn):
    """(id, page) -> (id, signature bytes); pages without any shingle get no signature."""

    def __init__(self, num_perm: int, seed: int, ngram: int):
        self._args = (num_perm, seed, ngram)
        self._hasher = None

    def setup(self):
        # The permutations are drawn once per worker, not once per page.
        self._hasher = minhash.MinHasher(*self._args)

    def process(self, element):
        pid, page = element
        sig = self._hasher.signature(page.text)
        if sig is not None:
            yield pid, minhash.signature_to_bytes(sig)


def _band_entries(element, b: int, r: int) -> Iterator[tuple[bytes, str]]:
    pid, sig = element
    for key in minhash.band_keys(minhash.signature_from_bytes(sig), b, r):
        yield key, pid


def _star_edges(bucket) -> Iterator[tuple[str, str]]:
    """A star from the bucket's smallest id to every other member: enough to connect them all."""
    _, ids = bucket
    members = sorted(set(ids))
    for other in members[1:]:
        yield members[0], other


class _CountEach(beam.DoFn):
    def __init__(self, name: str):
        self._name = name
        self._counter = None

    def setup(self):
        self._counter = _counter(self._name)

    def process(self, element):
        self._counter.inc()
        yield element


def _attach_other_signature(joined) -> Iterator[tuple[str, tuple[str, bytes]]]:
    other, groups = joined
    sigs = list(groups["sig"])
    if sigs:
        for root in groups["edge"]:
            yield root, (other, sigs[0])


def _verified_edges(joined, threshold: float) -> Iterator[tuple[str, str]]:
    root, groups = joined
    sigs = list(groups["sig"])
    if not sigs:
        return
    root_sig = minhash.signature_from_bytes(sigs[0])
    for other, other_sig in groups["half"]:
        if minhash.estimated_jaccard(root_sig, minhash.signature_from_bytes(other_sig)) >= threshold:
            yield root, other


def _initial_neighbourhood(edge) -> Iterator[tuple[str, str]]:
    a, b = edge
    yield a, a
    yield a, b
    yield b, b
    yield b, a


def _hash_to_min_messages(element) -> Iterator[tuple[str, tuple[str, tuple[str, ...]]]]:
    """One hash-to-min round (Rastogi et al. 2013): send the whole set C(v) to its minimum m and
    m to every member of C(v). At the fixed point the cluster's minimum holds the cluster and every
    other member holds just that minimum. 'old' carries C(v) over, to detect the fixed point."""
    node, members = element
    root = members[0]
    yield root, ("set", members)
    for m in members:
        yield m, ("set", (root,))
    yield node, ("old", members)


class _MergeRound(beam.DoFn):
    def __init__(self, count_changes: bool):
        self._count_changes = count_changes
        self._unconverged = None

    def setup(self):
        self._unconverged = _counter(reasons.NEAR_DEDUP_UNCONVERGED)

    def process(self, element):
        node, messages = element
        merged: set[str] = set()
        old: tuple[str, ...] = ()
        for kind, members in messages:
            if kind == "old":
                old = members
            else:
                merged.update(members)
        new = tuple(sorted(merged))
        if self._count_changes and new != old:
            self._unconverged.inc()
        yield node, new


def _drop_marks(element) -> Iterator[tuple[str, bool]]:
    """A node is dropped when its cluster holds a smaller id. Before the fixed point a node may
    still wrongly look like a root (kept), but a dropped node always has a kept smaller node in its
    cluster: an unconverged run removes too little, never too much."""
    node, members = element
    if members[0] < node:
        yield node, True


def _count_root(element) -> None:
    node, members = element
    if members[0] == node:
        _counter(reasons.NEAR_DEDUP_CLUSTERS).inc()


class _KeepUnmarked(beam.DoFn):
    def setup(self):
        self._passed = _counter(reasons.PASSED)
        self._dropped = _counter(reasons.NEAR_DUPLICATE)

    def process(self, element) -> Iterable[Page]:
        _, groups = element
        drop = any(groups["drop"])
        for page in groups["page"]:
            if drop:
                self._dropped.inc()
            else:
                self._passed.inc()
                yield page


class RemoveNearDuplicates(beam.PTransform):
    """PCollection[Page] -> PCollection[Page] with one page kept per cluster of near-duplicates.

    Two pages are candidates when their MinHash signatures agree on a whole LSH band (b bands of r
    rows, chosen from `threshold` and `num_perm` as datasketch's MinHashLSH does; a
    `false_negative_weight` above 0.5 favours recall, see `minhash.optimal_bands`). With `verify`
    (default), a candidate pair becomes an edge only if its estimated Jaccard similarity (the share
    of equal signature values) is >= `threshold`, which removes LSH false positives and makes the
    result a function of the threshold; without it every candidate pair is an edge. Clusters are
    the connected components of the edges (A~B and B~C put A, B, C together) and each keeps the
    page with the smallest md5(url). `max_rounds` hash-to-min rounds are unrolled; the counter
    `unconverged-nodes` > 0 says more are needed (the run then keeps some duplicates, never drops
    a unique page).

    Pages that share url and text share an id and are kept or dropped together: run URL dedup
    first (the C4 recipe does).
    """

    def __init__(
        self,
        threshold: float = minhash.DEFAULT_THRESHOLD,
        num_perm: int = minhash.DEFAULT_NUM_PERM,
        ngram: int = minhash.DEFAULT_NGRAM,
        seed: int = minhash.DEFAULT_SEED,
        *,
        verify: bool = True,
        false_negative_weight: float = RECALL_WEIGHT,
        max_rounds: int = DEFAULT_MAX_ROUNDS,
        label: str | None = None,
    ):
        super().__init__(label)
        if max_rounds < 1:
            raise ValueError(f"max_rounds must be >= 1, got {max_rounds}")
        self.threshold = threshold
        self.num_perm = num_perm
        self.ngram = ngram
        self.seed = seed
        self.verify = verify
        self.max_rounds = max_rounds
        self.bands, self.rows = minhash.optimal_bands(threshold, num_perm, false_negative_weight)

    def expand(self, pages):
        keyed = pages | "KeyById" >> beam.Map(lambda p: (minhash.page_id(p.url, p.text), p))
        sigs = keyed | "Signature" >> beam.ParDo(_Signatures(self.num_perm, self.seed, self.ngram))

        edges = (
            sigs
            | "BandKeys" >> beam.FlatMap(_band_entries, self.bands, self.rows)
            | "GroupBuckets" >> beam.GroupByKey()
            | "StarEdges" >> beam.FlatMap(_star_edges)
            | "DistinctCandidates" >> beam.Distinct()
            | "CountCandidates" >> beam.ParDo(_CountEach(reasons.NEAR_DEDUP_CANDIDATE_PAIRS))
        )
        if self.verify:
            half = (
                {"sig": sigs, "edge": edges | "KeyByOther" >> beam.Map(lambda e: (e[1], e[0]))}
                | "JoinOtherSignature" >> beam.CoGroupByKey()
                | "AttachOtherSignature" >> beam.FlatMap(_attach_other_signature)
            )
            edges = (
                {"sig": sigs, "half": half}
                | "JoinRootSignature" >> beam.CoGroupByKey()
                | "VerifyJaccard" >> beam.FlatMap(_verified_edges, self.threshold)
                | "CountVerified" >> beam.ParDo(_CountEach(reasons.NEAR_DEDUP_VERIFIED_PAIRS))
            )

        clusters = (
            edges
            | "Neighbourhoods" >> beam.FlatMap(_initial_neighbourhood)
            | "GroupNeighbourhoods" >> beam.GroupByKey()
            | "SortNeighbourhoods" >> beam.MapTuple(lambda node, ms: (node, tuple(sorted(set(ms)))))
        )
        for i in range(self.max_rounds):
            clusters = (
                clusters
                | f"HashToMin{i}" >> beam.FlatMap(_hash_to_min_messages)
                | f"GroupRound{i}" >> beam.GroupByKey()
                | f"MergeRound{i}" >> beam.ParDo(_MergeRound(count_changes=i == self.max_rounds - 1))
            )
        _ = clusters | "CountClusters" >> beam.Map(_count_root)
        drops = clusters | "DropMarks" >> beam.FlatMap(_drop_marks)

        return (
            {"page": keyed, "drop": drops}
            | "JoinDropMarks" >> beam.CoGroupByKey()
            | "KeepUnmarked" >> beam.ParDo(_KeepUnmarked())
        )
