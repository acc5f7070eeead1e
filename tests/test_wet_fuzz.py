"""Fuzzing the WET reader: a fixed-seed generator of mutated WET files, plain and gzip.

For every file: no exception and no hang (a per-file time limit). For every truncation: each record
whose body lies wholly before the cut comes back as the same page as from the intact file, and the
record the cut falls into never comes back as a (shorter) page.
"""

from __future__ import annotations

import contextlib
import gzip
import random
import signal
import zlib

import pytest

from c4clean.cleaning.page import Page
from c4clean.cleaning.wet import ReadIssue, iter_records

SEED = 20260415
FILES = 300
TIME_LIMIT_S = 5.0  # CPU seconds per file (a busy machine does not count); a few KB read in milliseconds
_WORDS = ["alpha", "beta", "gamma", "delta", "caf\u00e9", "na\u00efve", "WARC", "Content-", "end."]


def _record(rng: random.Random, i: int) -> tuple[bytes, int]:
    """A conversion record as Common Crawl writes it (CRLF headers, LF body); also its body's end."""
    words = [[rng.choice(_WORDS) for _ in range(rng.randint(1, 12))] for _ in range(rng.randint(1, 15))]
    lines = [f"{i}: " + " ".join(w) for w in words]  # a page: no line starts like a header
    body = "\n".join(lines).encode() + b"\n"
    head = (
        f"WARC/1.0\r\nWARC-Type: conversion\r\nWARC-Target-URI: http://fuzz.example/{i}\r\n"
        f"WARC-Date: 2019-04-18T10:{i % 60:02d}:00Z\r\nContent-Type: text/plain\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    return head + body + b"\r\n\r\n", len(head) + len(body)


def _wet(rng: random.Random) -> tuple[list[bytes], list[int]]:
    """Records of one file (a warcinfo first) and where each one's body ends in the joined file."""
    info_body = b"isPartOf: CC-MAIN-2019-18\r\n"
    info = (
        (
            b"WARC/1.0\r\nWARC-Type: warcinfo\r\nWARC-Date: 2019-04-18T10:00:00Z\r\n"
            b"Content-Length: %d\r\n\r\n" % len(info_body)
        )
        + info_body
        + b"\r\n\r\n"
    )
    records, ends, offset = [info], [len(info) - 4], len(info)
    for i in range(rng.randint(1, 8)):
        data, body_end = _record(rng, i)
        records.append(data)
        ends.append(offset + body_end)
        offset += len(data)
    return records, ends


def _gunzip_prefix(data: bytes) -> bytes:
    """What a truncated (multi-member) gzip stream decompresses to before its cut."""
    out = []
    while data[:2] == b"\x1f\x8b":
        member = zlib.decompressobj(31)
        try:
            out.append(member.decompress(data))
        except zlib.error:
            break
        if not member.eof:
            break
        data = member.unused_data
    return b"".join(out)


@contextlib.contextmanager
def _time_limit(seconds: float):
    def hang(signum, frame):
        raise TimeoutError(f"reading took over {seconds} s")

    previous = signal.signal(signal.SIGPROF, hang)
    signal.setitimer(signal.ITIMER_PROF, seconds)  # CPU time of this process
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, previous)


def _read(data: bytes) -> list:
    import io

    with _time_limit(TIME_LIMIT_S):
        items = list(iter_records(io.BytesIO(data), name="fuzz.wet.gz"))
    assert all(isinstance(r, (Page, ReadIssue)) for r in items)
    return items


def _pages(items) -> dict:
    return {
        p.url: (p.text, p.timestamp, p.content_type, p.content_length) for p in items if isinstance(p, Page)
    }


# --- mutations of the decompressed bytes -------------------------------------------------------------


def _flip(rng, data):
    data = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    return bytes(data)


def _splice(rng, data):
    a, b = sorted(rng.randrange(len(data)) for _ in range(2))
    at = rng.randrange(len(data))
    return data[:at] + data[a:b] + data[at:]


def _content_length(rng, data):
    value = rng.choice([b"", b"-5", b"abc", b"99999999999", b"0", b"1e3", b" 12 ", b"\xff"])
    start = data.find(b"Content-Length:", rng.randrange(len(data)))
    if start < 0:
        return data
    end = data.find(b"\r\n", start)
    if rng.random() < 0.3:  # the whole header line goes
        return data[:start] + data[end + 2 :]
    return data[: start + 15] + value + data[end:]


