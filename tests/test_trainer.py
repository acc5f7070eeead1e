"""Trainer: exact resume after SIGKILL, checkpoints, bad input, optimizers (tiny model, real tokens)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from c4clean import atomic
from c4clean.train import checkpoint as ckpt
from c4clean.train.optim import Adafactor, build_optimizer, cosine_schedule, inverse_sqrt_schedule
from c4clean.train.trainer import TrainConfig, TrainingError, train

REPO = Path(__file__).resolve().parents[1]
# tiny model, short sequences: each step is milliseconds of compute
FAST = {
    "preset": "t5-v1_1-tiny",
    "batch_size": 4,
    "data_options": {"input_length": 32},
    "eval_batches": 2,
    "progress": False,
    "log_every": 1,
}


def _cfg(token_dir, out, **kw) -> TrainConfig:
    return TrainConfig(data=str(token_dir), out=str(out), **{**FAST, **kw})


def _records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _comparable(records):
    """The logged values that must be identical between runs (timings are not)."""
    keys = ("step", "loss", "lr", "grad_norm", "val_loss")
    return [{k: r[k] for k in keys if k in r} for r in records if "event" not in r]


CLI = [
    sys.executable,
    "-m",
    "c4clean.cli",
    "train",
    "--preset",
    "t5-v1_1-tiny",
    "--steps",
    "8",
    "--batch-size",
    "4",
    "--input-length",
    "32",
    "--save-every",
    "3",
    "--eval-every",
    "4",
    "--eval-batches",
    "2",
    "--log-every",
    "1",
    "--no-progress",
]
# same thread count in every process: float reductions, hence losses, depend on it
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def kill_after_first_checkpoint(cmd: list[str], run: Path) -> int:
    """Start the training `cmd` writing to `run`, SIGKILL it right after its first checkpoint and
    return the step of the newest checkpoint it left (the kill must land before the run ends)."""
    stderr = run.parent / f"{run.name}.stderr"
    with open(stderr, "wb") as err:
        proc = subprocess.Popen(cmd, env=ENV, cwd=REPO, stdout=subprocess.DEVNULL, stderr=err)
    deadline = time.time() + 120
    while ckpt.latest_checkpoint(run) is None:
        assert proc.poll() is None, f"run ended before it could be killed: {stderr.read_text()[-2000:]}"
        assert time.time() < deadline, "no checkpoint within 120 s"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run / "final").exists(), "the run finished before the kill: nothing was tested"
    return int(ckpt.latest_checkpoint(run).name.split("-")[1])


def test_resume_after_sigkill_gives_identical_batches_and_losses(token_dir, tmp_path):
    ref, run = tmp_path / "ref", tmp_path / "run"
    subprocess.run(
        [*CLI, "--data", str(token_dir), "--out", str(ref)],
        check=True,
        env=ENV,
        cwd=REPO,
        capture_output=True,
    )
    killed_at = kill_after_first_checkpoint([*CLI, "--data", str(token_dir), "--out", str(run)], run)
    assert killed_at < 8  # the first checkpoint is step 3 of 8
    with open(run / "metrics.jsonl", "a") as f:  # as if the kill had cut a log line short
        f.write('{"step": 7, "loss": 3.1')
    subprocess.run(
        [*CLI, "--data", str(token_dir), "--out", str(run), "--resume"],
        check=True,
        env=ENV,
        cwd=REPO,
        capture_output=True,
    )
    expected, got = _comparable(_records(ref)), _comparable(_records(run))
    assert [r["step"] for r in expected if "loss" in r] == list(range(1, 9))
    assert got == expected  # exact float equality, evaluations included
    # the final weights are bit-identical too
    a = ckpt.load_model_dir(ref / "final").state_dict()
    b = ckpt.load_model_dir(run / "final").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_checkpoint_contents_load_without_pickle(token_dir, tmp_path):
    summary = train(_cfg(token_dir, tmp_path / "r", steps=2, save_every=2, eval_every=2))
    assert summary["step"] == 2 and summary["val_loss"] is not None
    state = ckpt.load_state(ckpt.latest_checkpoint(tmp_path / "r"))  # torch.load(weights_only=True)
    assert state["step"] == 2
    assert set(state["rng"][0]) >= {"torch", "numpy", "python"}
    assert state["loader"][0]["step"] == 2  # the loader's position: two batches consumed
    assert state["optimizer"]["state"] and state["scheduler"]["last_epoch"] == 2
    assert not list((tmp_path / "r" / "checkpoints").glob(".tmp-*"))


def test_grad_accumulation_matches_full_batch(token_dir, tmp_path):
    full = train(_cfg(token_dir, tmp_path / "full", steps=2, eval_every=0, save_every=100))
    accum = train(_cfg(token_dir, tmp_path / "accum", steps=2, eval_every=0, save_every=100, grad_accum=2))
    a = _comparable(_records(tmp_path / "full"))
    b = _comparable(_records(tmp_path / "accum"))
    for x, y in zip(a, b):
        assert x["loss"] == pytest.approx(y["loss"], rel=1e-5)
    assert full["loss"] == pytest.approx(accum["loss"], rel=1e-5)


def test_bad_inputs_give_clear_errors(token_dir, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(TrainingError, match="manifest"):
        train(_cfg(empty, tmp_path / "a", steps=1))

    # a token directory whose manifest lost its vocabulary
    novocab = tmp_path / "novocab"
    novocab.mkdir()
    for f in token_dir.iterdir():
        (novocab / f.name).symlink_to(f)
    manifest = json.loads((token_dir / "manifest.json").read_text())
    del manifest["vocab"]
    (novocab / "manifest.json").unlink()
    (novocab / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(TrainingError, match="vocab"):
        train(_cfg(novocab, tmp_path / "b", steps=1))

    with pytest.raises(TrainingError, match="flex needs a CUDA device"):
        train(_cfg(token_dir, tmp_path / "c", steps=1, attention="flex", device="cpu"))


def test_resume_refuses_other_vocabulary_and_model_shape(token_dir, tmp_path):
    run = tmp_path / "run"
    train(_cfg(token_dir, run, steps=1, save_every=1, eval_every=0))
    with pytest.raises(TrainingError, match="already has checkpoints"):
        train(_cfg(token_dir, run, steps=2))
    with pytest.raises(TrainingError, match="another shape"):
        train(_cfg(token_dir, run, steps=2, resume=True, model_overrides={"d_ff": 512}))
    other = tmp_path / "other_vocab"
    other.mkdir()
    for f in token_dir.iterdir():
        if f.name != "manifest.json":
            (other / f.name).symlink_to(f)
    manifest = json.loads((token_dir / "manifest.json").read_text())
    manifest["vocab"]["sha256"] = "0" * 64
    (other / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(TrainingError, match="vocabulary mismatch"):
        train(_cfg(other, run, steps=2, resume=True))
    # loading weights of another shape directly: a clear error, not a state-dict traceback
    from c4clean.train.model import T5, preset

    with pytest.raises(ValueError, match="another model shape"):
        ckpt.load_model_weights(
            T5(preset("t5-v1_1-tiny", vocab_size=1024, d_ff=64)), ckpt.latest_checkpoint(run)
        )


def test_nan_loss_stops_without_writing_a_checkpoint(token_dir, tmp_path):
    run = tmp_path / "nan"
    # AdamW moves every weight by ~lr per step whatever the gradient: 1e30 overflows the logits
    with pytest.raises(TrainingError, match="loss is nan|loss is inf"):
        train(
            _cfg(
                token_dir,
                run,
                steps=6,
                save_every=1,
                eval_every=0,
                optimizer="adamw",
                lr=1e30,
                warmup_steps=1,
                clip_grad_norm=0.0,
            )
        )
    steps = [s for s, _ in ckpt.list_checkpoints(run)]
    assert steps == [1]  # the finite step was saved, nothing after the NaN
    assert not list((run / "checkpoints").glob(".tmp-*"))


def test_atomic_dir_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "checkpoints" / "step-00000005"
    with pytest.raises(RuntimeError):
        with atomic.replacing_dir(target) as tmp:
            (tmp / "model.safetensors").write_bytes(b"half")
            raise RuntimeError("killed mid-write")
    assert not target.exists() and list(target.parent.iterdir()) == []
    # a directory left by a SIGKILLed writer is never mistaken for a checkpoint
    (target.parent / ".tmp-step-00000009-123").mkdir()
    assert ckpt.latest_checkpoint(tmp_path) is None
    ckpt.remove_stale_temporaries(tmp_path)  # what a resumed run does first
    assert list(target.parent.iterdir()) == []


def test_adafactor_matches_transformers_reference():
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    shapes = [(128, 256), (256,), (32, 4)]  # factored matrix, vector, small (unfactored) matrix
    ours = [torch.nn.Parameter(torch.randn(s)) for s in shapes]
    ref = [torch.nn.Parameter(p.detach().clone()) for p in ours]
    opt_a = Adafactor(ours, lr=0.01)
    opt_b = transformers.optimization.Adafactor(
        ref,
        lr=0.01,
        scale_parameter=True,
        relative_step=False,
        warmup_init=False,
        decay_rate=-0.8,
        clip_threshold=1.0,
    )
    for _ in range(3):
        grads = [torch.randn(s) for s in shapes]
        for p, q, g in zip(ours, ref, grads):
            p.grad, q.grad = g.clone(), g.clone()
        opt_a.step()
        opt_b.step()
    # transformers factors every matrix; Mesh TF (ours) only dims >= 128: compare where both factor or neither
    torch.testing.assert_close(ours[0], ref[0], atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(ours[1], ref[1], atol=1e-6, rtol=1e-5)
    assert "exp_avg_sq" in opt_a.state[ours[2]]


def test_schedules():
    isr = inverse_sqrt_schedule(10_000)
    # T5: lr(n) = 1/sqrt(max(n, 10^4)) with base 0.01, i.e. 0.01 for 10k steps then rsqrt decay
    assert [0.01 * isr(n) for n in (0, 9_999)] == [0.01, 0.01]
    assert 0.01 * isr(39_999) == pytest.approx(1 / (40_000**0.5))
    cos = cosine_schedule(10, 110, 0.01)
    assert cos(0) == pytest.approx(0.1) and cos(9) == pytest.approx(1.0)
    assert cos(60) == pytest.approx(0.505) and cos(110) == pytest.approx(0.01)
    model = torch.nn.Linear(4, 4)
    opt, sched = build_optimizer("adamw", model, 1e-3, 10, 110)
    assert isinstance(opt, torch.optim.AdamW) and sched.get_last_lr()[0] == pytest.approx(1e-4)
    with pytest.raises(ValueError, match="unknown optimizer"):
        build_optimizer("sgd", model, None, 1, 1)


def test_ddp_two_cpu_ranks_match_one_process(token_dir, tmp_path):
    """torchrun with 2 gloo ranks (global batch split by the loader) trains like 1 process on the whole
    batch."""
    args = [
        "--data",
        str(token_dir),
        "--preset",
        "t5-v1_1-tiny",
        "--steps",
        "2",
        "--batch-size",
        "4",
        "--input-length",
        "32",
        "--eval-every",
        "2",
        "--eval-batches",
        "1",
        "--save-every",
        "2",
        "--log-every",
        "1",
        "--no-progress",
    ]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "-m",
            "c4clean.cli",
            "train",
            *args,
            "--out",
            str(tmp_path / "ddp"),
        ],
        check=True,
        env=ENV,
        cwd=REPO,
        capture_output=True,
    )
    subprocess.run(
        [sys.executable, "-m", "c4clean.cli", "train", *args, "--out", str(tmp_path / "one")],
        check=True,
        env=ENV,
        cwd=REPO,
        capture_output=True,
    )
    ddp, one = _comparable(_records(tmp_path / "ddp")), _comparable(_records(tmp_path / "one"))
    assert [r["step"] for r in ddp] == [r["step"] for r in one] == [1, 2, 2]
    for a, b in zip(ddp, one):
        for key in ("loss", "val_loss", "grad_norm"):
            if key in b:
                assert a[key] == pytest.approx(b[key], rel=1e-4)
    assert len(ckpt.load_state(ckpt.latest_checkpoint(tmp_path / "ddp"))["loader"]) == 2  # every rank's state


def test_init_from_hugging_face_directory(token_dir, tmp_path):
    """--init HF_DIR starts from those weights: the first logged loss is that model's loss on batch 1."""
    from c4clean.train import data as D
    from c4clean.train.hf_export import export_hf
    from c4clean.train.model import T5, preset

    torch.manual_seed(3)
    start = T5(preset("t5-v1_1-tiny", vocab_size=1024))  # 900 token ids -> 1024 rows
    export_hf(start, tmp_path / "hf")
    first = next(iter(D.make_loader(token_dir, "train", batch_size=4, input_length=32, num_workers=0)))
    with torch.no_grad():
        expected = start(**first)["loss"].item()
    train(_cfg(token_dir, tmp_path / "run", steps=1, eval_every=0, save_every=1, init=str(tmp_path / "hf")))
    logged = [r for r in _records(tmp_path / "run") if "loss" in r][0]["loss"]
    assert logged == pytest.approx(expected, rel=1e-6)


