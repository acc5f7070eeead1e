"""The WET/WARC reader: equal to TFDS `split_wet_file` on valid files, counted issues on damaged ones."""

from __future__ import annotations

import collections
import gzip
import io
import random
import zlib
from pathlib import Path

import pytest
from tfds_reference import load_c4_utils, read_tfds_pages

from c4clean.cleaning import reasons
from c4clean.cleaning.page import Page
from c4clean.cleaning.wet import ReadIssue, WarcResponse, iter_records, iter_warc_responses


def _fields(page) -> tuple:
    return (page.url, page.text, page.timestamp, page.content_type, page.content_length)


def _read(source, **kwargs):
    items = list(iter_records(source, **kwargs))
    pages = [r for r in items if isinstance(r, Page)]
    issues = collections.Counter(r.code for r in items if isinstance(r, ReadIssue))
    assert len(pages) + sum(issues.values()) == len(items)
    return pages, issues


def _reference_pages(path: Path) -> list:
    """The reference's pages, up to where it stops (it raises on a truncated gzip stream)."""
    pages = []
    try:
        for page in load_c4_utils().split_wet_file(str(path), counter_inc_fn=lambda *a, **k: None):
            pages.append(page)
    except EOFError:
        pass
    return pages


# --- differential: the same pages as TFDS on valid files -----------------------------------------------


def _valid_files(shared_data: Path) -> list:
    wet = shared_data / "wet"
    jeff = wet / "jeffharwell-CC-MAIN-2016-50"
    return (
        sorted((wet / "small").glob("*.wet.gz"))
        + sorted((wet / "synthetic" / "tfds_c4").glob("*.wet"))
        + sorted((wet / "whirlwind").glob("*.wet*"))
        + [wet / "synthetic" / "cc_net" / "sample.warc.txt"]
        + [
            jeff / f
            for f in (
                "fragment3.wet.gz",
                "corrupt_warcinfo_1.wet.gz",
                "corrupt_warcconversion_1.wet.gz",
                "corrupt_warcconversion_2.wet.gz",
                "corrupt_starts_with_conversion.wet.gz",
            )
        ]
    )


def test_pages_equal_reference_on_valid_files(shared_data):
    for path in _valid_files(shared_data):
        pages, _ = _read(path)
        reference = read_tfds_pages(path)
        assert [_fields(p) for p in pages] == [_fields(p) for p in reference], path.name
        assert all(p.normalized_url == "" for p in pages)


def test_reader_counts_match_reference_counters(shared_data):
    c4_utils = load_c4_utils()
    for path in sorted((shared_data / "wet" / "small").glob("*.wet.gz")):
        counted = collections.Counter()
        list(
            c4_utils.split_wet_file(str(path), counter_inc_fn=lambda name, amt=1: counted.update({name: amt}))
        )
        pages, issues = _read(path)
        assert counted["passed"] == len(pages)
        for code in (reasons.NO_URL, reasons.NO_CONTENT, reasons.NO_TIMESTAMP):
            assert counted[code] == issues[code], (path.name, code)


def test_complete_records_of_truncated_file_equal_reference(shared_data):
    # The reference yields the 43 complete conversion records, then raises at the cut gzip member.
    path = next((shared_data / "wet" / "wet-extractor-CC-MAIN-2017-30").glob("*.wet.gz"))
    pages, issues = _read(path)
    assert [_fields(p) for p in pages] == [_fields(p) for p in _reference_pages(path)]
    assert len(pages) == 43
    assert issues == {reasons.NO_URL: 1, reasons.READ_TRUNCATED_GZIP: 1}


def test_language_header_is_read(shared_data):
    pages, _ = _read(shared_data / "wet" / "whirlwind" / "whirlwind.warc.wet.gz")
    assert [(p.url, p.language) for p in pages] == [("https://an.wikipedia.org/wiki/Escopete", "spa")]
    pages, _ = _read(shared_data / "wet" / "jeffharwell-CC-MAIN-2016-50" / "fragment3.wet.gz")
    assert {p.language for p in pages} == {None}  # 2016 WET files have no language header


_FUZZ_LINES = [
    "WARC/1.0",
    " WARC/1.0 ",
    "\u00a0WARC/1.0",
    "WARC/1.0x",
    "xWARC/1.0",
    "WARC-Target-URI: http://a/{}",
    "WARC-Date: 2019-01-0{}",
    "Content-Type: text/plain",
    "Content-Length: {}",
    "CONTENT-x",
    "Content-",
    "WARC",
    "hello world {}",
    "  spaced  {} ",
    "\u2028weird\u2028",
    "\x1cfs\x1c",
    "",
    " ",
    "\t",
    "WARC-Identified-Content-Language: eng",
    "caf\u00e9 {}",
    "\x85nel",
]