def _garbage(rng, data):
    at = rng.randrange(len(data))
    junk = rng.choice([rng.randbytes(rng.randint(1, 300)), b"WARC/1.0\r\n", b"\x00" * 50, b"\r\n" * 9])
    return data[:at] + junk + data[at:]


MUTATIONS = [_flip, _splice, _content_length, _garbage]


def _files():
    """(case id, bytes, (records, body ends, form) for truncations or None)."""
    rng = random.Random(SEED)
    for n in range(FILES):
        records, ends = _wet(rng)
        plain = b"".join(records)
        form = rng.choice(["plain", "single", "members"])
        kind = rng.choice(["truncate", "truncate", "mutate", "mutate-compressed", "mutate-both"])
        if kind in ("mutate", "mutate-both"):
            plain = rng.choice(MUTATIONS)(rng, plain)
            records = [plain]  # member boundaries are lost with the mutation
        if form == "plain":
            data = plain
        elif form == "single":
            data = gzip.compress(plain, compresslevel=rng.choice([1, 6, 9]), mtime=0)
        else:
            data = b"".join(gzip.compress(r, mtime=0) for r in records)
        if kind in ("mutate-compressed", "mutate-both"):
            data = rng.choice([_flip, _splice, _garbage])(rng, data)
        truncation = None
        if kind == "truncate":
            cut = rng.randrange(1, len(data))
            data, truncation = data[:cut], (plain, ends, form)
        yield f"{n}-{form}-{kind}", data, truncation


def test_fuzzed_files_never_raise_hang_or_lose_complete_records():
    truncations = 0
    for case, data, truncation in _files():
        items = _read(data)
        if truncation is None:
            continue
        truncations += 1
        plain, ends, form = truncation
        prefix = data if form == "plain" else _gunzip_prefix(data)
        whole = _pages(_read(plain))
        got = _pages(items)
        for index, end in enumerate(ends[1:]):  # ends[0] is the warcinfo record
            url = f"http://fuzz.example/{index}"
            if end <= len(prefix):
                assert got.get(url) == whole[url], (case, index, len(prefix), end)
            else:
                assert url not in got, (case, index, "a cut record came back as a page")
    assert truncations > 100


@pytest.mark.parametrize("form", ["plain", "gzip"])
def test_every_cut_of_one_file(form):
    # Exhaustively, every cut position of one small file: the same property, no sampling.
    records, ends = _wet(random.Random(SEED + 1))
    plain = b"".join(records)
    data = plain if form == "plain" else b"".join(gzip.compress(r, mtime=0) for r in records)
    whole = _pages(_read(plain))
    step = max(1, len(data) // 400)
    for cut in range(0, len(data), step):
        prefix = data[:cut] if form == "plain" else _gunzip_prefix(data[:cut])
        got = _pages(_read(data[:cut]))
        complete = {f"http://fuzz.example/{i}" for i, end in enumerate(ends[1:]) if end <= len(prefix)}
        assert set(got) == complete, cut
        assert all(got[url] == whole[url] for url in complete), cut


def _one_record(body: bytes) -> bytes:
    head = (
        "WARC/1.0\r\nWARC-Type: conversion\r\nWARC-Target-URI: http://fuzz.example/0\r\n"
        f"WARC-Date: 2019-04-18T10:00:00Z\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    return head + body + b"\r\n\r\n"


@pytest.mark.parametrize(
    "body",
    [
        b"xWARC/1.0" * 300_000,  # near-delimiters on one long line
        b"WARC/1.0" + b" " * 8_000_000 + b"x\n",  # a delimiter candidate whose line end is far away
        (b" " * 40 + b"WARC/1.0x\n") * 50_000,  # indented near-delimiters
        b"word " * 2_000_000,  # one 10 MB line
    ],
    ids=["near-delimiters", "far-line-end", "indented", "long-line"],
)
def test_pathological_records_read_in_linear_time(body):
    # Rescanning the buffer per read chunk (16 KB of compressed input) would take minutes here.
    items = _read(_one_record(body))
    assert len(items) >= 1
