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


def test_normalize_unifies_unicode_forms_quotes_dashes_and_digits():
    import unicodedata

    text = "Tiếng Việt có dấu"
    nfc, nfd = unicodedata.normalize("NFC", text), unicodedata.normalize("NFD", text)
    assert nfc != nfd
    assert minhash.normalize(nfc) == minhash.normalize(nfd) == unicodedata.normalize("NFC", text.lower())
    # Full-width letters (NFKC), smart and straight quotes, every dash, backtick and acute accent.
    assert minhash.normalize("ＡＢＣ") == "abc"
    variants = ["don’t “stop” — now", 'don\'t "stop" - now', "don`t «stop» – now", "don´t „stop“ −now"]
    assert {" ".join(minhash.normalize(v).split()) for v in variants} == {"don t stop now"}
    # Digit runs (any script's decimal digits) become one 0.
    assert minhash.normalize("In 2019: 3,500 pages, ٤٢ more") == "in 0  0 0 pages  0 more"
    # Mode "none" is the raw, lower-cased text (the shingles c4clean had before).
    assert minhash.normalize("Don’t 42", minhash.NORMALIZE_NONE) == "don’t 42"
    with pytest.raises(ValueError, match="unknown normalisation"):
        minhash.normalize("x", "nfd")


def test_shingles_normalised_by_default_raw_on_request():
    smart, straight = "He said “don’t” twice", 'He said "don\'t" twice'
    assert minhash.shingles(smart) == minhash.shingles(straight) == [b"he said don t twice"]
    raw = minhash.NORMALIZE_NONE
    assert minhash.shingles(smart, normalization=raw) != minhash.shingles(straight, normalization=raw)
    assert minhash.shingles("A, b.", n=5, normalization=raw) == [b"a, b."]


def test_punctuation_class_covers_every_unicode_punctuation_character():
    import sys
    import unicodedata

    assert all(
        unicodedata.category(chr(c))[0] != "P"
        for c in range(minhash._PUNCTUATION_SCAN_END, sys.maxunicode + 1)
    )
    sample = "".join(chr(c) for c in range(0x2000, 0x2070) if unicodedata.category(chr(c))[0] == "P")
    assert minhash.normalize(sample.replace("\u2017", "").replace("\u203e", "")).strip() == ""
    assert minhash.normalize(minhash.QUOTE_DASH_SYMBOLS).strip() == ""
    ascii_punctuation = "".join(c for c in map(chr, range(128)) if unicodedata.category(c)[0] == "P")
    assert minhash.normalize(ascii_punctuation + "`").strip() == ""


def test_exact_jaccard():
    a, b = {b"1", b"2", b"3"}, {b"2", b"3", b"4", b"5"}
    assert minhash.exact_jaccard(a, b) == minhash.exact_jaccard(b, a) == 2 / 5
    assert minhash.exact_jaccard(a, a) == 1.0
    assert minhash.exact_jaccard(set(), set()) == 0.0


def test_recall_bands_reach_the_recall_with_least_false_positive_area():
    assert minhash.recall_bands(0.8, 128) == (16, 6)
    for threshold, num_perm in [(0.8, 128), (0.5, 64), (0.9, 256), (0.7, 16)]:
        b, r = minhash.recall_bands(threshold, num_perm)
        assert b * r <= num_perm
        assert minhash.candidate_probability(threshold, b, r) >= 0.99
        # Brute force over every setting that reaches the recall: none has a smaller area.
        grid = np.linspace(0, threshold, 1001)
        area = lambda b, r: np.trapezoid(minhash.candidate_probability(grid, b, r), grid)  # noqa: E731
        best = min(
            area(b2, r2)
            for r2 in range(1, num_perm + 1)
            for b2 in range(1, num_perm // r2 + 1)
            if minhash.candidate_probability(threshold, b2, r2) >= 0.99
        )
        assert area(b, r) == pytest.approx(best)
    # Out of reach: the most sensitive setting.
    assert minhash.recall_bands(0.02, 128) == (128, 1)


def test_check_settings_messages():
    minhash.check_settings(0.8, 16, 1, "none")
    for args, message in [
        ((0.0, 128, 5, "nfkc"), "--near-dedup-threshold"),
        ((1.01, 128, 5, "nfkc"), "--near-dedup-threshold"),
        ((0.8, 15, 5, "nfkc"), "--num-perm must be >= 16"),
        ((0.8, 128, 0, "nfkc"), "--ngram must be >= 1"),
        ((0.8, 128, 5, "raw"), "--near-dedup-normalize"),
    ]:
        with pytest.raises(ValueError, match=message):
            minhash.check_settings(*args)