def test_random_files_equal_reference(tmp_path):
    # Seeded random records mixing header keys in bodies, odd whitespace and all three line endings;
    # a well-formed last record keeps the truncation check out of the comparison.
    rng = random.Random(20190418)
    path = tmp_path / "r.wet.gz"
    for _ in range(150):
        lines = ["WARC/1.0"] + [
            rng.choice(_FUZZ_LINES).format(rng.randint(0, 9)) for _ in range(rng.randint(0, 40))
        ]
        text = "".join(line + rng.choice(["\n", "\r\n", "\r"]) for line in lines)
        text += "WARC/1.0\r\nWARC-Type: conversion\r\nContent-Length: 1\r\n\r\nx\r\n"
        path.write_bytes(gzip.compress(text.encode(), mtime=0))
        pages, _ = _read(path)
        assert [_fields(p) for p in pages] == [_fields(p) for p in read_tfds_pages(path)], repr(text)


# --- the jeffharwell files: exact counts, derived from the files themselves ---------------------------
# Derivation (independent of the reader): `zcat f | grep -c '^WARC/1.0'` counts records, and
# `grep -E '^WARC-Type|^WARC-Target-URI|^Content-Length'` lists them; each record's body was then measured
# in Python against its Content-Length (split the text at `WARC/1.0` lines, body = after the first blank
# line). A good record is a conversion with a URI, a date, text, and its whole body.
#   appended_zip_fragment_unexpected_eof: warcinfo + 16 conversions, the gzip stream cut inside the
#     17th member (gzip -t: "unexpected end of file"; body 3479 of 7758)       -> 15 good
#   corrupt_starts_with_conversion: 5 conversions + warcinfo (2nd record)   -> 5
#   corrupt_two_warcinfo: warcinfo, 2 conversions, warcinfo, 3 conversions  -> 5
#   corrupt_warcconversion_1: warcinfo + 5 conversions, the 1st with no WARC-Target-URI -> 4
#   corrupt_warcconversion_2: warcinfo + 1 conversion with no WARC-Target-URI -> 0
#   corrupt_warcinfo_1: warcinfo without WARC-Filename + 5 conversions      -> 5
#   file_and_wet_headers_only: warcinfo + a conversion that ends after its `Content-Length: 2287` line -> 0
#   file_headers_only: warcinfo only (LF endings, 254 bytes + 1 per LF >= 259) -> 0
#   fragment1_incomplete_last: warcinfo + 2 conversions, the last cut mid-line (9186 of 12694) -> 1
#   fragment1_asthma_incomplete_last: as above, but the edited 1st conversion has 2243 of its 2287
#     bytes, so the file's lengths cannot be trusted and the short last one (9187 of 12694) is kept
#     with a length-mismatch issue, as TFDS keeps it                           -> 2
#   fragment2_no_header: 7429 bytes before the first WARC/1.0, then 2 conversions, the last cut
#     (3124 of 9359)                                                           -> 1
#   fragment3: warcinfo + 5 complete conversions                               -> 5
JEFF_EXPECTED = {
    "appended_zip_fragment_unexpected_eof.wet.gz": (15, {reasons.NO_URL: 1, reasons.READ_TRUNCATED_GZIP: 1}),
    "corrupt_starts_with_conversion.wet.gz": (5, {reasons.NO_URL: 1}),
    "corrupt_two_warcinfo.wet.gz": (5, {reasons.NO_URL: 1, reasons.READ_EXTRA_WARCINFO: 1}),
    "corrupt_warcconversion_1.wet.gz": (4, {reasons.NO_URL: 2}),
    "corrupt_warcconversion_2.wet.gz": (0, {reasons.NO_URL: 2}),
    "corrupt_warcinfo_1.wet.gz": (5, {reasons.NO_URL: 1}),
    "file_and_wet_headers_only.wet.gz": (0, {reasons.NO_URL: 1, reasons.READ_TRUNCATED_RECORD: 1}),
    "file_headers_only.wet.gz": (0, {reasons.NO_URL: 1}),
    "fragment1_incomplete_last.wet.gz": (1, {reasons.NO_URL: 1, reasons.READ_TRUNCATED_RECORD: 1}),
    "fragment1_asthma_incomplete_last.wet.gz": (2, {reasons.NO_URL: 1, reasons.READ_LENGTH_MISMATCH: 2}),
    "fragment2_no_header.wet.gz": (
        1,
        {reasons.READ_BEFORE_FIRST_RECORD: 1, reasons.READ_TRUNCATED_RECORD: 1},
    ),
    "fragment3.wet.gz": (5, {reasons.NO_URL: 1}),
}


