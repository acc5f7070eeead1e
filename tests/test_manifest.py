"""Describing and committing a run's output: the pure builders, and `commit` on a staged folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from c4clean import atomic, formats
from c4clean.cleaning import reasons
from c4clean.cleaning.page import Page
from c4clean.pipelines import arrow_sink, manifest, perfile, steps
from c4clean.pipelines.options import RunOptions


def _summary(name: str, issues=(), pages: int = 3, size: int = 100) -> perfile.FileSummary:
    return perfile.FileSummary(
        input=name,
        local_path=name,
        pages=pages,
        counters={reasons.NS_READ: {reasons.PASSED: pages}},
        issues=[{"file": name, "code": code, "record_index": 1, "detail": ""} for code in issues],
        identity={"size": size, "mtime": 0},
    )


def _record(split: str, shard: int, num: int, rows: int) -> dict:
    return {
        "split": split,
        "shard": shard,
        "num_shards": num,
        "file": formats.shard_name(split, shard, num),
        "rows": rows,
        "bytes": 10 * rows,
        "text_bytes": 7 * rows,
        "words": 2 * rows,
        "sha256": "0" * 64,
    }


def test_stage_rows_follow_pipeline_order_and_skip_absent_stages():
    stages = {
        f"{steps.SPLIT}:in": 4,
        f"{steps.SPLIT}:out": 4,
        f"{steps.READ}:in": 10,
        f"{steps.READ}:out": 9,
        f"{steps.READ}:bytes": 900,
        f"{steps.READ}:us": 1_234_567,
    }
    rows = manifest.stage_rows({reasons.NS_STAGES: stages})
    assert [r["stage"] for r in rows] == [steps.READ, steps.SPLIT]
    assert rows[0] == {"stage": "read", "pages_in": 10, "pages_out": 9, "bytes_out": 900, "seconds": 1.23}
    assert rows[1]["bytes_out"] is None and rows[1]["seconds"] is None
    assert manifest.stage_rows({}) == []


def test_build_stats_names_files_with_errors_apart_from_other_issues():
    summaries = {
        "a": _summary("a", [reasons.DOWNLOAD_FAILED]),
        "b": _summary("b", ["warning:gzip_trailer_cut"]),
        "c": _summary("c"),
        "d": None,  # the pipeline left no result
    }
    stats = manifest.build_stats({"ns": {"x": 1}}, summaries, 1.5)
    assert formats.TEXT_SHARDS.check(stats, "stats.json")
    assert stats["files_with_errors"] == ["a"] and stats["files_with_issues"] == ["a", "b"]
    assert sorted(stats["read_issues"]) == ["a", "b"] and stats["counters"] == {"ns": {"x": 1}}
    assert stats["wall_seconds"] == 1.5


def test_build_manifest_sums_splits_and_describes_every_input(tmp_path):
    options = RunOptions(output=str(tmp_path), inputs=("a", "b"), near_dedup=False, workers=1)
    records = [_record("train", 0, 2, 5), _record("train", 1, 2, 3), _record("validation", 0, 1, 0)]
    built = manifest.build_manifest(options, records, {"a": _summary("a"), "b": None}, 1000.0, 2.0)
    assert formats.TEXT_SHARDS.check(built, "manifest.json") and built["format"] == "arrow"
    assert built["splits"] == {
        "train": {"pages": 8, "shards": 2, "text_bytes": 56, "words": 16},
        "validation": {"pages": 0, "shards": 1, "text_bytes": 0, "words": 0},
    }
    assert built["inputs"] == [
        {"file": "a", "size": 100, "pages": 3, "issues": 0},
        {"file": "b", "size": None, "pages": None, "issues": 0},
    ]
    assert [s["file"] for s in built["shards"]] == [r["file"] for r in records]
    assert "words" not in built["shards"][0] and built["created_unix"] == 1000
    assert [f["name"] for f in built["schema"]] == formats.text_schema().names
    assert manifest.pages_out(built) == 8
    report = manifest.render_report(options, manifest.build_stats({}, {"a": _summary("a")}, 2.0), built)
    assert report.startswith("# c4clean run: en\n\n2 input files, 8 pages out, 2.0 s wall time")
    assert "Files with read errors: none." in report and report.endswith("(notes, repairs): none.\n")
    assert "| train      |     8 |             16 |      2 |         56 |" in report


def test_commit_completes_moves_and_describes_the_staged_shards(tmp_path):
    out = tmp_path / "out"
    options = RunOptions(
        output=str(out), inputs=("a.wet.gz",), near_dedup=False, num_shards=2, keep_work=True, workers=1
    )
    layout = options.layout
    page = Page(url="http://a.com/", text="Hello there.", timestamp="t", normalized_url="a.com")
    arrow_sink.write_shard(layout.staging_dir, "train", 1, 2, [page])  # train 0 and validation: empty
    piece = arrow_sink.piece_name("train", 1, 2, 0)  # what the shard was merged from: temporary
    arrow_sink.write_piece(f"{layout.pieces_dir}/{piece}", [page])
    atomic.write_bytes_fs(layout.counts, json.dumps({"ns": {"x": 2}}).encode())
    _, json_path = perfile.work_paths(layout.files_dir, "a.wet.gz", options.per_file_signature())
    atomic.write_bytes_fs(json_path, _summary("a.wet.gz", pages=1).to_json())
    out.mkdir(exist_ok=True)
    (out / "train-00000-of-00003.arrow").write_bytes(b"an earlier run's shard")

    lines = []
    outcome = manifest.commit(options, [("a.wet.gz", "a.wet.gz")], 0.0, echo=lines.append)
    assert outcome.exit_code == 0
    names = sorted(p.name for p in out.iterdir())
    expected = [".work", "README.md", "data", "histograms.png", "manifest.json", "report.md", "stats.json"]
    assert names == expected
    assert not Path(layout.pieces_dir).exists() and Path(layout.files_dir).parent.is_dir()
    assert sorted(p.name for p in (out / "data").iterdir()) == [
        "train-00000-of-00002.arrow",
        "train-00001-of-00002.arrow",
        "validation-00000-of-00001.arrow",
    ]
    written, stats = manifest.load_output(str(out))
    assert written == outcome.manifest and stats["counters"] == {"ns": {"x": 2}}
    assert written["splits"]["train"]["pages"] == 1 and written["splits"]["validation"]["pages"] == 0
    assert any("1 pages in 3 shards" in line for line in lines)


def test_commit_without_a_per_file_result_fails_the_run(tmp_path):
    options = RunOptions(output=str(tmp_path / "out"), inputs=("a",), near_dedup=False, workers=1)
    atomic.write_bytes_fs(options.layout.counts, b"{}")
    lines = []
    outcome = manifest.commit(options, [("a", "a")], 0.0, echo=lines.append)
    assert outcome.exit_code == 1 and "no per-file result for: a" in lines[-1]
    assert outcome.manifest["inputs"] == [{"file": "a", "size": None, "pages": None, "issues": 0}]


def test_load_output_of_a_folder_without_manifest(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a finished c4clean output"):
        manifest.load_output(str(tmp_path))
