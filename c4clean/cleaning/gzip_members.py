"""Gzip decompression that survives damage, for the WET reader.

`byte_events(f)` turns a binary file (plain or gzip, told apart by the magic number) into a stream of
events: decompressed `bytes`, `MEMBER_END` after each gzip member whose CRC and length were checked,
`Break` where the byte stream is interrupted, and `Note` for damage that lost no data.

Members are read with raw deflate and a gzip header and trailer parsed here, so that a stream whose
deflate data ended but whose 8-byte trailer is cut (`head -c -8`) is told apart from one cut inside
the data: the first lost nothing (a `Note`), the second lost the rest of the file (a `Break`). After
corrupt data, decompression resumes at the next gzip header found in the remaining bytes (Common
Crawl writes one member per record, so exactly the damaged record is lost).
"""

from __future__ import annotations

import struct
import zlib
from typing import Iterator, Optional, Union

from c4clean.cleaning import reasons

READ_SIZE = 1 << 14  # compressed bytes per read: small, so that zlib copies little and a failing
# decompress call (whose output zlib discards) takes little good data with it
_MAGIC = b"\x1f\x8b\x08"  # gzip magic + deflate
_MAX_HEADER = 1 << 16  # a longer gzip header (file name, comment, extra field) is taken for junk
_TRAILER = 8  # CRC-32 and ISIZE, little-endian


class Break:
    """The byte stream was interrupted: what follows (if anything) does not continue what came before.

    `prefix_valid`: the bytes since the last `MEMBER_END` are a true prefix of the data (the stream was
    cut or a read failed); False when they came from corrupt data and must be dropped. `reported`:
    False while looking for the next member after damage already reported (a false gzip header in
    the damaged bytes): its data is dropped, no second issue is counted."""

    __slots__ = ("code", "detail", "prefix_valid", "reported")

    def __init__(self, code: str, detail: str, prefix_valid: bool, reported: bool = True):
        self.code, self.detail, self.prefix_valid, self.reported = code, detail, prefix_valid, reported


class Note:
    """Damage that lost no data (a cut gzip trailer): reported, reading goes on."""

    __slots__ = ("code", "detail")

    def __init__(self, code: str, detail: str):
        self.code, self.detail = code, detail


MEMBER_END = object()  # a gzip member ended and its trailer matched: everything before it is intact

Event = Union[bytes, Break, Note, object]


def raw_chunks(f) -> Iterator[Union[bytes, Break]]:
    """The file's bytes, READ_SIZE at a time; a read failure ends them with a `Break`."""
    while True:
        try:
            chunk = f.read(READ_SIZE)
        except Exception as e:  # any I/O layer (local, Beam FileSystems, ...); reported, not raised
            yield Break(reasons.READ_UNREADABLE, f"read failed: {type(e).__name__}: {e}", True)
            return
        if not chunk:
            return
        yield chunk if isinstance(chunk, bytes) else bytes(chunk)


def byte_events(f) -> Iterator[Event]:
    """Decompressed bytes of `f` (plain or gzip, detected by magic number) with the events above."""
    raw = raw_chunks(f)
    first = b""
    for chunk in raw:
        if isinstance(chunk, Break):
            yield chunk
            return
        first += chunk
        if len(first) >= 2:
            break
    if first[:2] == b"\x1f\x8b":
        yield from GzipMembers(raw, first)
    else:
        if first:
            yield first
        yield from raw


def _is_header_start(buf: bytes, i: int) -> bool:
    # magic, deflate, no reserved flag bits: a stray 1f 8b 08 inside compressed data rarely passes
    return buf.startswith(_MAGIC, i) and len(buf) > i + 3 and not buf[i + 3] & 0xE0


def _find_header(buf: bytes, start: int) -> int:
    i = buf.find(_MAGIC, start)
    while i >= 0 and len(buf) > i + 3 and buf[i + 3] & 0xE0:
        i = buf.find(_MAGIC, i + 1)
    return i


def _header_length(buf: bytes) -> Optional[int]:
    """Length of the gzip header at buf[0], None if buf does not hold all of it yet, -1 if too long."""
    if len(buf) < 10:
        return None
    flags, pos = buf[3], 10
    if flags & 4:  # FEXTRA
        if len(buf) < pos + 2:
            return None
        pos += 2 + struct.unpack_from("<H", buf, pos)[0]
    for flag in (8, 16):  # FNAME, FCOMMENT: zero-terminated
        if flags & flag:
            end = buf.find(b"\0", pos, _MAX_HEADER)
            if end < 0:
                return -1 if len(buf) >= _MAX_HEADER else None
            pos = end + 1
    if flags & 2:  # FHCRC
        pos += 2
    return pos if pos <= len(buf) else None


