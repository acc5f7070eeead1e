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

import hashlib
import json
from typing import Iterable

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


def _table(pages: list[Page]) -> pa.Table:
    schema = text_schema()
    columns = {field.name: [getattr(p, field.name) for p in pages] for field in schema}
    return pa.Table.from_pydict(columns, schema=schema)


def _serialize(table: pa.Table, fmt: str) -> bytes:
    sink = pa.BufferOutputStream()
    if fmt == "parquet":
        import pyarrow.parquet as pq

        pq.write_table(table, sink, compression=PARQUET_COMPRESSION, row_group_size=BATCH_ROWS)
    else:
        with pa.ipc.new_file(sink, text_schema()) as writer:
            writer.write_table(table, max_chunksize=BATCH_ROWS)
    return sink.getvalue().to_pybytes()


def write_shard(
    directory: str, split: str, index: int, count: int, pages: Iterable[Page], fmt: str = DEFAULT_SHARD_FORMAT
) -> dict:
    """Writes one shard (rows sorted by URL) atomically; returns its record for the manifest.

    A sidecar `<name>.json` with rows, bytes and sha256 is written beside it (after it), so the
    driver can build the manifest without reading the shards again.
    """
    from apache_beam.io.filesystems import FileSystems

    rows = sorted(pages, key=lambda p: (p.url, p.text))
    name = shard_name(split, index, count, fmt)
    final = FileSystems.join(directory, name)
    data = _serialize(_table(rows), fmt)
    record = {
        "split": split,
        "shard": index,
        "num_shards": count,
        "file": name,
        "rows": len(rows),
        "bytes": len(data),
        "text_bytes": sum(len(p.text.encode("utf-8")) for p in rows),
        "words": sum(len(p.text.split()) for p in rows),  # whitespace tokens
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    atomic.write_bytes_fs(final, data)
    atomic.write_bytes_fs(final + SHARD_SIDECAR_SUFFIX, json.dumps(record, sort_keys=True).encode("utf-8"))
    return record


def read_shard(path: str) -> pa.Table:
    """A text shard of either format, whole."""
    if shard_format(path) == "parquet":
        import pyarrow.parquet as pq

        return pq.read_table(str(path))
    with pa.memory_map(str(path)) as source:
        return pa.ipc.open_file(source).read_all()
