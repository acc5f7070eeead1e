"""`c4clean run --format parquet`: same rows as Arrow, deterministic, read by the usual tools."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from c4clean.formats import parse_shard_name
from c4clean.pipelines import arrow_sink, pipeline
from c4clean.pipelines.options import RunOptions


def _run(sample_wet: Path, out: Path, fmt: str, workers: int = 1) -> dict:
    options = RunOptions(
        output=str(out), inputs=(str(sample_wet),), near_dedup=False, workers=workers, format=fmt
    )
    assert pipeline.run(options, echo=lambda _: None).exit_code == 0
    return json.loads((out / "manifest.json").read_text())


def _shards(out: Path, fmt: str) -> list[Path]:
    return sorted(p for p in out.rglob(f"*.{fmt}") if parse_shard_name(p.name))


def _rows(out: Path, fmt: str) -> dict[str, list[dict]]:
    """split -> rows, in shard then row order."""
    rows: dict[str, list[dict]] = {}
    for shard in _shards(out, fmt):
        split = parse_shard_name(shard.name)[0]
        rows.setdefault(split, []).extend(arrow_sink.read_shard(str(shard)).to_pylist())
    return rows


@pytest.fixture(scope="module")
def outputs(sample_wet, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("formats")
    manifests = {
        "arrow": _run(sample_wet, tmp / "arrow", "arrow"),
        "parquet": _run(sample_wet, tmp / "parquet", "parquet"),
    }
    return tmp, manifests


def test_parquet_has_the_same_rows_and_shard_names_as_arrow(outputs):
    tmp, manifests = outputs
    arrow, parquet = _rows(tmp / "arrow", "arrow"), _rows(tmp / "parquet", "parquet")
    assert sum(map(len, arrow.values())) > 50
    assert parquet == arrow
    assert [p.stem for p in _shards(tmp / "parquet", "parquet")] == [
        p.stem for p in _shards(tmp / "arrow", "arrow")
    ]
    assert not _shards(tmp / "parquet", "arrow")
    assert manifests["arrow"]["format"] == "arrow" and manifests["parquet"]["format"] == "parquet"
    assert manifests["parquet"]["splits"] == {
        split: dict(info) for split, info in manifests["arrow"]["splits"].items()
    }


def test_parquet_is_zstd_in_streaming_row_groups(outputs):
    tmp, _ = outputs
    shard = max(_shards(tmp / "parquet", "parquet"), key=lambda p: pq.ParquetFile(p).metadata.num_rows)
    meta = pq.ParquetFile(shard).metadata
    assert meta.num_rows > 0
    for g in range(meta.num_row_groups):
        assert meta.row_group(g).num_rows <= arrow_sink.BATCH_ROWS
        for c in range(meta.num_columns):
            assert meta.row_group(g).column(c).compression == "ZSTD"


def test_parquet_byte_identical_with_one_and_two_workers(outputs, sample_wet):
    tmp, manifests = outputs
    two = _run(sample_wet, tmp / "parquet-2", "parquet", workers=2)
    assert two["shards"] == manifests["parquet"]["shards"]  # names, rows, bytes and sha256
    for shard in _shards(tmp / "parquet", "parquet"):
        other = tmp / "parquet-2" / shard.relative_to(tmp / "parquet")
        assert other.read_bytes() == shard.read_bytes()


def test_rerun_in_the_other_format_replaces_the_shards(outputs, sample_wet):
    tmp, manifests = outputs
    out = tmp / "switch"
    _run(sample_wet, out, "arrow")
    manifest = _run(sample_wet, out, "parquet")
    assert not _shards(out, "arrow")
    assert [s["sha256"] for s in manifest["shards"]] == [s["sha256"] for s in manifests["parquet"]["shards"]]


def test_tokenizer_reads_parquet_like_arrow(outputs, tmp_path):
    from c4clean.tokenize.encode import encode_corpus
    from c4clean.tokenize.vocab import sample_lines, train_vocab

    tmp, _ = outputs
    text = {fmt: tmp / fmt for fmt in ("arrow", "parquet")}
    lines = {fmt: list(sample_lines(d, 20_000, split=None)) for fmt, d in text.items()}
    assert lines["arrow"] and lines["parquet"] == lines["arrow"]
    vocab = tmp_path / "vocab"
    train_vocab(text["arrow"], vocab, vocab_size=300, sample_bytes=50_000, num_threads=1)
    encoded = {fmt: encode_corpus(d, vocab, tmp_path / f"tokens-{fmt}")["shards"] for fmt, d in text.items()}
    for a, p in zip(encoded["arrow"], encoded["parquet"]):
        assert a["file"] == p["file"] and a["file"].endswith(".arrow")
        assert a["sha256"] == p["sha256"]
