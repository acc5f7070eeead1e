"""Streaming reader for Common Crawl WET files (and the `response` records of WARC files).

`iter_records` gives the pages TFDS c4 v3.1.0 `split_wet_file` gives, with the same line handling
(universal newlines, every line stripped, blank lines dropped, a line equal to `WARC/1.0` starts a
record, header keys recognised on every line, lines starting with WARC / CONTENT- / Content- left out
of the text), plus `language` from `WARC-Identified-Content-Language`. Where TFDS crashes or silently
mis-reads (damaged gzip, truncated or headless records, bad UTF-8), this reader yields a `ReadIssue`
with a code from `reasons.py` and goes on with the next complete record.

Memory is one record plus one read buffer: the decompressed stream is cut at `WARC/1.0` lines with
`bytes.find`, and each record is decoded and split with whole-string operations.

Choices that TFDS leaves open, documented here once:
* Bad UTF-8 in a record: the record is decoded with U+FFFD replacement and kept, and a
  `READ_BAD_UTF8` issue says so (TFDS would abort the whole file; dropping would lose the page).
* The first warcinfo record counts as `NO_URL`, exactly as in TFDS; any later one is `READ_EXTRA_WARCINFO`.
* Truncation: every record is checked against its WARC `Content-Length` (a body rewritten from CRLF
  to LF is allowed one byte per line). A short last record is `READ_TRUNCATED_RECORD` and dropped, unless
  an earlier record of the file was short too: then the file's lengths are not to be trusted (TFDS's
  hand-made test files, edited files) and every short record is kept, as TFDS keeps it, with a
  `READ_LENGTH_MISMATCH` issue. A last record whose WARC headers never end is always truncated.
* Gzip damage: output of the failed gzip member is dropped, the record it interrupted is finished from
  the members that decompressed cleanly (or dropped), and reading resumes at the next gzip header found
  in the remaining bytes. Common Crawl writes one member per record, so there exactly the damaged record
  is lost. In a single-stream gzip file nothing after the damage can be recovered, and damage that only
  the final CRC check catches is reported after the pages it touched were yielded.
"""

from __future__ import annotations

import dataclasses
import os
import zlib
from typing import IO, Iterator, Optional, Union

from c4clean.cleaning import reasons
from c4clean.cleaning.page import Page

_READ_SIZE = 1 << 14  # compressed bytes per read: small, so that zlib copies little and a failing
# decompress call (whose output zlib discards) takes little good data with it
_DELIMITER = b"WARC/1.0"
_METADATA_PREFIXES = ("WARC", "CONTENT-", "Content-")
_URL_KEY = "WARC-Target-URI:"
_DATE_KEY = "WARC-Date:"
_CONTENT_TYPE_KEY = "Content-Type:"
_CONTENT_LENGTH_KEY = "Content-Length:"
_LANGUAGE_KEY = "WARC-Identified-Content-Language:"
_TYPE_KEY = "WARC-Type:"


@dataclasses.dataclass(frozen=True)
class ReadIssue:
    """Something the reader skipped or repaired. `record_index` is the 0-based position of the record
    in the file (counting `WARC/1.0` lines), or None for a file-level issue."""

    code: str
    source: str
    record_index: Optional[int]
    detail: str = ""


@dataclasses.dataclass(frozen=True)
class WarcResponse:
    """A WARC `response` record, as read (no HTML extraction)."""

    url: str  # WARC-Target-URI, without the <...> that wget writes around it
    timestamp: str  # WARC-Date
    status: Optional[int]  # HTTP status code, None if the status line is unreadable
    headers: tuple  # HTTP headers as ((name, value), ...), in order
    body: bytes  # HTTP payload (still Content-Encoded / chunked as the server sent it)
    record_id: str = ""


Source = Union[str, "os.PathLike[str]", IO[bytes]]


class _Break:
    """The byte stream was interrupted: what follows (if anything) does not continue what came before."""

    __slots__ = ("code", "detail")

    def __init__(self, code: str, detail: str):
        self.code, self.detail = code, detail


_MEMBER_END = object()  # a gzip member ended cleanly: everything before it is intact


# --- bytes: opening, reading, gunzipping -------------------------------------------------------------


def _raw_chunks(f) -> Iterator[Union[bytes, _Break]]:
    while True:
        try:
            chunk = f.read(_READ_SIZE)
        except Exception as e:  # any I/O layer (local, Beam FileSystems, ...); reported, not raised
            yield _Break(reasons.READ_UNREADABLE, f"read failed: {type(e).__name__}: {e}")
            return
        if not chunk:
            return
        if not isinstance(chunk, bytes):
            chunk = bytes(chunk)
        yield chunk


