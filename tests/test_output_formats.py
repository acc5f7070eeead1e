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


# --- the output folder as the usual tools read it -------------------------------------------------


def _data_dir(out: Path) -> Path:
    """Where the shards of an output folder are (the dataset card lists them)."""
    return out / "data"


def _by_url(rows) -> list[dict]:
    return sorted(({k: r[k] for k in ("url", "text", "timestamp")} for r in rows), key=lambda r: r["url"])


def _expected(tmp: Path) -> dict[str, list[dict]]:
    return {split: _by_url(rows) for split, rows in _rows(tmp / "arrow", "arrow").items() if rows}


@pytest.mark.parametrize("fmt", ["arrow", "parquet"])
def test_datasets_load_dataset_reads_the_folder_as_it_is(outputs, fmt):
    datasets = pytest.importorskip("datasets")
    tmp, _ = outputs
    expected = _expected(tmp)
    assert set(expected) == {"train", "validation"}  # sample_data has validation pages
    loaded = datasets.load_dataset(str(tmp / fmt))
    assert {split: _by_url(loaded[split]) for split in loaded} == expected


def test_duckdb_and_polars_read_parquet_shards(outputs):
    duckdb = pytest.importorskip("duckdb")
    polars = pytest.importorskip("polars")
    tmp, _ = outputs
    expected = _by_url(r for rows in _expected(tmp).values() for r in rows)
    pattern = str(_data_dir(tmp / "parquet") / "*.parquet")
    got = duckdb.sql(f"SELECT url, text, timestamp FROM read_parquet('{pattern}') ORDER BY url").fetchall()
    assert [dict(zip(("url", "text", "timestamp"), row)) for row in got] == expected
    frame = polars.read_parquet(pattern).select("url", "text", "timestamp").sort("url")
    assert frame.to_dicts() == expected


@pytest.mark.parametrize("fmt", ["arrow", "parquet"])
def test_pyarrow_dataset_reads_the_shard_folder(outputs, fmt):
    import pyarrow.dataset as ds

    tmp, _ = outputs
    table = ds.dataset(str(_data_dir(tmp / fmt)), format="ipc" if fmt == "arrow" else fmt).to_table()
    expected = _by_url(r for rows in _expected(tmp).values() for r in rows)
    assert _by_url(table.to_pylist()) == expected


def test_load_dataset_with_an_empty_split(sample_wet, tmp_path):
    """The two crawled sample files alone have no validation page: the card lists train only."""
    datasets = pytest.importorskip("datasets")
    out = tmp_path / "out"
    files = tuple(str(p) for p in sorted(sample_wet.glob("CC-MAIN-*.wet.gz")))
    options = RunOptions(output=str(out), inputs=files, near_dedup=False, workers=1, format="parquet")
    assert pipeline.run(options, echo=lambda _: None).exit_code == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["splits"]["validation"]["pages"] == 0
    loaded = datasets.load_dataset(str(out))
    assert list(loaded) == ["train"] and len(loaded["train"]) == manifest["splits"]["train"]["pages"]


def test_dataset_card_states_recipe_counts_licences_and_citation(outputs):
    tmp, manifests = outputs
    card = (tmp / "parquet" / "README.md").read_text()
    assert card.startswith("---\nconfigs:\n")
    for shard in manifests["parquet"]["shards"]:
        assert (f'"data/{shard["file"]}"' in card) == (shard["rows"] > 0)
    assert "variant `en`" in card and "badwords_fraction=1.0" in card
    assert "| clean_page" in card and "| validation |" in card  # stage and split tables
    assert "CC-BY-4.0" in card and "Apache-2.0" in card and "Common Crawl terms of use" in card
    assert "@article{2019t5" in card


def test_report_and_stats_show_tokens_and_histograms(outputs):
    from click.testing import CliRunner

    from c4clean.cli import main
    from c4clean.pipelines import histograms

    tmp, manifests = outputs
    out = tmp / "parquet"
    stats = json.loads((out / "stats.json").read_text())
    h = histograms.from_counters(stats["counters"])
    read = stats["counters"]["split-wet-file"]["passed"]
    written = sum(info["pages"] for info in manifests["parquet"]["splits"].values())
    for measure in histograms.MEASURES:
        assert sum(h[measure]["before"].values()) == read
        assert sum(h[measure]["after"].values()) == written
    assert (out / histograms.PNG).read_bytes().startswith(b"\x89PNG")
    report = (out / "report.md").read_text()
    assert f"]({histograms.PNG})" in report and "pages before cleaning" in report
    words = manifests["parquet"]["splits"]["train"]["words"]
    assert words > 1000 and f"{words:,}" in report  # tokens per split, with thousands separators
    result = CliRunner().invoke(main, ["stats", str(out)])
    assert result.exit_code == 0, result.output
    assert f"{words:,}" in result.output and "lines per page" in result.output