class GzipMembers:
    """Iterates the events of a (multi-member) gzip stream whose first bytes are `first`.

    State: `buf` holds unread compressed bytes, `base` is the file offset of buf[0]; `recent` keeps the
    last two inputs of the member being read, so that after corrupt data the search for the next
    member can start just after the failed member's header; `resyncing` is set from damage until a
    member ends intact."""

    def __init__(self, raw: Iterator[Union[bytes, Break]], first: bytes):
        self.raw = raw
        self.buf, self.base = first, 0
        self.exhausted = False
        self.read_failure: Optional[Break] = None
        self.resyncing = False  # after damage, skipped bytes belong to that one issue

    def _pull(self) -> bool:
        """Appends the next input chunk to buf; False at the end of the input."""
        if self.exhausted:
            return False
        for chunk in self.raw:
            if isinstance(chunk, Break):
                self.read_failure = chunk
                break
            self.buf += chunk
            return True
        self.exhausted = True
        return False

    def _consume(self, n: int) -> None:
        self.buf, self.base = self.buf[n:], self.base + n

    def __iter__(self) -> Iterator[Event]:
        while True:
            while len(self.buf) < 4 and self._pull():
                pass
            if not self.buf:
                break
            if not _is_header_start(self.buf, 0):
                yield from self._skip_to_header()
                if not self.buf:
                    break
            yield from self._member()
            if self.exhausted and not self.buf:
                break
        if self.read_failure is not None:
            yield self.read_failure

    def _skip_to_header(self) -> Iterator[Event]:
        """Drops bytes up to the next gzip header (or the end); junk other than zero padding is a
        corrupt-gzip issue, unless it follows damage already reported."""
        start, junk = self.base, False
        k = _find_header(self.buf, 1)
        while k < 0 and not self.exhausted:
            keep = max(len(self.buf) - 3, 0)  # the start of a header may be in the next chunk
            junk = junk or bool(self.buf[:keep].strip(b"\x00"))
            self._consume(keep)
            self._pull()
            k = _find_header(self.buf, 0)
        if k < 0:
            k = len(self.buf)
        junk = junk or bool(self.buf[:k].strip(b"\x00"))
        if junk and not self.resyncing:
            gone = self.base + k - start
            yield Break(reasons.READ_CORRUPT_GZIP, f"{gone} bytes of non-gzip data at offset {start}", False)
        self._consume(k)

    def _member(self) -> Iterator[Event]:
        """One member from its header at buf[0]: its data, then MEMBER_END, a Break or a Note."""
        start = self.base
        size = _header_length(self.buf)
        while size is None and self._pull():
            size = _header_length(self.buf)
        if size is None or size < 0:
            if size is None:  # the input ends inside the header
                if self.read_failure is None:
                    where = f"stream ends in the gzip header at offset {start}"
                    yield Break(reasons.READ_TRUNCATED_GZIP, where, True)
                self._consume(len(self.buf))
            else:
                self._consume(1)  # not a real header: look further
            return
        self._consume(size)
        inflate = zlib.decompressobj(-zlib.MAX_WBITS)
        crc, length = 0, 0
        recent: list = []  # (offset, bytes) of the last inputs, for the search after damage
        while not inflate.eof:
            if not self.buf and not self._pull():
                if self.read_failure is not None:  # reported once, by __iter__
                    self.read_failure.detail += f" (inside the gzip member at offset {start})"
                else:
                    where = f"stream ends inside the gzip member at offset {start}"
                    yield Break(reasons.READ_TRUNCATED_GZIP, where, True)
                return
            recent = recent[-1:] + [(self.base, self.buf)]
            try:
                out = inflate.decompress(self.buf)
            except zlib.error as e:
                where = f"gzip member at offset {start}: {e}"
                yield Break(reasons.READ_CORRUPT_GZIP, where, False, reported=not self.resyncing)
                kept_base = recent[0][0]
                joined = b"".join(data for _, data in recent)
                skip = max(start + 1, kept_base) - kept_base
                self.buf, self.base = joined[skip:], kept_base + skip
                self.resyncing = True
                return
            self.base += len(self.buf)
            self.buf = inflate.unused_data
            self.base -= len(self.buf)
            if out:
                crc, length = zlib.crc32(out, crc), length + len(out)
                yield out
        while len(self.buf) < _TRAILER and self._pull():
            pass
        if self.read_failure is not None and len(self.buf) < _TRAILER:
            return  # the read failure is reported by __iter__
        trailer = self.buf[:_TRAILER]
        self._consume(len(trailer))
        expected = struct.pack("<II", crc, length & 0xFFFFFFFF)
        if trailer == expected:
            self.resyncing = False
            yield MEMBER_END
        elif len(trailer) < _TRAILER and expected.startswith(trailer):
            self.resyncing = False
            yield Note(
                reasons.READ_GZIP_TRAILER_CUT,
                f"the gzip member at offset {start} decompressed whole, but {_TRAILER - len(trailer)} "
                "of its 8 trailer bytes are missing: its CRC could not be checked",
            )
            yield MEMBER_END
        else:
            where = f"gzip member at offset {start}: CRC or length mismatch"
            yield Break(reasons.READ_CORRUPT_GZIP, where, False, reported=not self.resyncing)
            self.resyncing = True
