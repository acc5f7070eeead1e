"""Pre-trained distillation: the loss, a frozen teacher of another shape, and teachers refused
before anything trains (other vocabulary, bad settings)."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from c4clean.cli import main
from c4clean.train.distill import Distiller, DistillError, check_settings, distillation_loss
from c4clean.train.trainer import TrainConfig, TrainingError, train


def _logits(seed, shape=(2, 5, 12)):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_loss_mixes_kl_at_temperature_with_the_label_loss():
    s, t = _logits(0), _logits(1)
    labels = torch.tensor([[1, 2, 3, -100, -100], [4, 5, 6, 7, -100]])
    label_loss = torch.tensor(3.0)
    assert distillation_loss(s, t, labels, label_loss, 0.0, 2.0, 10) == pytest.approx(3.0)
    assert distillation_loss(s, s.clone(), labels, label_loss, 1.0, 2.0, 10).item() == pytest.approx(
        0, abs=1e-6
    )
    keep = labels != -100
    ps, pt = F.log_softmax(s[keep][:, :10] / 2, -1), F.log_softmax(t[keep][:, :10] / 2, -1)
    kl = (pt.exp() * (pt - ps)).sum(-1).mean()
    got = distillation_loss(s, t, labels, label_loss, 0.3, 2.0, 10)
    assert got.item() == pytest.approx(0.3 * 4 * kl.item() + 0.7 * 3.0, rel=1e-5)
    t2 = t.clone()
    t2[~keep] += 100.0  # padding positions and rows past the vocabulary are not compared
    t2[..., 10:] -= 50.0
    assert distillation_loss(s, t2, labels, label_loss, 0.3, 2.0, 10).item() == pytest.approx(got.item())


@pytest.mark.parametrize("alpha,temperature", [(-0.1, 2.0), (1.5, 2.0), (0.5, 0.0), (0.5, -1.0)])
def test_bad_settings_are_refused(alpha, temperature):
    with pytest.raises(DistillError):
        check_settings(alpha, temperature)


def _cfg(token_dir, out, **kw):
    base = dict(
        preset="t5-v1_1-tiny",
        batch_size=4,
        steps=2,
        eval_every=0,
        eval_batches=1,
        progress=False,
        log_every=1,
        data_options={"input_length": 32},
    )
    return TrainConfig(data=str(token_dir), out=str(out), **{**base, **kw})


@pytest.fixture(scope="module")
def teacher(token_dir, tmp_path_factory):
    run = tmp_path_factory.mktemp("teacher") / "run"
    train(_cfg(token_dir, run, model_overrides={"num_layers": 3, "num_decoder_layers": 3}))
    return run


def test_student_of_another_shape_learns_from_a_frozen_teacher(token_dir, teacher, tmp_path):
    weights = sorted(teacher.glob("checkpoints/*/model.safetensors"))[-1]
    before = weights.read_bytes()
    student = _cfg(token_dir, tmp_path / "student", teacher=str(teacher), distill_alpha=0.7)
    train(student)
    assert weights.read_bytes() == before  # the teacher is never written
    losses = [json.loads(x) for x in (tmp_path / "student" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in losses if "loss" in r] == [1, 2]
    assert all(math.isfinite(r["loss"]) for r in losses if "loss" in r)
    saved = json.loads((tmp_path / "student" / "run.json").read_text())
    assert saved["train"]["teacher"] == str(teacher) and saved["train"]["distill_alpha"] == 0.7
    plain = _cfg(token_dir, tmp_path / "plain")
    train(plain)
    first = [
        next(
            r["loss"]
            for r in map(json.loads, (tmp_path / run / "metrics.jsonl").read_text().splitlines())
            if "loss" in r
        )
        for run in ("student", "plain")
    ]
    assert first[0] != first[1]  # the teacher's soft targets change the loss of the same batch


def test_teacher_is_loaded_in_eval_mode_without_gradients(token_dir, teacher):
    from c4clean.train.data import vocab_info

    d = Distiller.load(teacher, vocab_info(token_dir).to_json(), 0.5, 2.0, torch.device("cpu"))
    assert not d.teacher.training and not any(p.requires_grad for p in d.teacher.parameters())


def test_teacher_with_another_vocabulary_is_refused_before_training(token_dir, teacher, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    meta = json.loads((teacher / "run.json").read_text())
    meta["vocab"]["sha256"] = "0" * 64
    (other / "run.json").write_text(json.dumps(meta))
    with pytest.raises(TrainingError, match="another vocabulary"):
        train(_cfg(token_dir, tmp_path / "s", teacher=str(other)))
    assert not (tmp_path / "s" / "checkpoints").exists()
    with pytest.raises(TrainingError, match="not a c4clean run directory"):
        train(_cfg(token_dir, tmp_path / "s", teacher=str(tmp_path)))


@pytest.mark.parametrize(
    "args,message",
    [
        (["--distill-alpha", "0.5"], "need --teacher"),
        (["--teacher", ".", "--distill-alpha", "1.5"], "[0, 1]"),
        (["--teacher", ".", "--distill-temperature", "0"], "positive"),
    ],
)
def test_cli_refuses_bad_distillation_settings(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    out = CliRunner().invoke(main, ["train", "--input", ".", "--output", "r", *args])
    assert out.exit_code == 2 and message in out.output and "Traceback" not in out.output
