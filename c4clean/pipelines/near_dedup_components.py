"""Near-dedup's candidate components: LSH buckets -> candidate pairs -> connected components, by
hash-to-min rounds (Rastogi et al. 2013) over shards of page ids.

Each step works on one shard of nodes (page ids) at a time: it reads the messages sent to the
shard's nodes, groups them by node, and writes the messages it sends, packed per destination shard
(`_pack_messages`) and spilled to a work file when `spill_dir` is set (`passes.spill_packs`), so
that what crosses each shuffle is one reference per pair of shards, not one element per node: a
runner that holds what it groups (Beam's local runner, in the driver) then holds no ids, and on the
local workers (`Pooled`) the shards run in parallel. A node's messages are the same as if each node
were grouped on its own, so the components do not depend on the sharding.

    band key shards -> CandidatePairs: per node, its partners in the shard's buckets
    -> Neighbourhoods: C(v) = v and all its partners; the first round's messages
    -> Round i: C(v) = what v received; the next round's messages
    -> LastRound: the request `root + id` of each candidate page, root = min C(v)
"""

from __future__ import annotations

import collections
import itertools
from typing import Iterator, Optional

import apache_beam as beam
import numpy as np

from c4clean.cleaning import reasons
from c4clean.pipelines.counting import Counted, CountingDoFn
from c4clean.pipelines.passes import read_packs, spill_packs
from c4clean.pipelines.pool import Pooled

# Buckets up to this size give all their pairs as candidates; larger ones a star from their
# smallest id (enough to connect them, and what keeps a bucket of thousands of copies linear).
MAX_ALL_PAIRS_BUCKET = 32
_NEW, _OLD = 0, 1  # a message of ids for C(v), or (last round) C(v) itself carried over


def _ids(packed: bytes, width: int) -> list[bytes]:
    return [packed[i : i + width] for i in range(0, len(packed), width)]


def node_shard(node: bytes, shards: int) -> int:
    """The shard of a page id (its first bytes: md5 of the url, `minhash.page_id`)."""
    return int.from_bytes(node[:4], "big") % shards


