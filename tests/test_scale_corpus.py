"""benchmarks/scale_corpus.py: copies that no dedup step removes, read back as the same pages."""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import pytest

from c4clean.cleaning.dedup_lines import line_key
from c4clean.cleaning.minhash import exact_jaccard, shingles
from c4clean.cleaning.page import Page
from c4clean.cleaning.url import normalize_url
from c4clean.cleaning.wet import iter_records

_SPEC = importlib.util.spec_from_file_location(
    "scale_corpus", Path(__file__).resolve().parents[1] / "benchmarks" / "scale_corpus.py"
)
scale_corpus = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(scale_corpus)

URLS = [
    "http://www.example.com/a/",
    "https://example.com/a",
    "http://example.com/a?utm_source=feed",
    "https://news.example.org/x?id=3",
    "example.net/plain",
    "HTTP://Example.com/upper",
]


@pytest.mark.parametrize("url", URLS)
def test_copy_url_normalises_to_a_prefixed_url(url):
    assert scale_corpus.copy_url(url, 0) == url
    for k in (1, 2, 9):
        assert normalize_url(scale_corpus.copy_url(url, k)) == f"copy{k}." + normalize_url(url)


def test_urls_equal_after_normalisation_stay_equal_within_a_copy_only():
    a, b = URLS[0], URLS[1]
    assert normalize_url(a) == normalize_url(b)
    assert normalize_url(scale_corpus.copy_url(a, 3)) == normalize_url(scale_corpus.copy_url(b, 3))
    assert normalize_url(scale_corpus.copy_url(a, 3)) != normalize_url(scale_corpus.copy_url(b, 4))


@pytest.mark.parametrize("words", [5, 6, 12, 40])
def test_copies_of_a_line_are_distinct_lines_with_the_same_words_and_end(words):
    line = " ".join(f"w{i}" for i in range(words - 1)) + " end."
    copies = [scale_corpus.copy_line(line, k) for k in range(10)]
    assert copies[0] == line
    assert len({line_key(c) for c in copies}) == 10
    for c in copies:
        assert c.endswith(" end.")
        assert sorted(c.split()) == sorted(line.split())


def test_lines_a_rule_reads_as_a_phrase_or_header_keep_their_order():
    for line in (
        "Please read our Privacy Policy before you sign up here.",
        "Lorem ipsum dolor sit amet, consectetur adipiscing elit.",
        "WARC-Type: this looks like a header line to the reader.",
        "Too short.",
    ):
        assert scale_corpus.copy_line(line, 4) == line


def test_line_breaks_inside_a_line_are_kept_in_place():
    line = "one two three four five.\u2028six seven eight nine ten."
    copied = scale_corpus.copy_line(line, 2)
    first, second = copied.split("\u2028")
    assert first.endswith(" five.") and second.endswith(" ten.")
    assert copied != line


def _record(headers: list[str], body: str) -> bytes:
    data = body.encode("utf-8")
    head = "\r\n".join(["WARC/1.0", *headers, f"Content-Length: {len(data)}"])
    return head.encode("utf-8") + b"\r\n\r\n" + data + b"\r\n\r\n"


def test_scaled_file_reads_back_as_the_same_pages_under_new_urls(tmp_path):
    sentences = [f"The {w} sat on the mat near door number {i} today." for i, w in enumerate("abcdefgh")]
    body = "A title without an end mark\n" + "\n".join(sentences)
    info = _record(["WARC-Type: warcinfo", "WARC-Date: 2019-01-01T00:00:00Z"], "software: test\r\n")
    raw = info + b"".join(
        _record(
            [
                "WARC-Type: conversion",
                f"WARC-Target-URI: http://www.site{i}.com/page",
                "WARC-Date: 2019-01-02T00:00:00Z",
                f"WARC-Record-ID: <urn:uuid:00000000-0000-0000-0000-00000000000{i}>",
                "WARC-Block-Digest: sha1:X",
                "Content-Type: text/plain",
            ],
            body + f"\nPage {i} ends here with five words.",
        )
        for i in range(3)
    )
    src = tmp_path / "in" / "x.warc.wet.gz"
    src.parent.mkdir()
    src.write_bytes(gzip.compress(raw, mtime=0))
    out = tmp_path / "out"
    scale_corpus.scale_file(src, out, 3)
    names = sorted(p.name for p in out.iterdir())
    assert names == ["x-copy001.warc.wet.gz", "x-copy002.warc.wet.gz", "x.warc.wet.gz"]
    assert (out / "x.warc.wet.gz").read_bytes() == src.read_bytes()

    def pages(name):
        items = list(iter_records(out / name))
        assert all(isinstance(p, Page) for p in items[1:]) and len(items) == 4  # warcinfo: NO_URL
        return items[1:]

    original = pages("x.warc.wet.gz")
    for k in (1, 2):
        copied = pages(scale_corpus.copy_name("x.warc.wet.gz", k))
        for a, b in zip(original, copied):
            assert normalize_url(b.url) == f"copy{k}." + normalize_url(a.url)
            assert b.timestamp == a.timestamp
            lines_a, lines_b = a.text.split("\n"), b.text.split("\n")
            assert [sorted(x.split()) for x in lines_a] == [sorted(x.split()) for x in lines_b]
            assert not {line_key(x) for x in lines_a[1:]} & {line_key(x) for x in lines_b[1:]}
            assert exact_jaccard(set(shingles(a.text)), set(shingles(b.text))) < 0.1
        # equal lines of different pages stay equal within a copy (line dedup sees the same)
        assert copied[0].text.split("\n")[1:-1] == copied[1].text.split("\n")[1:-1]