def _is_member_start(buf: bytes, i: int) -> bool:
    # magic, deflate, no reserved flag bits: a stray 1f 8b inside compressed data rarely passes
    return buf[i : i + 3] == b"\x1f\x8b\x08" and len(buf) > i + 3 and not buf[i + 3] & 0xE0


def _find_member(buf: bytes, start: int) -> int:
    i = buf.find(b"\x1f\x8b\x08", start)
    while i >= 0 and len(buf) > i + 3 and buf[i + 3] & 0xE0:
        i = buf.find(b"\x1f\x8b\x08", i + 1)
    return i


def _gunzip(raw: Iterator[Union[bytes, _Break]], first: bytes) -> Iterator[object]:
    """Decompressed bytes of a (multi-member) gzip stream, with `_MEMBER_END` after each intact member
    and a `_Break` for each damaged stretch, after which decompression resumes at the next member."""
    buf, base = first, 0  # unread compressed bytes, and the file offset of buf[0]
    member = None  # decompressobj of the member being read
    member_start = 0
    fed: list = []  # (offset, bytes) of the last inputs of this member, for rescanning
    resyncing = False  # after damage, skipped bytes are part of that one issue
    exhausted = False

    def pull() -> bool:
        nonlocal buf, exhausted
        for chunk in raw:
            if isinstance(chunk, _Break):
                exhausted = True
                pending_break.append(chunk)
                return False
            buf += chunk
            return True
        exhausted = True
        return False

    pending_break: list = []
    while True:
        if member is None:
            while len(buf) < 4 and not exhausted and pull():
                pass
            if not buf:
                break
            if not _is_member_start(buf, 0):
                skipped, junk = 0, False  # junk: anything but zero padding
                k = _find_member(buf, 1)
                while k < 0 and not exhausted:
                    keep = buf[-3:]
                    junk = junk or bool(buf[:-3].strip(b"\x00"))
                    skipped += len(buf) - len(keep)
                    base += len(buf) - len(keep)
                    buf = keep
                    pull()
                    k = _find_member(buf, 0)
                junk = junk or bool(buf[: k if k >= 0 else len(buf)].strip(b"\x00"))
                if junk and not resyncing:
                    gone = skipped + (k if k >= 0 else len(buf))
                    yield _Break(
                        reasons.READ_CORRUPT_GZIP, f"{gone} bytes of non-gzip data at offset {base - skipped}"
                    )
                if k < 0:
                    break
                base += k
                buf = buf[k:]
            member = zlib.decompressobj(31)
            member_start, fed, resyncing = base, [], False
        if not buf and not pull():
            if pending_break:
                break
            yield _Break(
                reasons.READ_TRUNCATED_GZIP, f"stream ends inside the gzip member at offset {member_start}"
            )
            member = None
            break
        fed = fed[-1:] + [(base, buf)]
        try:
            out = member.decompress(buf)
        except zlib.error as e:
            yield _Break(reasons.READ_CORRUPT_GZIP, f"gzip member at offset {member_start}: {e}")
            # rescan from just after the failed member's header, as far back as we kept its input
            kept_base = fed[0][0]
            joined = b"".join(data for _, data in fed)
            skip = max(member_start + 1, kept_base) - kept_base
            buf, base = joined[skip:], kept_base + skip
            member, resyncing = None, True
            continue
        base += len(buf)
        buf = b""
        if out:
            yield out
        if member.eof:
            buf = member.unused_data
            base -= len(buf)
            member = None
            yield _MEMBER_END
    if pending_break:
        if member is not None:  # the read failure cut a member short
            pending_break[0].detail += f" (inside the gzip member at offset {member_start})"
        yield pending_break[0]


def _open(source, name):
    """(file object, label, owned) or a ReadIssue."""
    if isinstance(source, (str, os.PathLike)):
        label = name or os.fspath(source)
        try:
            return open(source, "rb"), label, True
        except OSError as e:
            return ReadIssue(reasons.READ_UNREADABLE, label, None, f"{type(e).__name__}: {e}"), label, False
    label = name or str(getattr(source, "name", "") or repr(source))
    if not callable(getattr(source, "read", None)):
        why = f"not a path or binary file: {type(source).__name__}"
        return ReadIssue(reasons.READ_UNREADABLE, label, None, why), label, False
    return source, label, False


