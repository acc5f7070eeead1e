"""Finding shards by name, reading their text, hashing files (shared by vocab, encode, loader).

Text shards come as Arrow IPC or Parquet (`c4clean run --format`); token shards are always Arrow IPC.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pyarrow as pa

SHARD_NAME = re.compile(
    r"^(?P<split>[A-Za-z0-9_.]+?)-(?P<index>\d{5})-of-(?P<count>\d{5})\.(?P<format>arrow|parquet)$"
)
TOKEN_SHARD_SUFFIX = ".arrow"


@dataclass(frozen=True)
class ShardName:
    path: Path
    split: str
    index: int
    count: int


def list_shards(directory: str | os.PathLike, split: str | None = None) -> list[ShardName]:
    """Every `{split}-{i:05d}-of-{n:05d}.{arrow,parquet}` file in `directory`, in (split, index) order.

    A split whose shards are not exactly 0..n-1 is an error: a missing shard would silently drop data.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"shard directory not found: {directory}")
    shards = []
    for path in directory.iterdir():
        match = SHARD_NAME.match(path.name)
        if match and (split is None or match["split"] == split):
            shards.append(ShardName(path, match["split"], int(match["index"]), int(match["count"])))
    shards.sort(key=lambda s: (s.split, s.index))
    by_split: dict[str, list[ShardName]] = {}
    for shard in shards:
        by_split.setdefault(shard.split, []).append(shard)
    for name, group in by_split.items():
        counts = {s.count for s in group}
        if len(counts) != 1 or [s.index for s in group] != list(range(group[0].count)):
            raise ValueError(
                f"split {name!r} in {directory} is incomplete or inconsistent: have indices "
                f"{[s.index for s in group]} with shard counts {sorted(counts)}"
            )
    return shards


def token_shard_name(text_shard: str | os.PathLike) -> str:
    """The token shard of a text shard: same name, Arrow IPC."""
    return Path(text_shard).stem + TOKEN_SHARD_SUFFIX


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


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()
