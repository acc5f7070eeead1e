"""Streaming reader for Common Crawl WET files.

`iter_records` gives the pages TFDS c4 v3.1.0 `split_wet_file` gives, with the same line handling
(universal newlines, every line stripped, blank lines dropped, a line equal to `WARC/1.0` starts a
record, header keys recognised on every line, lines starting with WARC / CONTENT- / Content- left out
of the text), plus `language` from `WARC-Identified-Content-Language`. Where TFDS crashes or silently
mis-reads (damaged gzip, truncated or headless records, bad UTF-8, data that is not WET), this reader
yields a `ReadIssue` with a code from `reasons.py` and goes on with the next complete record.

Time is linear in the file and memory is one record plus one read buffer: the decompressed stream
(`gzip_members.byte_events`) is appended to a bytearray that drops each finished record from its
front, cut at `WARC/1.0` lines with `bytes.find`, and each record is decoded and split with
whole-string operations. Data outside any record is counted, not kept.

Choices that TFDS leaves open, documented here once:
* Bad UTF-8 in a record: the record is decoded with U+FFFD replacement and kept, and a
  `READ_BAD_UTF8` issue says so (TFDS would abort the whole file; dropping would lose the page).
* The first warcinfo record counts as `NO_URL`, exactly as in TFDS; any later one is `READ_EXTRA_WARCINFO`.
* Truncation: a record that nothing follows (the last one, or the one that gzip damage or a read
  failure interrupted) and whose body is shorter than its WARC `Content-Length` is
  `READ_TRUNCATED_RECORD` and dropped, as is one whose WARC headers never end, or a file that ends
  inside a `WARC/1.0` line. No tolerance: every record of the real Common Crawl files in
  `shared/data/wet/` holds exactly its Content-Length. A record followed by another one cannot have
  been cut; if it is short anyway (a `WARC/1.0` line inside a body splits a record in TFDS, and
  TFDS's hand-made test files carry wrong lengths) it is kept, as TFDS keeps it, with a
  `READ_LENGTH_MISMATCH` warning.
* Gzip damage (`gzip_members`): a stream cut inside a member keeps what decompressed, and the record
  it interrupted is judged by its Content-Length as above; a member whose data is whole but whose
  trailer is cut is a `READ_GZIP_TRAILER_CUT` warning and loses nothing; output of a corrupt member
  since its last intact member is dropped and reading resumes at the next gzip header. Common Crawl
  writes one member per record, so there exactly the damaged record is lost. In a single-stream file
  nothing after corrupt data can be recovered, and damage that only the CRC check catches is
  reported after the pages it touched were yielded.
* Not WET: a file whose (decompressed) start is another compression format or binary data, or that
  holds no `WARC/1.0` line at all, is one `READ_NOT_WET` issue; binary data is not read further.
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import IO, Iterator, Optional, Union

from c4clean.cleaning import reasons
from c4clean.cleaning.gzip_members import MEMBER_END, Break, Note, byte_events
from c4clean.cleaning.page import Page

_DELIMITER = b"WARC/1.0"
_METADATA_PREFIXES = ("WARC", "CONTENT-", "Content-")
_URL_KEY = "WARC-Target-URI:"
_DATE_KEY = "WARC-Date:"
_CONTENT_TYPE_KEY = "Content-Type:"
_CONTENT_LENGTH_KEY = "Content-Length:"
_LANGUAGE_KEY = "WARC-Identified-Content-Language:"
_TYPE_KEY = "WARC-Type:"
# Bytes of the UTF-8 encodings of str.isspace() characters other than CR and LF (all are below
# U+3001): a line that strips to `WARC/1.0` has only these around the delimiter.
_SPACE_BYTES = frozenset(
    b for c in map(chr, range(0x3001)) if c.isspace() and c not in "\r\n" for b in c.encode()
)
_SPACE_RUN = re.compile(b"[" + b"".join(re.escape(bytes([b])) for b in sorted(_SPACE_BYTES)) + b"]*")
_LINE_BREAKS = (0x0A, 0x0D)
_SNIFF_BYTES = 4096  # the start of the data that tells WET from other formats
_FOREIGN_MAGIC = (
    (b"BZh", "bzip2"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"PK\x03\x04", "zip"),
    (b"\x04\x22\x4d\x18", "lz4"),
)
_CONTROL = re.compile("[\x00-\x08\x0e-\x1b\x7f]")


@dataclasses.dataclass(frozen=True)
class ReadIssue:
    """Something the reader skipped or repaired. `record_index` is the 0-based position of the record
    in the file (counting `WARC/1.0` lines), or None for a file-level issue."""

    code: str
    source: str
    record_index: Optional[int]
    detail: str = ""


Source = Union[str, "os.PathLike[str]", IO[bytes]]


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


def iter_records(source: Source, *, name: Optional[str] = None) -> Iterator[Union[Page, ReadIssue]]:
    """Pages of a `.wet` / `.wet.gz` file (path or open binary file), and a ReadIssue for every record
    or stretch of bytes that is not a page. Pages have TFDS's line handling applied and
    `normalized_url` left empty."""
    opened, label, owned = _open(source, name)
    if isinstance(opened, ReadIssue):
        yield opened
        return
    splitter = _RecordSplitter(_WetParser(label), label)
    try:
        for event in byte_events(opened):
            yield from splitter.feed(event)
            if splitter.stopped:
                return
        yield from splitter.finish()
    finally:
        if owned:
            opened.close()


# --- file type ---------------------------------------------------------------------------------------


def not_wet_reason(head: bytes) -> Optional[str]:
    """Why data starting with `head` is not WET (another compression format, binary data), or None."""
    if head.lstrip().startswith(b"WARC/"):
        return None
    for magic, kind in _FOREIGN_MAGIC:
        if head.startswith(magic):
            return f"{kind} data"
    text = head.decode("utf-8", "replace")
    odd = text.count("\ufffd") + len(_CONTROL.findall(text))
    if odd * 10 > len(text):
        return f"binary data ({odd} of its first {len(text)} characters are not text)"
    return None


# --- cutting the stream into records -----------------------------------------------------------------


def _delimiter_line(buf: bytearray, j: int, lo: int, lo_blank: bool, final: bool, scanned: int) -> tuple:
    """For a `WARC/1.0` found at j: (line start, line end) if its line strips to `WARC/1.0` (TFDS's
    test), (-1, next search position) if not, or (None, bytes after j scanned) if the line end is
    not in the buffer yet; `scanned` resumes that scan. Only whitespace is walked, so the test costs
    no more than the line's leading and trailing whitespace."""
    i = _line_start(buf, j, lo, lo_blank)
    after = j + 8
    if i < 0:
        return -1, after
    end = _SPACE_RUN.match(buf, j + scanned).end()
    if end == len(buf) and not final:
        return None, end - j
    if end < len(buf) and buf[end] not in _LINE_BREAKS:
        return -1, after
    if (i, end) == (j, after) or bytes(buf[i:end]).decode("utf-8", "replace").strip() == "WARC/1.0":
        return i, end
    return -1, after


