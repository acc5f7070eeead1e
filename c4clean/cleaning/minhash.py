"""MinHash near-duplicate primitives: shingles, signatures, LSH band keys (pure Python, no Beam).

Tokenisation: the text is lower-cased and split on whitespace (`str.split()`); a shingle is `n`
consecutive words joined by one space, UTF-8 encoded. A document with fewer than `n` words gives
one shingle made of all its words; an empty document gives none (and so no band keys: it is never
a near-duplicate of anything).

Signatures are datasketch MinHashes: each shingle is hashed with CRC-32 (`zlib.crc32`, unseeded
and identical everywhere; datasketch's `affine32` scheme mixes it with murmur3's finaliser before
the permutations, which are drawn from `seed`). So signatures are the same in every process and on
every machine: nothing depends on Python's salted `hash()`. CRC-32 instead of datasketch's default
SHA-1 doubles signature throughput with the same estimation error (measured: RMS error 0.041 vs
0.040 against the true Jaccard over 150 pairs, 128 permutations).
"""

from __future__ import annotations

import functools
import hashlib
import zlib
from typing import Iterable, Sequence

import numpy as np
from datasketch import LeanMinHash, MinHash
from datasketch.lsh import _optimal_param

DEFAULT_THRESHOLD = 0.8
DEFAULT_NUM_PERM = 128
DEFAULT_NGRAM = 5
DEFAULT_SEED = 1
SCHEME = "affine32"
SHINGLE_HASH = zlib.crc32
_SIG_DTYPE = np.dtype("<u4")  # affine32 hash values; little-endian so the bytes are portable


def shingles(text: str, n: int = DEFAULT_NGRAM) -> list[bytes]:
    """Distinct word n-grams of `text` (see the module docstring for the tokenisation)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    # Whitespace runs become one ASCII space, so one encode and a bytes split give the UTF-8 words.
    words = " ".join(text.lower().split()).encode("utf-8").split(b" ")
    if words == [b""]:
        return []
    if len(words) <= n:
        return [b" ".join(words)]
    # A set: MinHash ignores repeats, so hashing each distinct shingle once is enough.
    join = b" ".join
    return list({join(words[i : i + n]) for i in range(len(words) - n + 1)})


class MinHasher:
    """Computes MinHash signatures with one fixed set of permutations.

    The permutations are drawn once per instance (datasketch derives them from `seed`), and every
    signature starts from a copy of that template, as `MinHash.bulk` does.
    """

    def __init__(
        self, num_perm: int = DEFAULT_NUM_PERM, seed: int = DEFAULT_SEED, ngram: int = DEFAULT_NGRAM
    ):
        self.num_perm = num_perm
        self.seed = seed
        self.ngram = ngram
        self._template = MinHash(num_perm=num_perm, seed=seed, scheme=SCHEME, hashfunc=SHINGLE_HASH)

    def _minhash(self, shingle_list: Sequence[bytes]) -> MinHash:
        m = self._template.copy()
        m.update_batch(shingle_list)
        return m

    def signature(self, text: str) -> np.ndarray | None:
        """The signature of one text (uint32 array of `num_perm` values); None if it has no shingles."""
        sh = shingles(text, self.ngram)
        if not sh:
            return None
        return self._minhash(sh).hashvalues.astype(_SIG_DTYPE, copy=False)

    def signatures(self, texts: Iterable[str]) -> list[np.ndarray | None]:
        """Signatures of many texts with `MinHash.bulk` (None where a text has no shingles)."""
        shingle_lists = [shingles(t, self.ngram) for t in texts]
        nonempty = [s for s in shingle_lists if s]
        computed = iter(
            MinHash.bulk(
                nonempty, num_perm=self.num_perm, seed=self.seed, scheme=SCHEME, hashfunc=SHINGLE_HASH
            )
        )
        return [
            next(computed).hashvalues.astype(_SIG_DTYPE, copy=False) if s else None for s in shingle_lists
        ]

    def lean(self, signature: np.ndarray) -> LeanMinHash:
        """The signature as a datasketch LeanMinHash (for use with datasketch's own LSH classes)."""
        return LeanMinHash(seed=self.seed, hashvalues=signature, scheme=SCHEME)


def signature_to_bytes(signature: np.ndarray) -> bytes:
    return np.asarray(signature, dtype=_SIG_DTYPE).tobytes()


def signature_from_bytes(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype=_SIG_DTYPE)


def estimated_jaccard(sig_a: np.ndarray, sig_b: np.ndarray) -> float:
    """The MinHash estimate of the Jaccard similarity: the share of equal signature values."""
    if len(sig_a) != len(sig_b):
        raise ValueError(f"signatures differ in length: {len(sig_a)} != {len(sig_b)}")
    return float(np.count_nonzero(np.asarray(sig_a) == np.asarray(sig_b))) / len(sig_a)


@functools.lru_cache(maxsize=None)
def optimal_bands(
    threshold: float = DEFAULT_THRESHOLD, num_perm: int = DEFAULT_NUM_PERM, false_negative_weight: float = 0.5
) -> tuple[int, int]:
    """(bands b, rows per band r), b * r <= num_perm, that minimise datasketch's weighted sum of the
    false-positive and false-negative probabilities of LSH banding around `threshold`.

    The default weight 0.5 gives what datasketch's `MinHashLSH` chooses: for 0.8 and 128
    permutations (9, 13), which makes a pair with Jaccard 0.8 a candidate only 40% of the time
    (0.85: 69%, 0.9: 93%). When candidates are verified anyway, a higher weight trades more
    candidate pairs for recall: 0.9 gives (14, 9) and 87% / 97% / 99.9%.
    """
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    if num_perm < 2:
        raise ValueError(f"num_perm must be >= 2, got {num_perm}")
    if not 0.0 < false_negative_weight < 1.0:
        raise ValueError(f"false_negative_weight must be in (0, 1), got {false_negative_weight}")
    return _optimal_param(threshold, num_perm, 1.0 - false_negative_weight, false_negative_weight)


def band_keys(signature: np.ndarray, b: int, r: int) -> list[bytes]:
    """One bucket key per band: 2 bytes of band index + a 16-byte BLAKE2b digest of the band's values.

    Two documents share a key exactly when they agree on all `r` values of that band (up to a
    2^-128 digest collision); the digest keeps keys short whatever `r` is.
    """
    if b * r > len(signature):
        raise ValueError(f"b * r = {b * r} exceeds the signature length {len(signature)}")
    if b > 0xFFFF:
        raise ValueError(f"too many bands: {b}")
    values = np.asarray(signature, dtype=_SIG_DTYPE)
    return [
        i.to_bytes(2, "big") + hashlib.blake2b(values[i * r : (i + 1) * r].tobytes(), digest_size=16).digest()
        for i in range(b)
    ]


def page_id(url: str, text: str) -> str:
    """A node id for a page: md5(url) hex, then a short md5 of the text.

    Ids sort by md5(url) first, so "keep the smallest id of a cluster" keeps the page whose
    md5(url) is smallest (the rule C4's line dedup uses); the text part separates two different
    pages that share a URL.
    """
    return hashlib.md5(url.encode("utf-8")).hexdigest() + hashlib.md5(text.encode("utf-8")).hexdigest()[:16]
