"""Sharded, deterministic, atomically written text shards: Arrow IPC (default) or Parquet.

Formats (`--format`): `arrow` is uncompressed Arrow IPC, which memory-maps; `parquet` is zstd Parquet in
row groups of BATCH_ROWS rows (a few MB of C4 text each), so streaming readers (DuckDB, polars, the
Hugging Face Hub viewer, `datasets` streaming) fetch and decode one small group at a time.

Determinism: a page's shard is a hash of its URL (not of bundle or worker), and the rows of a
shard are sorted by URL, so the same pages give the same bytes whatever the worker count. The hash
is sha256 of the original URL, independent of the md5(normalized_url) that picks the validation
split (sharding by that md5 would put every validation page into shard 0).

Atomicity: workers write each shard under a temporary name and rename it into a staging folder;
the driver renames the complete set into the output folder at the end of the run, so no partial
file is ever visible under a final shard name.
"""

from __future__ import annotations

import collections
import hashlib
import heapq
import itertools
import json
from typing import Iterable, Iterator

import pyarrow as pa

from c4clean import atomic
from c4clean.cleaning.page import Page
from c4clean.formats import (
    DEFAULT_SHARD_FORMAT,
    SHARD_SIDECAR_SUFFIX,
    shard_format,
    shard_name,
    text_schema,
)

BATCH_ROWS = 1024  # record batches / Parquet row groups of fixed size: same rows -> same bytes
PARQUET_COMPRESSION = "zstd"


def shard_of(url: str, num_shards: int) -> int:
    return int.from_bytes(hashlib.sha256(url.encode("utf-8")).digest()[:8], "big") % num_shards


def _rows(pages: Iterable[Page]) -> list[tuple]:
    """Pages as rows: tuples of the text schema's columns."""
    names = text_schema().names
    return [tuple(getattr(p, name) for name in names) for p in pages]


def _table(rows: list[tuple]) -> pa.Table:
    schema = text_schema()
    columns = list(zip(*rows)) if rows else [()] * len(schema)
    return pa.Table.from_arrays([pa.array(c, type=f.type) for c, f in zip(columns, schema)], schema=schema)


def _sort_key(row: tuple):
    """A shard's row order: (url, text)."""
    return row[0], row[1]


# Arrow's IPC writer writes a sliced string column's values up to 64 bytes past the slice, and its
# validity bitmap up to 64 bytes (512 rows) past it. A batch cut from a window that holds that much
# of what follows it is written with the bytes of the same batch cut from the whole shard. The window
# stops _AHEAD_MAX_ROWS rows past the batch, so memory stays bounded even where a column is empty
# for that long (the bytes then are those of the window: the same on every run).
_AHEAD_BYTES = 64
_AHEAD_ROWS = 512
_AHEAD_MAX_ROWS = 4096


def _ipc_batches(rows: Iterable[tuple]) -> Iterator[pa.RecordBatch]:
    """Record batches of BATCH_ROWS rows, byte for byte those of `write_table(max_chunksize=BATCH_ROWS)`
    of the whole table, holding a few batches of rows at a time. Each batch is cut from a table of
    the rows before it (as many as keep its offset modulo 8, for the validity bitmaps), its rows and
    those after it, enough for the writer's padding (`_AHEAD_BYTES`, `_AHEAD_ROWS`)."""
    rows = iter(rows)
    strings = [i for i, field in enumerate(text_schema()) if pa.types.is_string(field.type)]
    behind: collections.deque = collections.deque(maxlen=16)
    ahead: collections.deque = collections.deque()
    written = 0
    while True:
        # characters (a lower bound of UTF-8 bytes) per string column in the rows after the batch
        chars = [sum(len(r[c] or "") for r in itertools.islice(ahead, BATCH_ROWS, None)) for c in strings]

        def enough() -> bool:
            after = len(ahead) - BATCH_ROWS
            if after >= _AHEAD_MAX_ROWS:
                return True
            return after >= _AHEAD_ROWS and min(chars) >= _AHEAD_BYTES

        while not enough():
            row = next(rows, None)
            if row is None:
                break
            ahead.append(row)
            if len(ahead) > BATCH_ROWS:
                for k, c in enumerate(strings):
                    chars[k] += len(row[c] or "")
        if not ahead:
            return
        n = min(BATCH_ROWS, len(ahead))
        offset = written if written < 16 else 8 + written % 8
        window = list(behind)[len(behind) - offset :] + list(ahead)
        (batch,) = _table(window).slice(offset, n).to_batches()
        yield batch
        for _ in range(n):
            behind.append(ahead.popleft())
        written += n