def test_jeffharwell_files_exact_counts(shared_data):
    folder = shared_data / "wet" / "jeffharwell-CC-MAIN-2016-50"
    assert sorted(p.name for p in folder.glob("*.wet.gz")) == sorted(JEFF_EXPECTED)
    for name, (good, issues) in JEFF_EXPECTED.items():
        pages, counted = _read(folder / name)
        assert (len(pages), dict(counted)) == (good, issues), name
        assert all(p.url.startswith("http://") and p.timestamp.startswith("2016-12-") for p in pages)


def test_no_url_record_and_headless_start_are_located(shared_data):
    folder = shared_data / "wet" / "jeffharwell-CC-MAIN-2016-50"
    issues = [r for r in iter_records(folder / "corrupt_warcconversion_1.wet.gz") if isinstance(r, ReadIssue)]
    assert [(i.code, i.record_index) for i in issues] == [(reasons.NO_URL, 0), (reasons.NO_URL, 1)]
    pages, _ = _read(folder / "fragment2_no_header.wet.gz")
    assert [p.url for p in pages] == ["http://03online.com/news/11253"]


# --- synthetic files: every encoding and every kind of damage ------------------------------------------

WARCINFO = (
    b"WARC/1.0\r\nWARC-Type: warcinfo\r\nWARC-Date: 2019-04-18T10:00:00Z\r\n"
    b"Content-Type: application/warc-fields\r\nContent-Length: 29\r\n\r\n"
    b"isPartOf: CC-MAIN-2019-18\r\n\r\n\r\n\r\n"
)


