"""`--resume` after a killed run, and bad input files (counted, named, `--strict`)."""

from __future__ import annotations

import bz2
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from c4clean.cleaning import reasons
from c4clean.cli import main
from c4clean.pipelines import pipeline
from c4clean.pipelines.options import RunOptions

COPIES = 3


@pytest.fixture(scope="module")
def inputs(sample_wet, tmp_path_factory) -> Path:
    """Six WET files: three copies of each crawled sample file (same URLs and timestamps across
    copies, so URL dedup's tie rule matters too)."""
    folder = tmp_path_factory.mktemp("resume") / "in"
    folder.mkdir()
    for source in sorted(sample_wet.glob("CC-MAIN-*.wet.gz")):
        for copy in range(COPIES):
            shutil.copy(source, folder / f"copy{copy}-{source.name}")
    return folder


def _options(inputs: Path, out: Path, **extra) -> RunOptions:
    return RunOptions(output=str(out), inputs=(str(inputs),), near_dedup=False, workers=1, **extra)


def test_resume_after_kill_skips_finished_files_and_gives_identical_shards(inputs, tmp_path):
    reference = tmp_path / "uninterrupted"
    assert pipeline.run(_options(inputs, reference), echo=lambda _: None).exit_code == 0

    out = tmp_path / "resumed"
    work = out / ".work" / "files"
    command = [
        sys.executable,
        "-m",
        "c4clean.cli",
        "run",
        "--input",
        str(inputs),
        "--output",
        str(out),
        "--workers",
        "1",
        "--no-near-dedup",
    ]
    proc = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 120
        while not list(work.glob("*.json")) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.01)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    done = {p: p.stat().st_mtime_ns for p in work.glob("*")}
    finished = [p for p in done if p.suffix == ".json"]
    assert 1 <= len(finished) < 2 * COPIES, "the kill should land between the first and last file"
    assert not list(out.glob("data/*.arrow")) and not (out / "manifest.json").exists()

    outcome = pipeline.run(_options(inputs, out, resume=True, keep_work=True), echo=lambda _: None)
    assert outcome.exit_code == 0
    # Files finished before the kill were not read again: their results are untouched.
    for path, mtime in done.items():
        assert path.stat().st_mtime_ns == mtime, path
    assert len(list(work.glob("*.json"))) == 2 * COPIES
    names = sorted(p.name for p in (reference / "data").glob("*.arrow"))
    assert names == sorted(p.name for p in (out / "data").glob("*.arrow"))
    for name in names:
        assert (out / "data" / name).read_bytes() == (reference / "data" / name).read_bytes(), name
    # Same counters too (the resumed files' counts come from their saved results); times differ.
    assert _page_counters(out) == _page_counters(reference)


def _page_counters(out: Path) -> dict:
    counters = json.loads((out / "stats.json").read_text())["counters"]
    stages = counters.pop(reasons.NS_STAGES)
    counters["stages"] = {k: v for k, v in stages.items() if not k.endswith(":us")}
    return counters


@pytest.fixture(scope="module")
def bad_inputs(shared_data, sample_wet, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("bad")
    good = shared_data / "wet" / "synthetic" / "tfds_c4" / "cc_0.warc.wet"
    shutil.copy(good, folder / "good.wet")
    data = sorted(sample_wet.glob("*.wet.gz"))[0].read_bytes()
    (folder / "truncated.wet.gz").write_bytes(data[: len(data) // 2])  # cut mid gzip member
    (folder / "garbage.wet.gz").write_bytes(b"\x1f\x8b\x08\x00" + os.urandom(2000))
    (folder / "bzip2.wet.gz").write_bytes(bz2.compress(data[:5000]))  # not WET after decompression
    return folder


@pytest.fixture(scope="module")
def strict_run(bad_inputs, tmp_path_factory):
    out = tmp_path_factory.mktemp("bad-out") / "strict"
    result = CliRunner().invoke(
        main,
        [
            "run",
            "--input",
            str(bad_inputs),
            "--output",
            str(out),
            "--workers",
            "1",
            "--no-near-dedup",
            "--strict",
        ],
    )
    return result, out


def test_bad_files_are_counted_and_named_and_the_run_completes(bad_inputs, strict_run):
    result, out = strict_run
    stats = json.loads((out / "stats.json").read_text())
    truncated, garbage = str(bad_inputs / "truncated.wet.gz"), str(bad_inputs / "garbage.wet.gz")
    not_wet = str(bad_inputs / "bzip2.wet.gz")
    assert stats["files_with_errors"] == sorted([garbage, not_wet, truncated])
    assert [i["code"] for i in stats["read_issues"][not_wet]] == [reasons.READ_NOT_WET]
    # TFDS's fake pages have wrong Content-Length headers: listed as notes, not errors.
    good_issues = stats["read_issues"].get(str(bad_inputs / "good.wet"), [])
    assert not any(issue["code"].startswith("error:") for issue in good_issues)
    assert all(issue["code"].startswith("error:") for issue in stats["read_issues"][truncated])
    read = stats["counters"]["split-wet-file"]
    assert sum(v for k, v in read.items() if k.startswith("error:")) >= 2
    # Nothing lost silently: the pages before the damage went through the recipe.
    manifest = json.loads((out / "manifest.json").read_text())
    pages = {Path(i["file"]).name: i["pages"] for i in manifest["inputs"]}
    assert pages["truncated.wet.gz"] > 10 and pages["good.wet"] > 0
    assert manifest["splits"]["train"]["pages"] > 0
    assert "truncated.wet.gz" in result.output  # named on the terminal too


def test_strict_fails_the_run_and_default_does_not(bad_inputs, strict_run, tmp_path):
    result, _ = strict_run
    assert result.exit_code == 1
    relaxed = pipeline.run(_options(bad_inputs, tmp_path / "relaxed"), echo=lambda _: None)
    assert relaxed.exit_code == 0