def _parquet_batches(rows: Iterator[tuple]) -> Iterator[pa.RecordBatch]:
    """Row groups of BATCH_ROWS rows (Parquet writes each group's pages anew: no window needed)."""
    while chunk := list(itertools.islice(rows, BATCH_ROWS)):
        (batch,) = _table(chunk).to_batches()
        yield batch


class _HashingSink:
    """A file object that writes through to `out`, counting and hashing what passes."""

    def __init__(self, out):
        self._out = out
        self.size = 0
        self.sha256 = hashlib.sha256()
        self.closed = False

    def write(self, data) -> int:
        data = memoryview(data)
        self._out.write(data)
        self.sha256.update(data)
        self.size += len(data)
        return len(data)

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def _write_rows(sink: _HashingSink, rows: Iterator[tuple], fmt: str) -> None:
    """Writes sorted rows to `sink` in `fmt`, one batch at a time: the bytes `pq.write_table` /
    `RecordBatchFileWriter.write_table` give for the whole table (an empty Parquet shard is
    one empty row group, as `pq.write_table` writes it)."""
    schema = text_schema()
    if fmt == "parquet":
        import pyarrow.parquet as pq

        with pq.ParquetWriter(sink, schema, compression=PARQUET_COMPRESSION) as writer:
            empty = True
            for batch in _parquet_batches(rows):
                writer.write_batch(batch, row_group_size=BATCH_ROWS)
                empty = False
            if empty:
                writer.write_table(_table([]), row_group_size=BATCH_ROWS)
    else:
        with pa.ipc.new_file(sink, schema) as writer:
            for batch in _ipc_batches(rows):
                writer.write_batch(batch)


def write_rows(
    directory: str, split: str, index: int, count: int, rows: Iterable[tuple], fmt: str = DEFAULT_SHARD_FORMAT
) -> dict:
    """Writes one shard of `rows` (tuples of the text schema's columns, already in the shard's order)
    streaming, one batch at a time, under a temporary name renamed into place; returns its record
    for the manifest. A sidecar `<name>.json` with rows, bytes and sha256 is written beside it
    (after it), so the driver can build the manifest without reading the shards again."""
    from apache_beam.io.filesystems import FileSystems

    name = shard_name(split, index, count, fmt)
    final = FileSystems.join(directory, name)
    totals = {"rows": 0, "text_bytes": 0, "words": 0}
    text = text_schema().names.index("text")

    def counted():
        for row in rows:
            totals["rows"] += 1
            totals["text_bytes"] += len(row[text].encode("utf-8"))
            totals["words"] += len(row[text].split())  # whitespace tokens
            yield row

    with atomic.creating_fs(final) as out:
        sink = _HashingSink(out)
        _write_rows(sink, counted(), fmt)
    record = {
        "split": split,
        "shard": index,
        "num_shards": count,
        "file": name,
        **totals,
        "bytes": sink.size,
        "sha256": sink.sha256.hexdigest(),
    }
    atomic.write_bytes_fs(final + SHARD_SIDECAR_SUFFIX, json.dumps(record, sort_keys=True).encode("utf-8"))
    return record


