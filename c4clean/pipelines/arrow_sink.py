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
import os
import re
import uuid
from typing import Iterable, Optional

import pyarrow as pa

from c4clean.cleaning.page import Page
from c4clean.pipelines.options import DEFAULT_FORMAT, FORMATS

SCHEMA = pa.schema(
    [
        pa.field("url", pa.string(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("timestamp", pa.string(), nullable=False),
        pa.field("content_length", pa.string(), nullable=False),
        pa.field("language", pa.string()),
        pa.field("normalized_url", pa.string(), nullable=False),
        pa.field("content_type", pa.string(), nullable=False),
    ]
)
BATCH_ROWS = 1024  # record batches / Parquet row groups of fixed size: same rows -> same bytes
PARQUET_COMPRESSION = "zstd"
SHARD_NAME_RE = re.compile(
    r"^(?P<split>.+)-(?P<index>\d{5})-of-(?P<count>\d{5})\.(?P<format>" + "|".join(FORMATS) + ")$"
)


def shard_name(split: str, index: int, count: int, fmt: str = DEFAULT_FORMAT) -> str:
    return f"{split}-{index:05d}-of-{count:05d}.{fmt}"


def shard_format(path: str) -> str:
    """The format of a shard file, from its suffix."""
    for fmt in FORMATS:
        if str(path).endswith("." + fmt):
            return fmt
    raise ValueError(f"{path}: not a text shard (suffix one of {', '.join(FORMATS)})")


def shard_of(url: str, num_shards: int) -> int:
    return int.from_bytes(hashlib.sha256(url.encode("utf-8")).digest()[:8], "big") % num_shards


def _table(pages: list[Page]) -> pa.Table:
    columns = {field.name: [getattr(p, field.name) for p in pages] for field in SCHEMA}
    return pa.Table.from_pydict(columns, schema=SCHEMA)


def _serialize(table: pa.Table, fmt: str) -> bytes:
    sink = pa.BufferOutputStream()
    if fmt == "parquet":
        import pyarrow.parquet as pq

        pq.write_table(table, sink, compression=PARQUET_COMPRESSION, row_group_size=BATCH_ROWS)
    else:
        with pa.ipc.new_file(sink, SCHEMA) as writer:
            writer.write_table(table, max_chunksize=BATCH_ROWS)
    return sink.getvalue().to_pybytes()


def write_shard(
    directory: str, split: str, index: int, count: int, pages: Iterable[Page], fmt: str = DEFAULT_FORMAT
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
    write_atomically(final, data)
    write_atomically(final + ".json", json.dumps(record, sort_keys=True).encode("utf-8"))
    return record


def write_atomically(path: str, data: bytes) -> None:
    """Writes `data` under a unique temporary name, then renames it to `path`."""
    from apache_beam.io.filesystems import CompressionTypes, FileSystems

    tmp = f"{path}.tmp-{uuid.uuid4().hex}"
    with FileSystems.create(tmp, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        f.write(data)
    FileSystems.rename([tmp], [path])  # local: os.rename, which replaces atomically


def read_shard(path: str) -> pa.Table:
    """A text shard of either format, whole."""
    if shard_format(path) == "parquet":
        import pyarrow.parquet as pq

        return pq.read_table(str(path))
    with pa.memory_map(str(path)) as source:
        return pa.ipc.open_file(source).read_all()


def parse_shard_name(name: str) -> Optional[tuple[str, int, int]]:
    match = SHARD_NAME_RE.match(os.path.basename(name))
    if not match:
        return None
    return match["split"], int(match["index"]), int(match["count"])
