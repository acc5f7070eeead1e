"""`c4clean run --variant en` end to end on the sample WET files (near-dedup on, the default):
output format, invariants of the recipe, determinism across worker counts, atomic shards, `stats`."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pyarrow as pa
import pytest
from click.testing import CliRunner

from c4clean.cleaning.rules import END_MARKS
from c4clean.cli import main
from c4clean.formats import parse_shard_name
from c4clean.pipelines import arrow_sink

NUM_SHARDS = 4


def _run(sample_wet: Path, out: Path, workers: int):
    args = [
        "run",
        "--input",
        str(sample_wet),
        "--output",
        str(out),
        "--workers",
        str(workers),
        "--num-shards",
        str(NUM_SHARDS),
    ]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def runs(sample_wet, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("en")
    one, two = tmp / "one-worker", tmp / "two-workers"
    output = _run(sample_wet, one, 1)
    _run(sample_wet, two, 2)
    return one, two, output


def _rows(shard: Path) -> list[dict]:
    with pa.memory_map(str(shard)) as source:
        return pa.ipc.open_file(source).read_all().to_pylist()


def test_shard_set_names_and_manifest(runs, sample_wet):
    out, _, _ = runs
    names = sorted(p.name for p in out.iterdir())
    expected_shards = [f"train-{i:05d}-of-{NUM_SHARDS:05d}.arrow" for i in range(NUM_SHARDS)]
    expected_shards.append("validation-00000-of-00001.arrow")
    expected_files = ["README.md", "data", "manifest.json", "near_duplicates.jsonl", "report.md"]
    expected_files += ["stats.json", "histograms.png"]
    assert names == sorted(expected_files)
    assert sorted(p.name for p in (out / "data").iterdir()) == sorted(expected_shards)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["variant"] == "en"
    assert manifest["options"]["near_dedup"] is True and manifest["options"]["near_dedup_position"]
    assert manifest["options"]["near_dedup_normalize"] == "nfkc"
    assert {"c4clean", "apache-beam", "pyarrow"} <= set(manifest["versions"])
    assert [Path(i["file"]).name for i in manifest["inputs"]] == sorted(
        p.name for p in sample_wet.glob("*.wet.gz")
    )
    for entry in manifest["inputs"]:
        assert entry["size"] == Path(entry["file"]).stat().st_size
    by_split = {}
    for shard in manifest["shards"]:
        data = (out / "data" / shard["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == shard["sha256"]
        assert shard["rows"] == len(_rows(out / "data" / shard["file"]))
        by_split[shard["split"]] = by_split.get(shard["split"], 0) + shard["rows"]
    assert {s: v["pages"] for s, v in manifest["splits"].items()} == by_split
    assert by_split["train"] > 100


def test_shards_are_plain_arrow_with_the_documented_columns(runs):
    out, _, _ = runs
    with pa.memory_map(str(out / "data" / "train-00000-of-00004.arrow")) as source:
        reader = pa.ipc.open_file(source)
        assert reader.schema.names[:5] == ["url", "text", "timestamp", "content_length", "language"]
        assert {"normalized_url", "content_type"} <= set(reader.schema.names)
        before = pa.total_allocated_bytes()
        table = reader.read_all()
        # Uncompressed: the columns are views of the mapped file, nothing is decoded into memory.
        assert pa.total_allocated_bytes() - before < 4096
        assert table.num_rows > 0 and len(table.column("text")[0].as_py()) > 0


def test_recipe_invariants_hold_on_every_page(runs):
    """What the C4 recipe guarantees about its output, checked independently of how it is done."""
    out, _, _ = runs
    seen_lines: dict[str, str] = {}
    for shard in sorted((out / "data").glob("*.arrow")):
        split, index, count = parse_shard_name(shard.name)
        rows = _rows(shard)
        assert [r["url"] for r in rows] == sorted(r["url"] for r in rows)
        for row in rows:
            # The validation split is md5(normalized url) % 1000 == 0.
            is_validation = int(hashlib.md5(row["normalized_url"].encode()).hexdigest(), 16) % 1000 == 0
            assert split == ("validation" if is_validation else "train")
            assert arrow_sink.shard_of(row["url"], count) == index
            assert row["language"] == "en"
            for line in row["text"].split("\n"):
                assert line.endswith(END_MARKS) and not line.endswith("...")
                assert len(line.split()) >= 5
                assert "{" not in line and "javascript" not in line.lower()
                # Global line dedup: no line (case-insensitively) appears in two places.
                key = line.strip().lower()
                assert key not in seen_lines, (row["url"], seen_lines.get(key))
                seen_lines[key] = row["url"]


def test_byte_identical_with_one_and_two_workers(runs):
    one, two, _ = runs
    shards = sorted(f"data/{p.name}" for p in (one / "data").glob("*.arrow"))
    assert shards == sorted(f"data/{p.name}" for p in (two / "data").glob("*.arrow"))
    for name in shards + ["near_duplicates.jsonl", "README.md"]:
        assert (one / name).read_bytes() == (two / name).read_bytes(), name


def test_stats_cover_every_stage_and_the_summary_chains(runs):
    out, _, output = runs
    stats = json.loads((out / "stats.json").read_text())
    for namespace in (
        "split-wet-file",
        "too-long-filter",
        "duplicate-url-filter",
        "clean-page",
        "dedupe-lines",
        "english-filter",
        "badwords-filter",
        "split",
    ):
        assert stats["counters"].get(namespace), namespace
    stages = stats["stages"]
    assert [s["stage"] for s in stages] == [
        "read",
        "length filter",
        "url dedup",
        "clean_page",
        "near dedup",
        "line dedup",
        "language id",
        "bad words",
        "split",
    ]
    for before, after in zip(stages, stages[1:]):
        assert after["pages_in"] == before["pages_out"], (before, after)
        assert after["pages_out"] <= after["pages_in"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert stages[-1]["pages_out"] == sum(v["pages"] for v in manifest["splits"].values())
    # The terminal summary and report.md show the same table.
    assert "| line dedup" in output and "| line dedup" in (out / "report.md").read_text()


def test_stats_command_prints_manifest_and_counters(runs):
    out, _, _ = runs
    result = CliRunner().invoke(main, ["stats", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert "variant en" in result.output
    assert f"| train      | {manifest['splits']['train']['pages']:>5} |" in result.output
    assert "line-filtered:global_duplicate" in result.output
    # The near-dedup audit trail: one row per page near-dedup removed, summarised.
    audit = [json.loads(line) for line in (out / "near_duplicates.jsonl").read_text().splitlines()]
    stats = json.loads((out / "stats.json").read_text())
    assert len(audit) == stats["counters"]["near-dedup"]["filtered:near_duplicate"] > 0
    assert all(row["jaccard"] >= 0.8 and row["url"] != row["kept_url"] for row in audit)
    clusters = len({row["kept_url"] for row in audit})
    assert f"{len(audit)} pages removed in {clusters} clusters" in result.output


def test_stats_command_rejects_a_folder_without_manifest(tmp_path):
    result = CliRunner().invoke(main, ["stats", str(tmp_path)])
    assert result.exit_code != 0 and "manifest.json" in result.output


def test_a_shard_never_appears_half_written(tmp_path, monkeypatch):
    """If the final rename fails, nothing exists under the shard's final name."""
    from c4clean.cleaning.page import Page

    def failing_rename(source, destination):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing_rename)  # a local path: `atomic.creating_fs`
    with pytest.raises(OSError):
        arrow_sink.write_shard(str(tmp_path), "train", 0, 1, [Page(url="u", text="t")])
    assert not (tmp_path / "train-00000-of-00001.arrow").exists()
