"""Checkpoints carry a sha256 per file; --resume and export skip a damaged newest checkpoint."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from safetensors.torch import load_file

from c4clean import cli, formats
from c4clean.train import checkpoint as ckpt
from c4clean.train.trainer import TrainConfig, train

FAST = {
    "preset": "t5-v1_1-tiny",
    "batch_size": 4,
    "data_options": {"input_length": 32},
    "eval_batches": 2,
    "eval_every": 0,
    "progress": False,
    "log_every": 1,
    "cpu_threads": 1,
}


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, token_dir) -> Path:
    """A run with checkpoints at steps 2 and 4 (and final/)."""
    run = tmp_path_factory.mktemp("run") / "r"
    train(TrainConfig(data=str(token_dir), out=str(run), steps=4, save_every=2, keep_checkpoints=0, **FAST))
    assert [s for s, _ in ckpt.list_checkpoints(run)] == [2, 4]
    return run


def _truncate(name):
    def damage(step_dir: Path):
        path = step_dir / name
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])

    return damage


def _remove(name):
    return lambda step_dir: (step_dir / name).unlink()


def _empty(step_dir: Path):
    for f in step_dir.iterdir():
        f.unlink()


def _overwrite_50_bytes(step_dir: Path):
    path = step_dir / formats.MODEL_WEIGHTS_FILE
    data = bytearray(path.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 50] = b"\x7f" * 50
    path.write_bytes(bytes(data))


DAMAGE = {
    "truncated weights": _truncate(formats.MODEL_WEIGHTS_FILE),
    "truncated state.pt": _truncate(formats.CHECKPOINT_STATE_FILE),
    "missing config.json": _remove(formats.MODEL_CONFIG_FILE),
    "empty step dir": _empty,
    "50 overwritten bytes": _overwrite_50_bytes,
}


def _damaged_copy(trained_run: Path, tmp_path: Path, damage) -> Path:
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    damage(ckpt.checkpoint_dir(run, 4))
    return run


def test_every_file_has_its_sha256(trained_run):
    for _, step_dir in ckpt.list_checkpoints(trained_run):
        sums = json.loads((step_dir / formats.CHECKPOINT_CHECKSUMS_FILE).read_text())["sha256"]
        assert sorted(sums) == sorted(
            [formats.MODEL_CONFIG_FILE, formats.MODEL_WEIGHTS_FILE, formats.CHECKPOINT_STATE_FILE]
        )
        assert sums[formats.MODEL_WEIGHTS_FILE] == formats.sha256_file(step_dir / formats.MODEL_WEIGHTS_FILE)
        ckpt.verify(step_dir, training_state=True)
    ckpt.verify(trained_run / "final")


@pytest.mark.parametrize("kind", sorted(DAMAGE))
def test_damaged_newest_checkpoint_is_skipped_with_a_warning(kind, trained_run, tmp_path, caplog):
    run = _damaged_copy(trained_run, tmp_path, DAMAGE[kind])
    with pytest.raises(ckpt.DamagedCheckpoint):
        ckpt.verify(ckpt.checkpoint_dir(run, 4), training_state=True)
    with caplog.at_level(logging.WARNING, logger="c4clean.train.checkpoint"):
        assert ckpt.latest_checkpoint(run) == ckpt.checkpoint_dir(run, 2)
    assert any(
        "skipping damaged checkpoint" in r.getMessage() and "step-00000004" in r.getMessage()
        for r in caplog.records
    )


@pytest.mark.parametrize("kind", ["truncated weights", "50 overwritten bytes", "empty step dir"])
def test_export_uses_the_newest_intact_checkpoint(kind, trained_run, tmp_path):
    run = _damaged_copy(trained_run, tmp_path, DAMAGE[kind])
    shutil.rmtree(run / "final")
    hf = tmp_path / "hf"
    result = CliRunner().invoke(
        cli.main, ["export", "--input", str(run), "--output", str(hf), "--weights-only"]
    )
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    exported = load_file(str(hf / "model.safetensors"))
    older = load_file(str(ckpt.checkpoint_dir(run, 2) / formats.MODEL_WEIGHTS_FILE))
    assert exported["shared.weight"].equal(older["shared.weight"])


def test_export_of_a_damaged_model_directory_is_a_one_line_error(trained_run, tmp_path):
    model_dir = tmp_path / "model"
    shutil.copytree(trained_run / "final", model_dir)
    _truncate(formats.MODEL_WEIGHTS_FILE)(model_dir)
    result = CliRunner().invoke(
        cli.main, ["export", "--input", str(model_dir), "--output", str(tmp_path / "hf"), "--weights-only"]
    )
    assert result.exit_code == 1
    assert result.output.strip().startswith("Error: ") and "sha256 differs" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("kind", ["truncated state.pt", "missing config.json"])
def test_resume_continues_from_the_newest_intact_checkpoint(kind, trained_run, tmp_path, token_dir, caplog):
    run = _damaged_copy(trained_run, tmp_path, DAMAGE[kind])
    with caplog.at_level(logging.WARNING, logger="c4clean.train.checkpoint"):
        train(TrainConfig(data=str(token_dir), out=str(run), steps=6, save_every=2, resume=True, **FAST))
    assert any("skipping damaged checkpoint" in r.getMessage() for r in caplog.records)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in records if "loss" in r and "event" not in r]
    assert steps == [1, 2, 3, 4, 5, 6]  # steps 3 and 4 logged once: trained again after step 2
    ckpt.verify(ckpt.checkpoint_dir(run, 4), training_state=True)  # the damaged one was rewritten