def test_max_tokens_subset_is_still_scored_on_the_whole_validation_split(token_dir):
    """Size ablations train on a prefix of the corpus but must compare runs on the same validation
    data: `max_tokens` limits the training stream only."""
    from c4clean.train.trainer import open_token_data

    options = {"input_length": 32, "max_tokens": 2000}
    data = open_token_data(
        token_dir, micro_batch=4, eval_batch=4, seed=0, rank=0, world_size=1, options=options
    )
    full = open_token_data(
        token_dir, micro_batch=4, eval_batch=4, seed=0, rank=0, world_size=1, options={"input_length": 32}
    )
    assert data.train().dataset.stream_tokens == 2000
    assert data.validation().dataset.stream_tokens == full.validation().dataset.stream_tokens > 2000


def _adafactor_reference(tensors: dict, hf_adafactor):
    """Reference per original tensor: transformers' Adafactor with T5's settings where it factors as
    Mesh TF does (both dims >= 128, or a vector), else our Adafactor on the standalone tensor
    (transformers factors every matrix, Mesh TF not those with a dim < 128)."""
    params = {k: torch.nn.Parameter(v.detach().clone()) for k, v in tensors.items()}
    mesh_like = [p for p in params.values() if p.dim() == 1 or min(p.shape) >= 128]
    others = [p for p in params.values() if p.dim() == 2 and min(p.shape) < 128]
    hf = hf_adafactor(
        mesh_like,
        lr=0.01,
        scale_parameter=True,
        relative_step=False,
        warmup_init=False,
        decay_rate=-0.8,
        clip_threshold=1.0,
    )
    return params, [hf, Adafactor(others, lr=0.01)]