def _line_start(buf: bytearray, j: int, lo: int, lo_blank: bool) -> int:
    """Start (or lo) of the line holding buf[j] if only whitespace precedes j on it, else -1.
    `lo_blank`: only whitespace precedes buf[lo] on its line (data before lo was dropped)."""
    if j > lo and buf[j - 1] in _LINE_BREAKS:
        return j
    if j == lo or buf[j - 1] not in _SPACE_BYTES:
        return j if j == lo and lo_blank else -1
    window = max(lo, j - 4096)  # indented: the line break is near (a walk in C, not in Python)
    i = max(buf.rfind(b"\n", window, j), buf.rfind(b"\r", window, j)) + 1
    if not i:
        i = window
        while i > lo and buf[i - 1] in _SPACE_BYTES:  # over 4 KB of leading whitespace
            i -= 1
        if (buf[i - 1] not in _LINE_BREAKS) if i > lo else not lo_blank:
            return -1
    return i if _SPACE_RUN.match(buf, i, j).end() == j else -1


class _RecordSplitter:
    """Cuts the decompressed stream at `WARC/1.0` lines and hands each record to the parser.

    `buf[start:]` is the record being read (`in_record`) or data outside any record; `search` is where
    to look for the next delimiter; `buf[:safe]` came from gzip members that ended intact. Finished
    records are deleted from the front of the bytearray (cheap in CPython), so no byte is copied
    more than a constant number of times."""

    def __init__(self, parser: "_WetParser", label: str):
        self.parser, self.label = parser, label
        self.buf = bytearray()
        self.start = self.search = self.safe = 0
        self.scanned = 8  # whitespace after a `WARC/1.0` at `search` already scanned (with its 8 bytes)
        self.lo_blank = True  # only whitespace precedes buf[start] on its line
        self.in_record = False
        self.index = -1  # of the current record
        self.head = b""  # the first bytes of the data, to tell WET from other formats
        self.sniffed = False
        self.seen_data = False
        self.after_break = False
        self.outside_bytes = 0  # data outside any record, counted since the last record or break
        self.outside_text = False
        self.stopped = False  # the data is not WET: nothing more to read

    # -- events

    def feed(self, event) -> Iterator[Union[Page, ReadIssue]]:
        if type(event) is bytes:
            yield from self._data(event)
        elif event is MEMBER_END:
            self.safe = len(self.buf)
        elif isinstance(event, Note):
            yield ReadIssue(event.code, self.label, None, event.detail)
        elif isinstance(event, Break):
            yield from self._break(event)

    def finish(self) -> Iterator[Union[Page, ReadIssue]]:
        yield from self._sniff(final=True)
        if self.stopped:
            return
        yield from self._flush()
        if self.index < 0 and not self.after_break:
            if self.outside_text:
                what = f"no WARC/1.0 line in {self.outside_bytes} bytes of text"
                yield ReadIssue(reasons.READ_NOT_WET, self.label, None, what)
            else:
                what = "only whitespace" if self.seen_data else "no data"
                yield ReadIssue(reasons.READ_EMPTY_FILE, self.label, None, what)
        else:
            yield from self._outside_issue("with no WARC/1.0 line after them")

    def _data(self, data: bytes) -> Iterator[Union[Page, ReadIssue]]:
        self.seen_data = True
        if len(self.head) < _SNIFF_BYTES:
            self.head += data[: _SNIFF_BYTES - len(self.head)]
            yield from self._sniff(final=False)
            if self.stopped:
                return
        self._compact()
        self.buf += data
        yield from self._cut(final=False)

    def _break(self, event: Break) -> Iterator[Union[Page, ReadIssue]]:
        """Finishes what came before an interruption; what the damaged stretch produced is dropped."""
        yield from self._sniff(final=True)
        if self.stopped:
            return
        if not event.prefix_valid:
            del self.buf[max(self.safe, self.start) :]
        if event.reported:
            yield ReadIssue(event.code, self.label, self.index if self.in_record else None, event.detail)
        yield from self._flush()
        yield from self._outside_issue("before the first WARC/1.0 line")
        self.buf = bytearray()
        self.start = self.search = self.safe = 0
        self.scanned, self.lo_blank = 8, True
        self.in_record, self.after_break = False, True

    # -- helpers

    def _sniff(self, final: bool) -> Iterator[ReadIssue]:
        if self.sniffed or self.index >= 0 or self.after_break:
            return
        if len(self.head) < _SNIFF_BYTES and not final:
            return
        self.sniffed = True
        why = not_wet_reason(self.head)
        if why is not None:
            self.stopped = True
            yield ReadIssue(reasons.READ_NOT_WET, self.label, None, why)

    def _compact(self) -> None:
        """Drops finished records, and data outside any record up to where the search goes on,
        remembering whether only whitespace precedes that point on its line."""
        if self.in_record:
            self._drop_front(self.start)
            return
        buf, lo, cut = self.buf, self.start, self.search
        if cut > lo:
            k = max(buf.rfind(b"\n", lo, cut), buf.rfind(b"\r", lo, cut))
            blank = _SPACE_RUN.match(buf, k + 1 if k >= 0 else lo, cut).end() == cut
            self.lo_blank = blank and (k >= 0 or self.lo_blank)
            self._count_outside(lo, cut)
        self._drop_front(cut)

    def _drop_front(self, n: int) -> None:
        if n:
            del self.buf[:n]
            self.start = max(self.start - n, 0)
            self.search = max(self.search - n, 0)
            self.safe = max(self.safe - n, 0)

    def _take(self, end: int) -> bytes:
        """buf[start:end] as bytes, dropped from the buffer first, so that the record is held once
        (by the parser, which lets go of the bytes once decoded)."""
        with memoryview(self.buf) as view:
            block = bytes(view[self.start : end])
        self._drop_front(end)
        return block

    def _count_outside(self, lo: int, hi: int) -> None:
        if hi > lo:
            self.outside_bytes += hi - lo
            self.outside_text = self.outside_text or bool(bytes(self.buf[lo:hi]).strip())
        self.start = hi

    def _outside_issue(self, why: str) -> Iterator[ReadIssue]:
        if self.outside_text:
            what = f"{self.outside_bytes} bytes {why}"
            yield ReadIssue(reasons.READ_BEFORE_FIRST_RECORD, self.label, None, what)
        self.outside_bytes, self.outside_text = 0, False

    def _cut(self, final: bool) -> Iterator[Union[Page, ReadIssue]]:
        """Emits every record that a delimiter line closes in buf."""
        buf = self.buf
        while True:
            j = buf.find(_DELIMITER, self.search)
            if j < 0:
                self.search = max(self.start, len(buf) - 7)
                return
            line_start, found = _delimiter_line(buf, j, self.start, self.lo_blank, final, self.scanned)
            if line_start is None:  # wait for the line end: the next call resumes the scan
                self.search, self.scanned = j, found
                return
            self.scanned = 8
            self.search = found
            if line_start < 0:
                continue
            if self.in_record:
                yield from self.parser.record(self._take(line_start), self.index, False)
            else:
                self._count_outside(self.start, line_start)
                self._drop_front(line_start)
                yield from self._outside_issue("before the first WARC/1.0 line")
            self.start, self.in_record, self.lo_blank = 0, True, True  # the delimiter line starts buf
            self.index += 1

    def _flush(self) -> Iterator[Union[Page, ReadIssue]]:
        """Emits what the buffer holds when nothing follows it: the last record, judged as cut."""
        yield from self._cut(final=True)
        buf, end = self.buf, len(self.buf)
        if not self.in_record:
            self._count_outside(self.start, end)
            return
        # a file cut inside the next record's `WARC/1.0` line: that record is truncated, not text
        lo = max(end - 9, 0)
        tail = max(buf.rfind(b"\n", lo, end), buf.rfind(b"\r", lo, end)) + 1
        partial = tail > self.start and 0 < end - tail < 8 and _DELIMITER.startswith(bytes(buf[tail:end]))
        yield from self.parser.record(self._take(tail if partial else end), self.index, True)
        if partial:
            what = "the file ends inside a WARC/1.0 line"
            yield ReadIssue(reasons.READ_TRUNCATED_RECORD, self.label, self.index + 1, what)
        self._drop_front(len(self.buf))