def write_shard(
    directory: str, split: str, index: int, count: int, pages: Iterable[Page], fmt: str = DEFAULT_SHARD_FORMAT
) -> dict:
    """Writes one shard of `pages` (any order; rows sorted by (url, text)) atomically; returns its
    record for the manifest (`write_rows`)."""
    return write_rows(directory, split, index, count, iter(sorted(_rows(pages), key=_sort_key)), fmt)


# --- pieces: one input file's pages of one shard, merged into the shard at the end ---------------

# A merge holds one record batch per piece it reads: pieces are written in small batches (a few
# hundred KB of C4 text), and at most MERGE_FAN_IN pieces are merged at once (more are merged in
# rounds through intermediate pieces), so a shard's merge holds about MERGE_FAN_IN * PIECE_BATCH_ROWS
# rows and has as many files open, whatever the number of input files.
PIECE_BATCH_ROWS = 64
MERGE_FAN_IN = 64


def piece_name(split: str, index: int, count: int, file_position: int | str, part: int = 0) -> str:
    """`<shard name without suffix>.<file position>-<part>.arrow`: unique per shard and task of the
    last pass (a str position names an intermediate piece of a merge)."""
    source = f"{file_position:06d}-{part:04d}" if isinstance(file_position, int) else file_position
    return f"{shard_name(split, index, count, 'arrow')[: -len('.arrow')]}.{source}.arrow"


def _write_piece_rows(path: str, rows: Iterable[tuple]) -> int:
    """Writes rows (in the shard's order) as an Arrow IPC file of PIECE_BATCH_ROWS-row batches,
    streaming and atomically; returns the number of rows."""
    rows, written = iter(rows), 0
    with atomic.creating_fs(path) as out, pa.ipc.new_file(out, text_schema()) as writer:
        while chunk := list(itertools.islice(rows, PIECE_BATCH_ROWS)):
            writer.write_table(_table(chunk))
            written += len(chunk)
    return written


def write_piece(path: str, pages: Iterable[Page]) -> int:
    """Writes `pages` as a piece: sorted in the shard's row order, atomically; returns the number
    of rows."""
    return _write_piece_rows(path, sorted(_rows(pages), key=_sort_key))


def piece_rows(path: str) -> Iterator[tuple]:
    """The rows of a piece, reading one record batch at a time."""
    from apache_beam.io.filesystems import CompressionTypes, FileSystems

    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        reader = pa.ipc.open_file(f)
        for i in range(reader.num_record_batches):
            yield from zip(*(column.to_pylist() for column in reader.get_batch(i).columns))


def _merge(paths: list[str]) -> Iterator[tuple]:
    return heapq.merge(*(piece_rows(path) for path in paths), key=_sort_key)


def merge_pieces(paths: Iterable[str], shard: tuple[str, int, int]) -> Iterator[tuple]:
    """The rows of the sorted pieces of `shard` (split, index, count) in the shard's order: a k-way
    merge (equal keys in `paths` order) of at most MERGE_FAN_IN pieces; more are first merged in
    rounds into intermediate pieces beside them (`<shard>.m<round>-<group>.arrow`)."""
    from apache_beam.io.filesystems import FileSystems

    paths, merge_round = list(paths), 0
    while len(paths) > MERGE_FAN_IN:
        merged = []
        for start in range(0, len(paths), MERGE_FAN_IN):
            name = piece_name(*shard, f"m{merge_round}-{start // MERGE_FAN_IN:06d}")
            path = FileSystems.join(FileSystems.split(paths[start])[0], name)
            _write_piece_rows(path, _merge(paths[start : start + MERGE_FAN_IN]))
            merged.append(path)
        paths, merge_round = merged, merge_round + 1
    return _merge(paths)


def read_shard(path: str) -> pa.Table:
    """A text shard of either format, whole."""
    if shard_format(path) == "parquet":
        import pyarrow.parquet as pq

        return pq.read_table(str(path))
    with pa.memory_map(str(path)) as source:
        return pa.ipc.open_file(source).read_all()
