import os
import subprocess
import sys
import zlib

import numpy as np
import pytest
from datasketch import MinHash, MinHashLSH

from c4clean.cleaning import minhash


def _words(n, prefix="w"):
    return [f"{prefix}{i}" for i in range(n)]


def true_jaccard(a: str, b: str, n: int = 5) -> float:
    sa, sb = set(minhash.shingles(a, n)), set(minhash.shingles(b, n))
    return len(sa & sb) / len(sa | sb)


def test_shingles_lowercase_whitespace_word_ngrams():
    got = minhash.shingles("A b\tC\n d  E f", n=5)
    assert sorted(got) == [b"a b c d e", b"b c d e f"]


def test_shingles_split_on_unicode_whitespace():
    got = minhash.shingles("Ä\u00a0b\u2003c d\u3000e é", n=5)
    assert sorted(got) == sorted(["ä b c d e".encode(), "b c d e é".encode()])


def test_shingles_short_and_empty_documents():
    assert minhash.shingles("Only three words", n=5) == [b"only three words"]
    assert minhash.shingles(" \n\t", n=5) == []


def test_shingles_are_distinct():
    text = " ".join(["la"] * 20)
    assert minhash.shingles(text, n=5) == [b"la la la la la"]


def test_signature_matches_datasketch_per_shingle_update():
    # Independent path: datasketch's plain update() one shingle at a time, same seed and scheme.
    text = " ".join(_words(60))
    expected = MinHash(num_perm=64, seed=7, scheme="affine32", hashfunc=zlib.crc32)
    for s in minhash.shingles(text):
        expected.update(s)
    got = minhash.MinHasher(num_perm=64, seed=7).signature(text)
    assert np.array_equal(got, expected.hashvalues)


def test_bulk_signatures_equal_single_signatures():
    hasher = minhash.MinHasher(num_perm=32)
    texts = [" ".join(_words(30, "a")), "", "one two", " ".join(_words(10, "b"))]
    bulk = hasher.signatures(texts)
    assert bulk[1] is None
    for text, sig in zip(texts, bulk):
        single = hasher.signature(text)
        assert (sig is None) == (single is None)
        if sig is not None:
            assert np.array_equal(sig, single)


def test_signature_is_the_same_in_another_process_with_another_hash_seed():
    text = "Near duplicate detection must not depend on PYTHONHASHSEED at all, ever."
    code = (
        "from c4clean.cleaning import minhash;"
        f"print(minhash.signature_to_bytes(minhash.MinHasher(num_perm=16).signature({text!r})).hex())"
    )
    env = dict(os.environ, PYTHONHASHSEED="12345")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    here = minhash.signature_to_bytes(minhash.MinHasher(num_perm=16).signature(text)).hex()
    assert out.stdout.strip() == here


def test_estimated_jaccard_tracks_true_jaccard():
    base = _words(400)
    edited = list(base)
    for i in range(0, 400, 40):  # 10 single-word edits, each breaks 5 shingles
        edited[i] = "CHANGED"
    a, b = " ".join(base), " ".join(edited)
    hasher = minhash.MinHasher(num_perm=256)
    est = minhash.estimated_jaccard(hasher.signature(a), hasher.signature(b))
    assert abs(est - true_jaccard(a, b)) < 0.08
    assert minhash.estimated_jaccard(hasher.signature(a), hasher.signature(a)) == 1.0


def test_lean_minhash_jaccard_agrees():
    hasher = minhash.MinHasher(num_perm=64)
    s1, s2 = hasher.signature(" ".join(_words(50))), hasher.signature(" ".join(_words(50)[5:]))
    assert hasher.lean(s1).jaccard(hasher.lean(s2)) == pytest.approx(minhash.estimated_jaccard(s1, s2))


def test_optimal_bands_are_datasketch_lsh_parameters():
    for threshold, num_perm in [(0.8, 128), (0.5, 64), (0.9, 256)]:
        b, r = minhash.optimal_bands(threshold, num_perm)
        lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
        assert (b, r) == (lsh.b, lsh.r)
        assert b * r <= num_perm
    with pytest.raises(ValueError):
        minhash.optimal_bands(0.0, 128)


def test_band_keys_shared_exactly_when_band_values_agree():
    hasher = minhash.MinHasher(num_perm=128)
    b, r = minhash.optimal_bands(0.8, 128)
    sig = hasher.signature(" ".join(_words(100)))
    other = sig.copy()
    other[r : 2 * r] += 1  # change band 1 only
    k1, k2 = minhash.band_keys(sig, b, r), minhash.band_keys(other, b, r)
    assert len(k1) == b and len(set(k1)) == b
    assert [x == y for x, y in zip(k1, k2)] == [i != 1 for i in range(b)]
    # Keys of different bands never collide even when the values do.
    flat = np.zeros(128, dtype=np.uint32)
    assert len(set(minhash.band_keys(flat, b, r))) == b
    with pytest.raises(ValueError):
        minhash.band_keys(sig, 20, 13)


def test_page_id_orders_by_url_md5_and_separates_texts():
    import hashlib

    a, b = minhash.page_id("http://a/", "x"), minhash.page_id("http://b/", "x")
    md5 = lambda u: hashlib.md5(u.encode()).hexdigest()  # noqa: E731
    assert (a < b) == (md5("http://a/") < md5("http://b/"))
    assert minhash.page_id("http://a/", "x") != minhash.page_id("http://a/", "y")