def test_adafactor_updates_every_original_tensor_as_if_unfused():
    """Fused q/k/v, cross k/v and wi_0/wi_1 get exactly the updates of separate Mesh TF variables."""
    transformers = pytest.importorskip("transformers")
    from c4clean.train.hf_export import to_hf_state_dict
    from c4clean.train.model import T5, preset

    torch.manual_seed(0)
    # every fused part is >= 128 x 128, so factoring, RMS scale and clipping all matter
    cfg = preset("t5-v1_1-tiny", vocab_size=256)
    model = T5(cfg)
    naive = T5(cfg)  # the same weights under Adafactor that sees each fused tensor as one variable
    naive.load_state_dict(model.state_dict())
    opt, _ = build_optimizer("adafactor", model, 0.01, 10, 10)
    opt_naive = Adafactor(naive.parameters(), lr=0.01)
    ref, ref_opts = _adafactor_reference(to_hf_state_dict(model), transformers.optimization.Adafactor)
    for step in range(3):
        gen = torch.Generator().manual_seed(step)
        ids = torch.randint(2, 250, (4, 16), generator=gen)
        labels = torch.randint(2, 250, (4, 8), generator=gen)
        model.zero_grad()
        model(input_ids=ids, labels=labels)["loss"].backward()
        for p, q in zip(model.parameters(), naive.parameters()):
            q.grad = p.grad.clone()
        # identical gradients, split into the original tensors
        grads = to_hf_state_dict(_GradView(model))
        for name, p in ref.items():
            p.grad = grads[name].clone()
        for o in (opt, opt_naive, *ref_opts):
            o.step()
    ours, naive_sd = to_hf_state_dict(model), to_hf_state_dict(naive)
    assert ours.keys() == ref.keys()
    for name, p in ref.items():
        torch.testing.assert_close(ours[name], p.detach(), atol=1e-6, rtol=1e-5, msg=name)
    # the check can fail: treating a fused tensor as one variable moves q by other amounts
    q = "encoder.block.0.layer.0.SelfAttention.q.weight"
    assert not torch.allclose(naive_sd[q], ref[q].detach(), atol=1e-6, rtol=1e-5)