def _byte_events(f) -> Iterator[object]:
    """Decompressed bytes (plain or gzip, detected by magic number), `_MEMBER_END`s and `_Break`s."""
    raw = _raw_chunks(f)
    first = b""
    for chunk in raw:
        if isinstance(chunk, _Break):
            yield chunk
            return
        first += chunk
        if len(first) >= 2:
            break
    if first[:2] == b"\x1f\x8b":
        yield from _gunzip(raw, first)
    else:
        if first:
            yield first
        yield from raw


def _events(source, name):
    opened, label, owned = _open(source, name)
    if isinstance(opened, ReadIssue):
        return label, None, opened
    return label, opened if owned else None, _byte_events(opened)


# --- WET records ------------------------------------------------------------------------------------


def _delimiter_line(buf: bytes, j: int, start: int, final: bool) -> tuple:
    """For a `WARC/1.0` found at j: (line start, line end) if its line strips to `WARC/1.0` (TFDS's test),
    (-1, next search position) if not, or None if the line end is not in the buffer yet."""
    after = j + 8
    if after >= len(buf) and not final:
        return None
    ls = max(buf.rfind(b"\n", start, j), buf.rfind(b"\r", start, j)) + 1 or start
    ls = max(ls, start)
    if ls == j and (after == len(buf) or buf[after] in b"\r\n"):
        return j, after  # the usual exact line
    nl = buf.find(b"\n", after)
    cr = buf.find(b"\r", after, nl if nl >= 0 else len(buf))
    ends = [e for e in (nl, cr) if e >= 0]
    if not ends and not final:
        return None
    le = min(ends) if ends else len(buf)
    if buf[ls:le].decode("utf-8", "replace").strip() == "WARC/1.0":
        return ls, le
    return -1, after


def _short_body(block: bytes) -> Optional[str]:
    """Why a record's bytes hold less than its WARC Content-Length, or None if they hold it all (or the
    length is absent or unreadable, so cannot be checked). A body rewritten from CRLF to LF (or CR) is
    allowed one byte per line."""
    ends = [(at, len(sep)) for sep in (b"\r\n\r\n", b"\n\n", b"\r\r") for at in (block.find(sep),) if at >= 0]
    if not ends:
        return "the WARC headers never end"
    head_end, sep_len = min(ends)
    body_start = head_end + sep_len
    at = block.find(b"Content-Length:", 0, head_end)
    if at < 0:
        return None
    try:
        line_end = min(i for i in (block.find(b"\r", at), block.find(b"\n", at), len(block)) if i >= 0)
        length = int(block[at + 15 : line_end])
    except ValueError:
        return None
    body = len(block) - body_start
    crs, lfs = block.count(b"\r", body_start), block.count(b"\n", body_start)
    if body >= length or ((not crs or not lfs) and body + crs + lfs >= length):
        return None
    return f"body has {body} of {length} bytes"


