"""Reading the text of text shards, Arrow IPC or Parquet (`c4clean run --format`), for vocab and encode.

Shard names, listing and checksums are in `c4clean.formats`.
"""

from __future__ import annotations

import os
from typing import Iterator

import pyarrow as pa


def text_batches(path: str | os.PathLike, column: str = "text") -> Iterator[pa.Array]:
    """The `column` of a text shard (Arrow IPC, memory-mapped, or Parquet), one record batch at a time."""
    path = str(path)
    if path.endswith(".parquet"):
        import pyarrow.parquet as pq

        parquet = pq.ParquetFile(path)
        if column not in parquet.schema_arrow.names:
            raise ValueError(f"{path} has no {column!r} column (columns: {parquet.schema_arrow.names})")
        for batch in parquet.iter_batches(columns=[column]):
            yield batch.column(0)
        return
    with pa.memory_map(path, "r") as source:
        reader = pa.ipc.open_file(source)
        for i in range(reader.num_record_batches):
            batch = reader.get_batch(i)
            if column not in batch.schema.names:
                raise ValueError(f"{path} has no {column!r} column (columns: {batch.schema.names})")
            yield batch.column(column)