class _GradView(torch.nn.Module):
    """A model whose state_dict is another model's gradients (to split them with the export table)."""

    def __init__(self, model):
        super().__init__()
        self.cfg = model.cfg
        self._grads = {n: p.grad for n, p in model.named_parameters()}

    def state_dict(self, *args, **kwargs):
        return self._grads


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"batch_size": 0}, "batch_size must be positive"),
        ({"steps": -1}, "steps must be positive"),
        ({"log_every": 0}, "log_every must be positive"),
        ({"save_every": 0}, "save_every must be positive"),
        ({"grad_accum": 0}, "grad_accum must be positive"),
        ({"eval_every": -1}, "eval_every must be >= 0"),
        ({"lr": 0.0}, "lr must be positive"),
        ({"z_loss": -1e-4}, "z_loss must be >= 0"),
        ({"clip_grad_norm": -1.0}, "clip_grad_norm must be >= 0"),
        ({"optimizer": "sgd"}, "optimizer must be one of adafactor, adamw"),
        ({"init_style": "xavier"}, "init_style must be one of mesh_tf, hf"),
        ({"attention": "flash"}, "attention must be one of sdpa, flex"),
        ({"preset": "t5-huge"}, "preset must be one of"),
        ({"model_overrides": {"num_heads": 0}}, "model num_heads must be positive"),
        ({"model_overrides": {"d_model": 1.5}}, "model d_model must be a int"),
        ({"model_overrides": {"dropout_rate": 1.0}}, r"dropout_rate must be in \[0, 1\)"),
        ({"model_overrides": {"vocab_size": 10}}, "unknown model override"),
        ({"data_options": {"input_length": 0}}, "input_length must be at least 2"),
    ],
)
def test_train_config_validates_itself(bad, message):
    with pytest.raises(TrainingError, match=message):
        TrainConfig(data="d", out="o", **bad)