class _WetParser:
    """TFDS `split_wet_file` line handling, applied to one record's bytes at a time."""

    def __init__(self, label: str):
        self.label = label
        self.warcinfos = 0
        # Content-Length is trusted to reveal a truncated last record only while every earlier record
        # of the file honoured it; hand-made files (TFDS's fakes) and edited ones do not.
        self.lengths_trusted = True

    def record(self, block: bytes, index: int, last: bool) -> Iterator[Union[Page, ReadIssue]]:
        label = self.label
        short = _short_body(block)
        if short is not None:
            if last and (self.lengths_trusted or short.startswith("the WARC headers")):
                yield ReadIssue(reasons.READ_TRUNCATED_RECORD, label, index, short)
                return
            self.lengths_trusted = False
            yield ReadIssue(reasons.READ_LENGTH_MISMATCH, label, index, short)
        try:
            text = block.decode("utf-8")
        except UnicodeDecodeError as e:
            text = block.decode("utf-8", "replace")
            yield ReadIssue(
                reasons.READ_BAD_UTF8, label, index, f"invalid UTF-8 at byte {e.start} of the record"
            )
        crs = text.count("\r")
        if crs and crs != text.count("\r\n"):  # a lone CR ends a line too (universal newlines)
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        lines = [s for s in map(str.strip, text.split("\n")) if s]  # strip() also drops a CRLF's CR
        body = [s for s in lines if not s.startswith(_METADATA_PREFIXES)]
        n_meta = len(lines) - len(body)
        meta = lines[:n_meta]  # usually the WARC headers, all at the top
        if not all(s.startswith(_METADATA_PREFIXES) for s in meta):
            meta = [s for s in lines if s.startswith(_METADATA_PREFIXES)]
        url = timestamp = content_type = content_length = ""
        language = warc_type = None
        for s in meta:  # TFDS checks every key on every line, body lines too; the last one wins
            if s.startswith(_URL_KEY):
                url = s[len(_URL_KEY) :].strip()
            elif s.startswith(_DATE_KEY):
                timestamp = s[len(_DATE_KEY) :].strip()
            elif s.startswith(_CONTENT_TYPE_KEY):
                content_type = s[len(_CONTENT_TYPE_KEY) :].strip()
            elif s.startswith(_CONTENT_LENGTH_KEY):
                content_length = s[len(_CONTENT_LENGTH_KEY) :].strip()
            elif s.startswith(_LANGUAGE_KEY):
                language = s[len(_LANGUAGE_KEY) :].strip()
            elif s.startswith(_TYPE_KEY) and warc_type is None:
                warc_type = s[len(_TYPE_KEY) :].strip()
        if warc_type == "warcinfo":
            self.warcinfos += 1
            if self.warcinfos > 1:
                yield ReadIssue(
                    reasons.READ_EXTRA_WARCINFO, label, index, "a warcinfo record after the first"
                )
                return
        if not url:
            yield ReadIssue(reasons.NO_URL, label, index, f"WARC-Type {warc_type}")
        elif not body:
            yield ReadIssue(reasons.NO_CONTENT, label, index, url)
        elif not timestamp:
            yield ReadIssue(reasons.NO_TIMESTAMP, label, index, url)
        else:
            yield Page(
                url=url,
                text="\n".join(body),
                timestamp=timestamp,
                content_type=content_type,
                content_length=content_length,
                language=language or None,
            )


def iter_records(source: Source, *, name: Optional[str] = None) -> Iterator[Union[Page, ReadIssue]]:
    """Pages of a `.wet` / `.wet.gz` file (path or open binary file), and a ReadIssue for every record
    or stretch of bytes that is not a page. Pages have TFDS's line handling applied and
    `normalized_url` left empty."""
    label, owned, events = _events(source, name)
    if isinstance(events, ReadIssue):
        yield events
        return
    try:
        yield from _split_records(events, _WetParser(label), label)
    finally:
        if owned is not None:
            owned.close()


def _split_records(events, parser: _WetParser, label: str) -> Iterator[Union[Page, ReadIssue]]:
    buf = b""
    start = 0  # buf[start:] is the record being read (or data before any record)
    search = 0  # where to look for the next `WARC/1.0`
    safe = 0  # buf[:safe] came from gzip members that ended cleanly
    in_record = False  # buf[start:] begins with a delimiter line
    index = -1  # of the current record
    seen_data = False

    def outside(data: bytes, why: str):
        if data.strip():
            return ReadIssue(reasons.READ_BEFORE_FIRST_RECORD, label, None, f"{len(data)} bytes {why}")
        return None

    def cut(final: bool):
        """Emit every record that a delimiter line closes in buf."""
        nonlocal start, search, in_record, index
        while True:
            j = buf.find(_DELIMITER, search)
            if j < 0:
                search = max(start, len(buf) - 7)
                return
            found = _delimiter_line(buf, j, start, final)
            if found is None:
                search = j
                return
            ls, search = found
            if ls < 0:
                continue
            if in_record:
                if ls > start:
                    yield from parser.record(buf[start:ls], index, False)
            else:
                issue = outside(buf[start:ls], "before the first WARC/1.0 line")
                if issue:
                    yield issue
            start, in_record = ls, True
            index += 1

    after_break = False
    for ev in events:
        if type(ev) is bytes:
            seen_data = True
            buf = buf[start:] + ev
            search -= start
            safe = max(safe - start, 0)
            start = 0
            yield from cut(False)
        elif ev is _MEMBER_END:
            safe = len(buf)
        else:  # _Break: drop what the damaged stretch produced, finish what came before it
            keep = max(safe, start)
            yield ReadIssue(ev.code, label, index if in_record else None, ev.detail)
            if in_record and keep > start:
                yield from parser.record(buf[start:keep], index, True)
            elif not in_record:
                issue = outside(buf[start:keep], "before the first WARC/1.0 line")
                if issue:
                    yield issue
            buf, start, search, safe, in_record, after_break = b"", 0, 0, 0, False, True
    yield from cut(True)
    if in_record:
        yield from parser.record(buf[start:], index, True)
    elif buf[start:].strip():
        yield outside(buf[start:], "with no WARC/1.0 line after them")
    elif index < 0 and not after_break:
        yield ReadIssue(
            reasons.READ_EMPTY_FILE, label, None, "no data" if not seen_data else "only whitespace"
        )