def _pack_messages(width: int, messages) -> bytes:
    """(node, kind, packed ids) messages, ids of `width` bytes -> one bytes value: the width, then
    per message the node, its kind, the number of ids and the ids."""
    parts = [width.to_bytes(2, "big")]
    for node, kind, ids in messages:
        parts += [node, bytes((kind,)), (len(ids) // width).to_bytes(4, "big"), ids]
    return b"".join(parts)


def _unpack_messages(pack: bytes) -> Iterator[tuple[bytes, int, bytes]]:
    width, at = int.from_bytes(pack[:2], "big"), 2
    while at < len(pack):
        node, kind = pack[at : at + width], pack[at + width]
        count = int.from_bytes(pack[at + width + 1 : at + width + 5], "big")
        at += width + 5
        yield node, kind, pack[at : at + count * width]
        at += count * width


def _shared_buckets(shard) -> Iterator[list[bytes]]:
    """The ids of each band key of a key shard (`passes.pack_by_key_shard`) that more than one
    entry has. Most keys have one page: numpy sorts the entries by key and only the keys that
    repeat reach Python."""
    _, packs = shard
    bodies: dict[bytes, list[bytes]] = collections.defaultdict(list)
    for pack in read_packs(packs):
        bodies[pack[:4]].append(pack[4:])
    for header, parts in sorted(bodies.items()):
        key_width, id_width = int.from_bytes(header[:2], "big"), int.from_bytes(header[2:], "big")
        rows = np.frombuffer(b"".join(parts), dtype=np.uint8).reshape(-1, key_width + id_width)
        keys = np.ascontiguousarray(rows[:, :key_width]).view(f"S{key_width}").ravel()
        order = np.argsort(keys, kind="stable")
        repeats = np.flatnonzero(keys[order[1:]] == keys[order[:-1]])  # i: sorted i and i + 1 share
        run: list[int] = []
        for i in repeats.tolist():
            if run and run[-1] != i:
                yield [rows[order[j], key_width:].tobytes() for j in run]
                run = []
            run += [i, i + 1] if not run else [i + 1]
        if run:
            yield [rows[order[j], key_width:].tobytes() for j in run]


def _bucket_pairs(members) -> Iterator[tuple[bytes, bytes]]:
    """(smaller id, larger id) pairs of one bucket: all of them, or a star for a large bucket."""
    members = sorted(set(members))
    if len(members) <= MAX_ALL_PAIRS_BUCKET:
        yield from itertools.combinations(members, 2)
    else:
        for other in members[1:]:
            yield members[0], other


def _hash_to_min_messages(node: bytes, members: list[bytes], carry: bool):
    """One hash-to-min round from node v with its sorted set C(v): send C(v) to its minimum m and m
    to every other member of C(v). At the fixed point the component's minimum holds the component
    and every other member holds just that minimum. With `carry` (for the last round), C(v) goes to
    v itself too, to detect the fixed point."""
    root = members[0]
    yield root, _NEW, b"".join(members)
    for m in members[1:]:
        yield m, _NEW, root
    if carry:
        yield node, _OLD, b"".join(members)


class _ShardStep(CountingDoFn):
    """A step over one shard: (shard key, [packs]) -> (destination shard, pack or reference) of the
    messages it sends (`_send`), spilled to `<spill_dir>/<name>-<shard key>.msgs` when set."""

    def __init__(self, name: str, shards: int, spill_dir: Optional[str]):
        self._name, self._shards, self._spill_dir = name, shards, spill_dir

    def _send(self, key, messages: list[tuple[bytes, int, bytes]]):
        if not messages:
            return
        by_shard: dict[int, list] = collections.defaultdict(list)
        for message in messages:
            by_shard[node_shard(message[0], self._shards)].append(message)
        width = len(messages[0][0])
        packs = [(shard, _pack_messages(width, sent)) for shard, sent in sorted(by_shard.items())]
        yield from spill_packs(packs, self._spill_dir, f"{self._name}-{key}.msgs")

    @staticmethod
    def _received(packs) -> dict[bytes, list[tuple[int, bytes]]]:
        """node -> its messages (kind, packed ids), nodes in order."""
        received: dict[bytes, list] = collections.defaultdict(list)
        for pack in read_packs(packs):
            for node, kind, ids in _unpack_messages(pack):
                received[node].append((kind, ids))
        return dict(sorted(received.items()))


class _CandidatePairs(_ShardStep):
    """A key shard of band entries -> each node's candidate partners in the shard's buckets."""

    def process(self, element):
        key, _ = element
        partners: dict[bytes, set] = collections.defaultdict(set)
        for members in _shared_buckets(element):
            for a, b in _bucket_pairs(members):
                partners[a].add(b)
                partners[b].add(a)
        yield from self._send(
            key, [(node, _NEW, b"".join(sorted(o))) for node, o in sorted(partners.items())]
        )


def _merged(node: bytes, messages) -> tuple[list[bytes], bytes]:
    """A node's messages -> (C(v) merged and sorted, the C(v) carried over or b"")."""
    merged: set[bytes] = set()
    old = b""
    for kind, ids in messages:
        if kind == _OLD:
            old = ids
        else:
            merged.update(_ids(ids, len(node)))
    return sorted(merged) or [node], old


class _Round(_ShardStep):
    """A round before the last over a node shard: C(v) -> the next round's messages. The first round
    (`first`) takes C(v) = v and its candidate partners, and counts each distinct candidate pair once
    (at its smaller id); the others take what v received. `carry`: the next round is the last."""

    def __init__(self, name: str, shards: int, spill_dir: Optional[str], first: bool, carry: bool):
        super().__init__(name, shards, spill_dir)
        self._first, self._carry = first, carry

    def process(self, element):
        key, packs = element
        sent = []
        for node, messages in self._received(packs).items():
            if self._first:
                others = {other for _, ids in messages for other in _ids(ids, len(node))}
                pairs = sum(other > node for other in others)
                self.count(reasons.NS_NEAR_DEDUP, reasons.NEAR_DEDUP_CANDIDATE_PAIRS, pairs)
                members = sorted(others | {node})
            else:
                members = _merged(node, messages)[0]
            sent += _hash_to_min_messages(node, members, self._carry)
        yield from self._send(key, sent)


class _LastRound(_ShardStep):
    """The last round over a node shard: C(v) merged -> the request for each page's text, `root +
    id`, and a count of the nodes whose C(v) still changed (the rounds had not converged)."""

    def process(self, element):
        _, packs = element
        for node, messages in self._received(packs).items():
            members, old = _merged(node, messages)
            if b"".join(members) != old:
                self.count(reasons.NS_NEAR_DEDUP, reasons.NEAR_DEDUP_UNCONVERGED)
            # The smallest id it knows in its component: its root once the rounds converged; before,
            # a component may be split among several roots (fewer removals, never wrong ones).
            yield members[0] + node


class CandidateComponents(beam.PTransform):
    """PCollection[(key shard, pack of (band key, page id))] -> PCollection[root + page id]: each
    page in a candidate pair (two pages sharing a band key), with the smallest id of its connected
    component of candidate pairs. `max_rounds` hash-to-min rounds are unrolled; the counter
    `unconverged-nodes` > 0 says more were needed (a component may then have several roots).
    Nodes go to `shards` shards; with `spill_dir`, the messages wait in work files there."""

    def __init__(self, max_rounds: int, shards: int, spill_dir: Optional[str] = None):
        super().__init__()
        if max_rounds < 1:
            raise ValueError(f"max_rounds must be >= 1, got {max_rounds}")
        self._max_rounds, self._shards, self._spill_dir = max_rounds, shards, spill_dir

    def _step(self, name: str, dofn_class, **kwargs):
        return Counted(Pooled(dofn_class(name, self._shards, self._spill_dir, **kwargs)))

    def expand(self, band_entries):
        last = self._max_rounds - 1
        messages = (
            band_entries
            | "GroupBucketShards" >> beam.GroupByKey()
            | "CandidatePairs" >> self._step("pairs", _CandidatePairs)
            | "GroupNeighbourhoods" >> beam.GroupByKey()
            | "Neighbourhoods" >> self._step("round0", _Round, first=True, carry=last == 0)
        )
        # Each round is one grouping and one step: the merge also sends the next round's messages.
        for i in range(1, self._max_rounds):
            step = self._step(f"round{i}", _Round, first=False, carry=i == last)
            messages = messages | f"GroupRound{i - 1}" >> beam.GroupByKey() | f"MergeRound{i - 1}" >> step
        return (
            messages
            | f"GroupRound{last}" >> beam.GroupByKey()
            | "LastRound" >> self._step("last", _LastRound)
        )
