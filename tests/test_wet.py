"""The WET reader: equal to TFDS `split_wet_file` on valid files, counted issues on damaged ones."""

from __future__ import annotations

import bz2
import collections
import gzip
import io
import lzma
import random
import zlib
from pathlib import Path

import pytest

from c4clean.cleaning import reasons
from c4clean.cleaning.page import Page
from c4clean.cleaning.tfds_reference import load_c4_utils, read_tfds_pages
from c4clean.cleaning.wet import ReadIssue, iter_records


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


# TFDS's hand-made cc_1.warc.wet ends in a record holding 209 of the 19621 bytes its Content-Length
# declares: a cut record by the reader's rule (no tolerance), so it is the one page TFDS has and the
# reader does not.
_CUT_LAST_RECORD = {"cc_1.warc.wet": "body has 209 of 19621 bytes"}


def test_pages_equal_reference_on_valid_files(shared_data):
    for path in _valid_files(shared_data):
        items = list(iter_records(path))
        pages = [r for r in items if isinstance(r, Page)]
        reference = read_tfds_pages(path)
        if path.name in _CUT_LAST_RECORD:
            cut = [r for r in items if isinstance(r, ReadIssue) and r.code == reasons.READ_TRUNCATED_RECORD]
            assert [r.detail for r in cut] == [_CUT_LAST_RECORD[path.name]]
            reference = reference[:-1]
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
    # The reference yields the 43 complete conversion records, then raises at the cut gzip member,
    # inside the 44th conversion (1298 of its 11598 bytes decompress).
    path = next((shared_data / "wet" / "wet-extractor-CC-MAIN-2017-30").glob("*.wet.gz"))
    pages, issues = _read(path)
    assert [_fields(p) for p in pages] == [_fields(p) for p in _reference_pages(path)]
    assert len(pages) == 43
    assert issues == {reasons.NO_URL: 1, reasons.READ_TRUNCATED_GZIP: 1, reasons.READ_TRUNCATED_RECORD: 1}


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
#     17th member (gzip -t: "unexpected end of file"; body 3479 of 7758: a truncated record) -> 15 good
#   corrupt_starts_with_conversion: 5 conversions + warcinfo (2nd record)   -> 5
#   corrupt_two_warcinfo: warcinfo, 2 conversions, warcinfo, 3 conversions  -> 5
#   corrupt_warcconversion_1: warcinfo + 5 conversions, the 1st with no WARC-Target-URI -> 4
#   corrupt_warcconversion_2: warcinfo + 1 conversion with no WARC-Target-URI -> 0
#   corrupt_warcinfo_1: warcinfo without WARC-Filename + 5 conversions      -> 5
#   file_and_wet_headers_only: warcinfo (LF endings, 253 of 259 bytes, followed by a record: a length
#     mismatch) + a conversion that ends after its `Content-Length: 2287` line (truncated) -> 0
#   file_headers_only: warcinfo only (LF endings, 254 of 259 bytes, last: truncated) -> 0
#   fragment1_incomplete_last: warcinfo + 2 conversions, the last cut mid-line (9186 of 12694) -> 1
#   fragment1_asthma_incomplete_last: as above, but the edited 1st conversion has 2243 of its 2287
#     bytes (followed by a record: kept with a length mismatch); the last is cut (9187 of 12694) -> 1
#   fragment2_no_header: 7429 bytes before the first WARC/1.0, then 2 conversions, the last cut
#     (3124 of 9359)                                                           -> 1
#   fragment3: warcinfo + 5 complete conversions                               -> 5
JEFF_EXPECTED = {
    "appended_zip_fragment_unexpected_eof.wet.gz": (
        15,
        {reasons.NO_URL: 1, reasons.READ_TRUNCATED_GZIP: 1, reasons.READ_TRUNCATED_RECORD: 1},
    ),
    "corrupt_starts_with_conversion.wet.gz": (5, {reasons.NO_URL: 1}),
    "corrupt_two_warcinfo.wet.gz": (5, {reasons.NO_URL: 1, reasons.READ_EXTRA_WARCINFO: 1}),
    "corrupt_warcconversion_1.wet.gz": (4, {reasons.NO_URL: 2}),
    "corrupt_warcconversion_2.wet.gz": (0, {reasons.NO_URL: 2}),
    "corrupt_warcinfo_1.wet.gz": (5, {reasons.NO_URL: 1}),
    "file_and_wet_headers_only.wet.gz": (
        0,
        {reasons.READ_LENGTH_MISMATCH: 1, reasons.NO_URL: 1, reasons.READ_TRUNCATED_RECORD: 1},
    ),
    "file_headers_only.wet.gz": (0, {reasons.READ_TRUNCATED_RECORD: 1}),
    "fragment1_incomplete_last.wet.gz": (1, {reasons.NO_URL: 1, reasons.READ_TRUNCATED_RECORD: 1}),
    "fragment1_asthma_incomplete_last.wet.gz": (
        1,
        {reasons.NO_URL: 1, reasons.READ_LENGTH_MISMATCH: 1, reasons.READ_TRUNCATED_RECORD: 1},
    ),
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


def _warcinfo(newline: bytes = b"\r\n") -> bytes:
    body = b"isPartOf: CC-MAIN-2019-18" + newline
    head = [
        b"WARC/1.0",
        b"WARC-Type: warcinfo",
        b"WARC-Date: 2019-04-18T10:00:00Z",
        b"Content-Type: application/warc-fields",
        b"Content-Length: %d" % len(body),
    ]
    return newline.join(head) + newline * 2 + body + newline * 2


WARCINFO = _warcinfo()


def _record(i: int, body: bytes = b"", newline: bytes = b"\r\n") -> bytes:
    """A conversion record whose Content-Length is its body's, with the given line endings."""
    body = body or (
        f"Page {i} says hello.{{nl}}{{nl}}It has a second paragraph, number {i}.{{nl}}".format(nl="\n")
        .encode()
        .replace(b"\n", newline)
    )
    head = [
        "WARC/1.0",
        "WARC-Type: conversion",
        f"WARC-Target-URI: http://example.com/{i}",
        f"WARC-Date: 2019-04-18T10:{i % 60:02d}:00Z",
        "WARC-Identified-Content-Language: eng",
        "Content-Type: text/plain",
        f"Content-Length: {len(body)}",
    ]
    return newline.join(h.encode() for h in head) + newline * 2 + body + newline * 2


def _records(n: int = 6, newline: bytes = b"\r\n") -> list:
    return [_warcinfo(newline)] + [_record(i, newline=newline) for i in range(n)]


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
    "newline, compress",
    [
        (b"\r\n", lambda data: data),  # plain .wet
        (b"\r\n", lambda data: gzip.compress(data, mtime=0)),  # single gzip stream
        (b"\n", lambda data: data),  # LF
        (b"\n", lambda data: gzip.compress(data, mtime=0)),  # LF, gzip
        (b"\r", lambda data: data),  # old-Mac CR: universal newlines
    ],
    ids=["plain", "single-stream", "lf", "lf-gzip", "cr"],
)
def test_encodings_give_the_same_pages(tmp_path, newline, compress):
    expected = [_fields(p) for p in _read(_write(tmp_path, "ref.wet.gz", _per_member(_records())))[0]]
    path = _write(tmp_path, "x.wet", compress(b"".join(_records(newline=newline))))
    pages, issues = _read(path)
    assert [_fields(p)[:4] for p in pages] == [f[:4] for f in expected] and len(expected) == 6
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
    lost = {reasons.NO_URL: 1, reasons.READ_TRUNCATED_GZIP: 1, reasons.READ_TRUNCATED_RECORD: 1}
    pages, issues = _read(_write(tmp_path, "t.wet.gz", whole[: len(whole) - last // 2]))
    assert [p.url for p in pages] == [f"http://example.com/{i}" for i in range(4)]
    assert issues == lost
    # single stream: only the record in progress is lost
    single = gzip.compress(b"".join(records), mtime=0)
    pages, issues = _read(_write(tmp_path, "s.wet.gz", single[:-12]))
    assert [p.url for p in pages] == [f"http://example.com/{i}" for i in range(4)]
    assert issues == lost


@pytest.mark.parametrize("members", ["single", "per-record"])
@pytest.mark.parametrize("cut", [1, 4, 8])
def test_cut_gzip_trailer_keeps_every_record(tmp_path, members, cut):
    # `zcat f.wet.gz | gzip -c | head -c -8`: the data decompressed whole, only its CRC is unchecked
    records = _records(5)
    whole = gzip.compress(b"".join(records), mtime=0) if members == "single" else _per_member(records)
    pages, issues = _read(_write(tmp_path, "t.wet.gz", whole[:-cut]))
    assert [p.url for p in pages] == [f"http://example.com/{i}" for i in range(5)]
    assert issues == {reasons.NO_URL: 1, reasons.READ_GZIP_TRAILER_CUT: 1}


def test_cut_gzip_trailer_with_wrong_crc_is_corrupt(tmp_path):
    data = bytearray(gzip.compress(b"".join(_records(3)), mtime=0)[:-4])
    data[-1] ^= 0xFF  # the CRC that is there disagrees with the data
    _, issues = _read(_write(tmp_path, "c.wet.gz", bytes(data)))
    assert issues[reasons.READ_CORRUPT_GZIP] == 1 and reasons.READ_GZIP_TRAILER_CUT not in issues


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


@pytest.mark.parametrize("cut", [1, 5, 12, 20, 45])
@pytest.mark.parametrize("newline", [b"\r\n", b"\n"])
def test_last_record_cut_by_a_few_bytes_is_truncated(tmp_path, cut, newline):
    # Common Crawl bodies use bare LF: no byte of tolerance per line, so a cut body is never a page.
    records = [_warcinfo(newline)] + [_record(i, newline=newline) for i in range(3)]
    data = b"".join(records)
    body_end = len(data) - 2 * len(newline)  # the last record's body ends before its blank lines
    items = list(iter_records(_write(tmp_path, "t.wet", data[: body_end - cut])))
    pages = [r for r in items if isinstance(r, Page)]
    issues = [(r.code, r.record_index) for r in items if isinstance(r, ReadIssue)]
    assert [p.url for p in pages] == ["http://example.com/0", "http://example.com/1"]
    assert issues == [(reasons.NO_URL, 0), (reasons.READ_TRUNCATED_RECORD, 3)]


@pytest.mark.parametrize("keep", [1, 3, 7, 8])
def test_file_cut_inside_the_next_delimiter_line(tmp_path, keep):
    # "W", "WAR", "WARC/1." are not text of the previous page; "WARC/1.0" starts a record whose
    # headers never end. Either way the previous page is whole and the next record is truncated.
    records = _records(2)
    data = b"".join(records) + _record(9)[:keep]
    pages, issues = _read(_write(tmp_path, "d.wet", data))
    assert [_fields(p) for p in pages] == [
        _fields(p) for p in _read(_write(tmp_path, "w.wet", b"".join(records)))[0]
    ]
    assert issues == {reasons.NO_URL: 1, reasons.READ_TRUNCATED_RECORD: 1}


def _random_bytes(n: int, seed: int = 7) -> bytes:
    return random.Random(seed).randbytes(n)


@pytest.mark.parametrize(
    "data",
    [
        lambda: bz2.compress(b"".join(_records(3))),
        lambda: b"\x28\xb5\x2f\xfd" + _random_bytes(3000),  # zstd frame magic
        lambda: lzma.compress(b"".join(_records(3))),
        lambda: _random_bytes(100_000),
        lambda: gzip.compress(_random_bytes(5000), mtime=0),  # gzip of non-WET data
        lambda: b"just some text\nwith lines\nbut no record\n",
    ],
    ids=["bzip2", "zstd", "xz", "random", "gzip-of-random", "text"],
)
def test_file_that_is_not_wet(tmp_path, data):
    items = list(iter_records(_write(tmp_path, "x.wet.gz", data())))
    assert [(type(r), r.code) for r in items] == [(ReadIssue, reasons.READ_NOT_WET)]
    assert items[0].record_index is None and items[0].detail


def test_not_wet_stops_reading_binary_data(tmp_path):
    reads = []

    class Counting(io.BytesIO):
        def read(self, n=-1):
            reads.append(n)
            return super().read(n)

    items = list(iter_records(Counting(_random_bytes(10_000_000)), name="big.wet.gz"))
    assert [r.code for r in items] == [reasons.READ_NOT_WET]
    assert len(reads) <= 2  # the first 4 KiB decide; 10 MB of random bytes are not read


def test_huge_record_is_read_whole(tmp_path):
    # One 8 MB page among small ones, plain and single-stream gzip (the linear-time path).
    line = b"A line of text that is repeated to make one very large page.\n"
    big = _record(1, line * (8_000_000 // len(line)))
    data = WARCINFO + _record(0) + big + _record(2)
    for name, payload in (("h.wet", data), ("h.wet.gz", gzip.compress(data, mtime=0))):
        pages, issues = _read(_write(tmp_path, name, payload))
        assert [p.url for p in pages] == [f"http://example.com/{i}" for i in range(3)], name
        assert len(pages[1].text) == len(line.strip() + b"\n") * (8_000_000 // len(line)) - 1
        assert issues == {reasons.NO_URL: 1}


def test_each_damage_is_one_issue_and_reading_recovers_after_it(tmp_path):
    # A corrupt member, good members, junk, a good member: two issues, every intact record kept.
    records = _records(8)
    members = [gzip.compress(r, mtime=0) for r in records]
    bad = bytearray(members[2])
    bad[len(bad) // 2 : len(bad) // 2 + 8] = b"\x1f\x8b\x08\x00\xff\xff\xff\xff"  # a false header too
    members[2] = bytes(bad)
    data = b"".join(members[:6]) + b"junk between members" + b"".join(members[6:])
    path = _write(tmp_path, "d.wet.gz", data)
    pages, issues = _read(path)
    assert [p.url for p in pages] == [f"http://example.com/{i}" for i in (0, 2, 3, 4, 5, 6, 7)]
    assert issues == {reasons.NO_URL: 1, reasons.READ_CORRUPT_GZIP: 2}
    details = [r.detail for r in iter_records(path) if isinstance(r, ReadIssue) and r.code != reasons.NO_URL]
    junk_at = len(b"".join(members[:6]))
    assert details[0].startswith(f"gzip member at offset {len(members[0]) + len(members[1])}:")
    assert details[1] == f"20 bytes of non-gzip data at offset {junk_at}"