# --- WARC responses ---------------------------------------------------------------------------------


def _header_fields(lines) -> dict:
    fields = {}
    for line in lines:
        key, sep, value = line.partition(b":")
        if sep:
            fields.setdefault(key.strip().lower(), value.strip())
    return fields


def _response(block: bytes, warc: dict) -> WarcResponse:
    sep = block.find(b"\r\n\r\n")
    head, body = (block[:sep], block[sep + 4 :]) if sep >= 0 else (block, b"")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(None, 2)
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
    headers = tuple((k.strip(), v.strip()) for k, s, v in (line.partition(":") for line in lines[1:]) if s)
    url = warc.get(b"warc-target-uri", b"").decode("utf-8", "replace")
    if url.startswith("<") and url.endswith(">"):
        url = url[1:-1]
    return WarcResponse(
        url=url,
        timestamp=warc.get(b"warc-date", b"").decode("utf-8", "replace"),
        status=status,
        headers=headers,
        body=body,
        record_id=warc.get(b"warc-record-id", b"").decode("utf-8", "replace"),
    )


def iter_warc_responses(
    source: Source, *, name: Optional[str] = None
) -> Iterator[Union[WarcResponse, ReadIssue]]:
    """The `response` records of a WARC file (`.warc`, `.warc.gz`), framed by Content-Length; other
    record types are passed over. Damage is reported as for `iter_records`."""
    label, owned, events = _events(source, name)
    if isinstance(events, ReadIssue):
        yield events
        return
    try:
        yield from _split_warc(events, label)
    finally:
        if owned is not None:
            owned.close()


def _split_warc(events, label: str) -> Iterator[Union[WarcResponse, ReadIssue]]:
    buf, pos, index = b"", 0, -1

    def frames(final: bool):
        nonlocal pos, index
        while True:
            while pos < len(buf) and buf[pos] in b"\r\n":
                pos += 1
            if pos >= len(buf):
                return
            if not buf.startswith(b"WARC/", pos):
                nxt = buf.find(b"\nWARC/1.", pos)
                if nxt < 0 and not final:
                    return
                end = len(buf) if nxt < 0 else nxt + 1
                yield ReadIssue(
                    reasons.READ_BEFORE_FIRST_RECORD, label, None, f"{end - pos} bytes outside any record"
                )
                pos = end
                continue
            head_end = buf.find(b"\r\n\r\n", pos)
            if head_end < 0:
                if final:
                    yield ReadIssue(
                        reasons.READ_TRUNCATED_RECORD, label, index + 1, "the WARC headers never end"
                    )
                    pos = len(buf)
                return
            fields = _header_fields(buf[pos:head_end].split(b"\r\n")[1:])
            try:
                length = int(fields.get(b"content-length", b""))
            except ValueError:
                length = -1
            if length < 0:  # no usable framing: resynchronise at the next record
                index += 1
                yield ReadIssue(reasons.READ_TRUNCATED_RECORD, label, index, "no valid Content-Length")
                pos = head_end + 4
                nxt = buf.find(b"\nWARC/1.", pos)
                pos = len(buf) if nxt < 0 else nxt + 1
                continue
            end = head_end + 4 + length
            if end > len(buf):
                if final:
                    yield ReadIssue(
                        reasons.READ_TRUNCATED_RECORD,
                        label,
                        index + 1,
                        f"body has {len(buf) - head_end - 4} of {length} bytes",
                    )
                    pos = len(buf)
                return
            index += 1
            if fields.get(b"warc-type") == b"response":
                yield _response(buf[head_end + 4 : end], fields)
            pos = end

    for ev in events:
        if type(ev) is bytes:
            buf = buf[pos:] + ev
            pos = 0
            yield from frames(False)
        elif ev is not _MEMBER_END:
            yield ReadIssue(ev.code, label, None, ev.detail)
            buf, pos = b"", 0  # the interrupted record is lost with the damaged stretch
    yield from frames(True)
    if index < 0 and not buf.strip():
        yield ReadIssue(reasons.READ_EMPTY_FILE, label, None, "no records")