# --- WET records -------------------------------------------------------------------------------------


def _short_body(block: bytes) -> Optional[str]:
    """Why a record's bytes hold less than its WARC Content-Length, or None if they hold it all (or the
    length is absent or unreadable, so cannot be checked)."""
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
    if body >= length:
        return None
    return f"body has {body} of {length} bytes"


class _WetParser:
    """TFDS `split_wet_file` line handling, applied to one record's bytes at a time."""

    def __init__(self, label: str):
        self.label = label
        self.warcinfos = 0

    def record(self, block: bytes, index: int, last: bool) -> Iterator[Union[Page, ReadIssue]]:
        """The page (or issues) of one record; `last`: nothing follows it in the stream, so a body
        shorter than its Content-Length means the record was cut."""
        label = self.label
        short = _short_body(block)
        if short is not None:
            if last:
                yield ReadIssue(reasons.READ_TRUNCATED_RECORD, label, index, short)
                return
            yield ReadIssue(reasons.READ_LENGTH_MISMATCH, label, index, short)
        try:
            text = block.decode("utf-8")
        except UnicodeDecodeError as e:
            text = block.decode("utf-8", "replace")
            yield ReadIssue(
                reasons.READ_BAD_UTF8, label, index, f"invalid UTF-8 at byte {e.start} of the record"
            )
        del block  # memory: a huge record is held as bytes, text and lines one after the other
        crs = text.count("\r")
        if crs and crs != text.count("\r\n"):  # a lone CR ends a line too (universal newlines)
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        lines = [s for s in map(str.strip, text.split("\n")) if s]  # strip() also drops a CRLF's CR
        del text
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