def _record(i: int, body: bytes = b"") -> bytes:
    body = body or (f"Page {i} says hello.\r\n\r\nIt has a second paragraph, number {i}.\r\n".encode())
    head = (
        f"WARC/1.0\r\nWARC-Type: conversion\r\nWARC-Target-URI: http://example.com/{i}\r\n"
        f"WARC-Date: 2019-04-18T10:{i % 60:02d}:00Z\r\nWARC-Identified-Content-Language: eng\r\n"
        f"Content-Type: text/plain\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    return head + body + b"\r\n\r\n"


def _records(n: int = 6) -> list:
    return [WARCINFO] + [_record(i) for i in range(n)]


def _per_member(records) -> bytes:
    return b"".join(gzip.compress(r, mtime=0) for r in records)


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_synthetic_file_equals_reference(tmp_path):
    path = _write(tmp_path, "a.wet.gz", _per_member(_records()))
    pages, issues = _read(path)
    assert [_fields(p) for p in pages] == [_fields(p) for p in read_tfds_pages(path)]
    assert [p.text for p in pages][:1] == ["Page 0 says hello.\nIt has a second paragraph, number 0."]
    assert {p.language for p in pages} == {"eng"}
    assert issues == {reasons.NO_URL: 1}


@pytest.mark.parametrize(
    "encode",
    [
        lambda data: data,  # plain .wet
        lambda data: gzip.compress(data, mtime=0),  # single gzip stream
        lambda data: data.replace(b"\r\n", b"\n"),  # LF
        lambda data: gzip.compress(data.replace(b"\r\n", b"\n")),  # LF, gzip
        lambda data: data.replace(b"\r\n", b"\r"),  # old-Mac CR: universal newlines
    ],
    ids=["plain", "single-stream", "lf", "lf-gzip", "cr"],
)
def test_encodings_give_the_same_pages(tmp_path, encode):
    records = _records()
    expected = [_fields(p) for p in _read(_write(tmp_path, "ref.wet.gz", _per_member(records)))[0]]
    path = _write(tmp_path, "x.wet", encode(b"".join(records)))
    pages, issues = _read(path)
    assert [_fields(p) for p in pages] == expected and len(expected) == 6
    assert issues == {reasons.NO_URL: 1}
    assert [_fields(p) for p in pages] == [_fields(p) for p in read_tfds_pages(path)]


def test_tfds_line_quirks_are_kept(tmp_path):
    # A body line that starts with a header key sets that field, lines starting with WARC/Content- are
    # dropped, and a line that strips to WARC/1.0 (here after a no-break space) starts a record.
    body = (
        "First line.\r\n  WARC-Target-URI: http://moved.example/\r\nContent-Foo: gone\r\n"
        "CONTENT-bar\r\n\u00a0WARC/1.0\u2003\r\nWARC-Date: 2020-01-01T00:00:00Z\r\n"
        "WARC-Target-URI: http://split.example/\r\ntail text\u2028more\r\n"
    ).encode()
    path = _write(tmp_path, "q.wet", WARCINFO + _record(1, body) + _record(2))
    pages, _ = _read(path)
    reference = read_tfds_pages(path)
    assert [_fields(p) for p in pages] == [_fields(p) for p in reference]
    assert [(p.url, p.text) for p in pages[:2]] == [
        ("http://moved.example/", "First line."),
        ("http://split.example/", "tail text\u2028more"),
    ]


def test_corrupt_member_in_the_middle_is_skipped(tmp_path):
    records = _records(8)
    members = [gzip.compress(r, mtime=0) for r in records]
    bad = bytearray(members[4])  # record 4 = conversion 3
    bad[len(bad) // 2] ^= 0xFF  # inside the deflate data, past the 10-byte header
    with pytest.raises((zlib.error, OSError, EOFError)):
        gzip.decompress(bytes(bad))
    members[4] = bytes(bad)
    pages, issues = _read(_write(tmp_path, "c.wet.gz", b"".join(members)))
    assert [p.url for p in pages] == [f"http://example.com/{i}" for i in (0, 1, 2, 4, 5, 6, 7)]
    assert issues == {reasons.NO_URL: 1, reasons.READ_CORRUPT_GZIP: 1}


def test_junk_between_members_is_reported_and_skipped(tmp_path):
    records = _records(4)
    data = _per_member(records[:3]) + b"not gzip at all" + _per_member(records[3:]) + b"\0" * 100
    pages, issues = _read(_write(tmp_path, "j.wet.gz", data))  # the trailing zero padding is harmless
    assert [p.url for p in pages] == [f"http://example.com/{i}" for i in range(4)]
    assert issues == {reasons.NO_URL: 1, reasons.READ_CORRUPT_GZIP: 1}


def test_truncated_gzip_keeps_earlier_records(tmp_path):
    records = _records(5)
    whole = _per_member(records)
    last = len(gzip.compress(records[-1], mtime=0))
    pages, issues = _read(_write(tmp_path, "t.wet.gz", whole[: len(whole) - last // 2]))
    assert [p.url for p in pages] == [f"http://example.com/{i}" for i in range(4)]
    assert issues == {reasons.NO_URL: 1, reasons.READ_TRUNCATED_GZIP: 1}
    # single stream: only the record in progress is lost
    single = gzip.compress(b"".join(records), mtime=0)
    pages, issues = _read(_write(tmp_path, "s.wet.gz", single[:-12]))
    assert [p.url for p in pages] == [f"http://example.com/{i}" for i in range(4)]
    assert issues == {reasons.NO_URL: 1, reasons.READ_TRUNCATED_GZIP: 1}


def test_truncated_last_record_in_plain_file(tmp_path):
    data = b"".join(_records(3))
    cut = data[: len(data) - 30]  # inside the last body
    pages, issues = _read(_write(tmp_path, "t.wet", cut))
    assert [p.url for p in pages] == ["http://example.com/0", "http://example.com/1"]
    assert issues == {reasons.NO_URL: 1, reasons.READ_TRUNCATED_RECORD: 1}


def test_bad_utf8_is_repaired_and_counted(tmp_path):
    body = "Caf\u00e9 ".encode() + b"\xff\xfe broken bytes.\r\n"
    pages, issues = _read(_write(tmp_path, "u.wet", WARCINFO + _record(1, body) + _record(2)))
    assert [p.url for p in pages] == ["http://example.com/1", "http://example.com/2"]
    assert pages[0].text == "Caf\u00e9 \ufffd\ufffd broken bytes."
    assert issues == {reasons.NO_URL: 1, reasons.READ_BAD_UTF8: 1}


def test_data_before_first_record_and_second_warcinfo(tmp_path):
    data = b"the tail of some earlier record\r\n" + WARCINFO + _record(1) + WARCINFO + _record(2)
    pages, issues = _read(_write(tmp_path, "m.wet", data))
    assert [p.url for p in pages] == ["http://example.com/1", "http://example.com/2"]
    assert issues == {reasons.READ_BEFORE_FIRST_RECORD: 1, reasons.NO_URL: 1, reasons.READ_EXTRA_WARCINFO: 1}


@pytest.mark.parametrize(
    "data", [b"", b"\r\n \r\n", gzip.compress(b"")], ids=["empty", "blank", "empty-gzip"]
)
def test_empty_file(tmp_path, data):
    pages, issues = _read(_write(tmp_path, "e.wet.gz", data))
    assert pages == [] and issues == {reasons.READ_EMPTY_FILE: 1}


def test_missing_file_and_unreadable_object(tmp_path):
    assert _read(tmp_path / "nope.wet.gz") == ([], {reasons.READ_UNREADABLE: 1})
    assert _read(42) == ([], {reasons.READ_UNREADABLE: 1})


class _Unseekable(io.RawIOBase):
    """A read-only stream like a remote object's, optionally failing after `fail_after` bytes."""

    def __init__(self, data: bytes, fail_after=None):
        self._data, self._pos, self._fail_after = data, 0, fail_after

    def readable(self):
        return True

    def read(self, n=-1):
        if self._fail_after is not None and self._pos >= self._fail_after:
            raise OSError("connection reset")
        n = len(self._data) - self._pos if n < 0 else min(n, 1000)
        chunk = self._data[self._pos : self._pos + n]
        self._pos += len(chunk)
        return chunk


def test_unseekable_file_object_and_read_failure(tmp_path):
    data = _per_member(_records(40))
    pages, issues = _read(_Unseekable(data), name="remote.wet.gz")
    assert len(pages) == 40 and issues == {reasons.NO_URL: 1}
    items = list(iter_records(_Unseekable(data, fail_after=len(data) // 2), name="remote.wet.gz"))
    pages = [r for r in items if isinstance(r, Page)]
    failures = [r for r in items if isinstance(r, ReadIssue) and r.code == reasons.READ_UNREADABLE]
    assert 10 < len(pages) < 40 and [p.url for p in pages] == [
        f"http://example.com/{i}" for i in range(len(pages))
    ]
    assert (
        len(failures) == 1
        and failures[0].source == "remote.wet.gz"
        and "connection reset" in failures[0].detail
    )


# --- WARC responses ------------------------------------------------------------------------------------
# Response counts: `zcat f | grep -c '^WARC-Type: response'` gives 16 (resiliparse), 22 and 15 (dolma).


def test_warc_responses_resiliparse(shared_data):
    items = list(
        iter_warc_responses(shared_data / "warc" / "resiliparse-CC-MAIN-2020-34" / "warcfile.warc.gz")
    )
    assert all(isinstance(r, WarcResponse) for r in items) and len(items) == 16
    assert all(r.url.startswith("http") and r.timestamp.startswith("2020-08-") for r in items)
    assert all(isinstance(r.status, int) and 100 <= r.status < 600 for r in items)
    assert sum(r.status == 200 for r in items) >= 8
    assert any(b"<html" in r.body[:2000].lower() for r in items)


def test_warc_responses_wget_urls_unwrapped(shared_data):
    for name, expected in (("sample-0000.warc.gz", 22), ("sample-0001.warc.gz", 15)):
        items = list(iter_warc_responses(shared_data / "warc" / "dolma-wget" / name))
        assert len(items) == expected and all(isinstance(r, WarcResponse) for r in items)
        assert all(r.url.startswith("http") and not r.url.endswith(">") for r in items)
        assert all(any(k.lower() == "content-type" for k, _ in r.headers) for r in items if r.status == 200)


def test_warc_truncated_and_missing(shared_data, tmp_path):
    data = gzip.decompress((shared_data / "warc" / "whirlwind" / "whirlwind.warc.gz").read_bytes())
    at = data.index(b"WARC-Type: response")
    cut = _write(tmp_path, "cut.warc", data[: at + 2000])  # inside the response body
    items = list(iter_warc_responses(cut))
    assert [r.code for r in items] == [reasons.READ_TRUNCATED_RECORD]
    assert [type(r) for r in iter_warc_responses(_write(tmp_path, "w.warc", data))] == [WarcResponse]
    assert [r.code for r in iter_warc_responses(tmp_path / "absent.warc.gz")] == [reasons.READ_UNREADABLE]
