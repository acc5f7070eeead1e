"""Shards written from per-file pieces: each piece sorted, the streaming merge gives the bytes of a
whole-shard write (Arrow IPC and Parquet, several batches, empty pieces), and `WriteShards` groups
only the pieces' records."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from c4clean.cleaning.page import Page
from c4clean.formats import text_schema
from c4clean.pipelines import arrow_sink
from c4clean.pipelines.transforms import WriteShards


def _pages(n: int, seed: int, null_share: float = 0.2) -> list[Page]:
    rng = random.Random(seed)
    return [
        Page(
            url=f"http://{rng.randint(0, 10**6):07d}.example/" + "x" * rng.randint(0, 30),
            text="é" * rng.randint(0, 90) + " words here",
            timestamp="2019-01-15T00:" * rng.randint(0, 2),
            content_length=str(rng.randint(0, 10 ** rng.randint(0, 5))),
            language=None if rng.random() < null_share else "en" * rng.randint(0, 2),
            normalized_url="n",
            content_type="text/plain",
        )
        for _ in range(n)
    ]


def _whole_table_bytes(pages: list[Page], fmt: str) -> bytes:
    """How shards were written before pieces: the whole shard as one table, sorted by (url, text)."""
    schema = text_schema()
    rows = sorted(pages, key=lambda p: (p.url, p.text))
    table = pa.Table.from_pydict({f.name: [getattr(p, f.name) for p in rows] for f in schema}, schema=schema)
    sink = pa.BufferOutputStream()
    if fmt == "parquet":
        pq.write_table(table, sink, compression="zstd", row_group_size=arrow_sink.BATCH_ROWS)
    else:
        with pa.ipc.new_file(sink, schema) as writer:
            writer.write_table(table, max_chunksize=arrow_sink.BATCH_ROWS)
    return sink.getvalue().to_pybytes()


def _check_record(record: dict, data: bytes, pages: list[Page]) -> None:
    assert record["rows"] == len(pages)
    assert record["bytes"] == len(data) and record["sha256"] == hashlib.sha256(data).hexdigest()
    assert record["text_bytes"] == sum(len(p.text.encode()) for p in pages)
    assert record["words"] == sum(len(p.text.split()) for p in pages)


@pytest.mark.parametrize("fmt", ["arrow", "parquet"])
@pytest.mark.parametrize("batch_rows, n", [(8, 0), (8, 1), (8, 700), (7, 300), (1024, 2500)])
def test_streaming_write_has_the_bytes_of_a_whole_table_write(tmp_path, monkeypatch, fmt, batch_rows, n):
    monkeypatch.setattr(arrow_sink, "BATCH_ROWS", batch_rows)
    pages = _pages(n, seed=n + batch_rows, null_share=0.3 if n % 2 else 0.0)
    record = arrow_sink.write_shard(str(tmp_path), "train", 0, 1, pages, fmt)
    data = (tmp_path / record["file"]).read_bytes()
    assert data == _whole_table_bytes(pages, fmt)
    _check_record(record, data, pages)
    assert json.loads((tmp_path / (record["file"] + ".json")).read_text()) == record
    assert [p.name for p in tmp_path.iterdir() if ".tmp" in p.name] == []


@pytest.mark.parametrize("fmt, fan_in", [("arrow", 64), ("parquet", 64), ("arrow", 2), ("parquet", 3)])
def test_merged_pieces_have_the_bytes_of_the_whole_shard(tmp_path, monkeypatch, fmt, fan_in):
    monkeypatch.setattr(arrow_sink, "BATCH_ROWS", 16)  # pieces and shard of several batches
    monkeypatch.setattr(arrow_sink, "PIECE_BATCH_ROWS", 5)
    monkeypatch.setattr(arrow_sink, "MERGE_FAN_IN", fan_in)  # 2, 3: merged in rounds
    pages = _pages(900, seed=3)
    rng = random.Random(4)
    parts: list[list[Page]] = [[] for _ in range(5)]  # the last one stays empty
    for page in pages:
        parts[rng.randrange(4)].append(page)
    paths = []
    for position, part in enumerate(parts):
        path = str(tmp_path / "pieces" / arrow_sink.piece_name("train", 0, 1, position))
        assert arrow_sink.write_piece(path, part) == len(part)
        rows = list(arrow_sink.piece_rows(path))
        assert rows == sorted(rows, key=lambda r: (r[0], r[1])) and len(rows) == len(part)
        paths.append(path)
    assert pa.ipc.open_file(paths[0]).num_record_batches > 1

    merged = arrow_sink.write_rows(
        str(tmp_path / "merged"), "train", 0, 1, arrow_sink.merge_pieces(paths, ("train", 0, 1)), fmt
    )
    whole = arrow_sink.write_shard(str(tmp_path / "whole"), "train", 0, 1, pages, fmt)
    data = (tmp_path / "merged" / merged["file"]).read_bytes()
    assert merged == whole
    assert data == (tmp_path / "whole" / whole["file"]).read_bytes() == _whole_table_bytes(pages, fmt)
    _check_record(merged, data, pages)
    rounds = sorted(p.name for p in (tmp_path / "pieces").iterdir() if ".m" in p.name)
    assert bool(rounds) == (fan_in < len(paths))  # intermediate pieces, beside the pieces
    assert not [p for p in tmp_path.rglob("*") if ".tmp" in p.name]


def test_write_shards_groups_piece_records_and_merges_them(tmp_path):
    pages = _pages(60, seed=5)
    shard_of = {page.url: arrow_sink.shard_of(page.url, 2) for page in pages}
    records = []
    for position in (2, 0, 1):  # pieces arrive in any order
        for index in (0, 1):
            part = [p for i, p in enumerate(pages) if i % 3 == position and shard_of[p.url] == index]
            path = str(tmp_path / "pieces" / arrow_sink.piece_name("train", index, 2, position))
            records.append((("train", index, 2), (position, path, arrow_sink.write_piece(path, part))))
    staging = tmp_path / "staging"
    with beam.Pipeline() as p:
        _ = p | beam.Create(records) | WriteShards(str(staging), "arrow")
    for index in (0, 1):
        mine = [p for p in pages if shard_of[p.url] == index]
        name = f"train-0000{index}-of-00002.arrow"
        assert (staging / name).read_bytes() == _whole_table_bytes(mine, "arrow")
        assert json.loads((staging / (name + ".json")).read_text())["rows"] == len(mine)


def test_piece_names_are_unique_per_shard_and_file():
    names = {
        arrow_sink.piece_name(s, i, 8, f) for s in ("train", "validation") for i in range(8) for f in range(3)
    }
    assert len(names) == 2 * 8 * 3
    assert all(Path(n).suffix == ".arrow" for n in names)