def test_cli_defaults_are_train_config_defaults_and_bad_values_are_usage_errors(tmp_path):
    from click.testing import CliRunner

    from c4clean.train.cli import train as train_cmd

    defaults = TrainConfig.defaults()
    by_name = {p.name: p for p in train_cmd.params}
    options = {n: p for n, p in by_name.items() if not (p.required or p.multiple or p.is_flag)}
    checked = [n for n in defaults if n in options]
    assert len(checked) >= 20
    for name in checked:
        assert options[name].default in (defaults[name], None), name
    assert defaults["z_loss"] == 1e-4 and defaults["init_style"] == "mesh_tf"
    assert defaults["clip_grad_norm"] is None  # adafactor: off; adamw: 1.0
    for args, message in [
        (["--batch-size", "0"], "batch_size must be positive"),
        (["--input-length", "-5"], "input_length must be at least 2"),
        (["--model", "num_layers=0"], "num_layers must be positive"),
    ]:
        result = CliRunner().invoke(
            train_cmd, ["--input", str(tmp_path), "--output", str(tmp_path / "r"), *args]
        )
        assert result.exit_code == 2 and message in result.output, result.output
        assert "Traceback" not in result.output


def test_adafactor_does_not_clip_by_default_and_z_loss_is_logged(token_dir, tmp_path, monkeypatch):
    cfg = _cfg(token_dir, tmp_path / "a", steps=2, eval_every=0, save_every=100)
    assert cfg.effective_clip_grad_norm == 0.0
    assert TrainConfig(data="d", out="o", optimizer="adamw").effective_clip_grad_norm == 1.0
    calls = []
    real = torch.nn.utils.clip_grad_norm_
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", lambda *a, **k: calls.append(a) or real(*a, **k))
    train(cfg)
    assert calls == []
    records = [r for r in _records(tmp_path / "a") if "loss" in r]
    assert all(r["z_loss"] > 0 and r["grad_norm"] > 0 for r in records)
    train(_cfg(token_dir, tmp_path / "b", steps=1, eval_every=0, save_every=100, clip_grad_norm=0.5))
    assert len(calls) == 1 and calls[0][1] == 0.5


def test_default_cpu_threads_leave_room_and_respect_omp(monkeypatch):
    from c4clean.train import trainer as T

    monkeypatch.setattr(T.os, "sched_getaffinity", lambda _: {0, 1}, raising=False)
    assert T.default_cpu_threads(0) == 1  # 2 cores: 2 threads were 2-9x slower on a shared machine
    monkeypatch.setattr(T.os, "sched_getaffinity", lambda _: set(range(16)), raising=False)
    assert T.default_cpu_threads(4) == 11 and T.default_cpu_threads(20) == 1
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = torch.get_num_threads()
    try:
        T._runtime(TrainConfig(data="d", out="o", device="cpu", cpu_threads=3))
        assert torch.get_num_threads() == 3
        monkeypatch.setenv("OMP_NUM_THREADS", "2")
        T._runtime(TrainConfig(data="d", out="o", device="cpu"))
        assert torch.get_num_threads() == 3  # an explicit OMP_NUM_THREADS is left alone
    finally:
        torch.set_num_threads(before)
