"""Trainer on a CUDA GPU: bf16 tracks fp32, SIGKILL + --resume replays the same batches, torch.compile
trains like eager (marked gpu: deselected by default, skipped without CUDA).

C4CLEAN_TEST_DEVICE=cpu runs the same checks on the CPU, to test the tests: fewer steps and shorter
batches (bf16 autocast is ~6x slower than fp32 there); the GPU settings are the first ones below.
"""

import os
import statistics
import subprocess

import pytest
import torch
from test_trainer import CLI, ENV, REPO, _cfg, _comparable, _records, kill_after_first_checkpoint

from c4clean.train import checkpoint as ckpt
from c4clean.train.trainer import train

DEVICE = os.environ.get("C4CLEAN_TEST_DEVICE", "cuda")
ON_GPU = DEVICE.startswith("cuda")
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(
        ON_GPU and not torch.cuda.is_available(), reason="needs CUDA (C4CLEAN_TEST_DEVICE=cpu: CPU smoke run)"
    ),
]
# steps of the precision runs, of the compiled run and of the resumed run; batch shape of every run
STEPS, COMPILE_STEPS, RESUME_STEPS, BATCH, LENGTH = (300, 50, 60, 16, 128) if ON_GPU else (12, 4, 8, 8, 32)
SAVE_EVERY = RESUME_STEPS // 6
LAST = STEPS // 6  # the steps whose mean loss is compared (one run's loss at one step is noisy)
WINDOW = max(1, STEPS // 12)  # and the windows of the whole curve
TINY, SMALL = "t5-v1_1-tiny", "t5-v1_1-small"


@pytest.fixture(scope="module")
def trained(token_dir, tmp_path_factory):
    """run(preset, precision, compile) -> (summary, run dir, graphs compiled), each trained once: Adafactor
    (lr 0.01 for 50 steps, then rsqrt decay), same seed and batches in every run. The compiled run is
    shorter and evaluates and saves at its end."""
    runs = {}

    def run(preset: str, precision: str, compile: bool = False):
        key = (preset, precision, compile)
        if key not in runs:
            out = tmp_path_factory.mktemp(f"{preset}-{precision}{'-compiled' if compile else ''}")
            steps = COMPILE_STEPS if compile else STEPS
            graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
            summary = train(
                _cfg(
                    token_dir,
                    out,
                    preset=preset,
                    precision=precision,
                    compile=compile,
                    steps=steps,
                    batch_size=BATCH,
                    data_options={"input_length": LENGTH},
                    warmup_steps=50,
                    eval_every=steps if compile else 0,
                    save_every=steps,
                    device=DEVICE,
                )
            )
            runs[key] = summary, out, torch._dynamo.utils.counters["stats"]["unique_graphs"] - graphs
        return runs[key]

    return run


def _losses(run_dir) -> list[float]:
    return [r["loss"] for r in _records(run_dir) if "loss" in r]


@pytest.mark.parametrize("preset", [TINY, SMALL])
def test_bf16_tracks_fp32_loss_curve(trained, preset):
    """bf16 autocast rounds activations to 8 mantissa bits (~4e-3 relative) but keeps fp32 weights and
    optimizer state, so it must train as fp32 does (TF32 matmuls on CUDA, as the trainer runs it): from
    the same weights and batch the first loss within 1e-2 relative; the mean loss of every WINDOW
    steps, and of the last LAST steps, within 2e-2. Single steps are not compared: while the loss falls
    steeply a small drift of the trajectory moves one step's loss a lot (on an H200, v1.1-small: 6.8% at
    step 23, while every 25-step mean agreed within 0.5% and the first loss within 3e-5)."""
    bf16, fp32 = (_losses(trained(preset, p)[1]) for p in ("bf16", "fp32"))
    assert len(bf16) == len(fp32) == STEPS
    assert abs(bf16[0] - fp32[0]) / fp32[0] < 1e-2, f"step 1: bf16 {bf16[0]:.4f} vs fp32 {fp32[0]:.4f}"
    tail_fp32 = statistics.fmean(fp32[-LAST:])
    assert fp32[0] - tail_fp32 > 1.0, f"loss {fp32[0]:.3f} -> {tail_fp32:.3f}: too little training to compare"
    windows = [(i, i + WINDOW) for i in range(0, STEPS, WINDOW)] + [(STEPS - LAST, STEPS)]
    for start, end in windows:
        b, f = statistics.fmean(bf16[start:end]), statistics.fmean(fp32[start:end])
        assert abs(b - f) / f < 2e-2, f"steps {start + 1}-{end}: mean bf16 {b:.4f} vs fp32 {f:.4f}"


def test_compile_matches_eager_in_bf16(trained):
    """torch.compile fuses kernels, which only changes bf16 rounding: each of the first COMPILE_STEPS
    losses within 1e-2 relative of eager's (Adafactor's schedule does not depend on the number of
    steps, so the longer eager run is the reference)."""
    _, compiled_dir, graphs = trained(TINY, "bf16", compile=True)
    assert graphs > 0, "torch.compile compiled nothing: eager was compared with eager"
    compiled, eager = _losses(compiled_dir), _losses(trained(TINY, "bf16")[1])[:COMPILE_STEPS]
    assert len(compiled) == COMPILE_STEPS
    for step, (c, e) in enumerate(zip(compiled, eager), 1):
        assert c == pytest.approx(e, rel=1e-2), f"step {step}: compiled {c:.4f} vs eager {e:.4f}"


def test_cuda_bf16_compile_step(trained):
    """A compiled bf16 run logs, evaluates and checkpoints."""
    summary, out, _ = trained(TINY, "bf16", compile=True)
    assert summary["step"] == COMPILE_STEPS and summary["loss"] == summary["loss"]
    assert summary["val_loss"] is not None
    assert ckpt.list_checkpoints(out)[-1][0] == COMPILE_STEPS
    rec = [r for r in _records(out) if "loss" in r][-1]
    assert rec["tokens_per_s"] > 0


def _cli(token_dir, out, *extra) -> list[str]:
    """`c4clean train` of the tiny model on DEVICE (bf16 on CUDA: precision auto), every checkpoint kept."""
    shape = ["--steps", str(RESUME_STEPS), "--batch-size", str(BATCH), "--input-length", str(LENGTH)]
    saves = ["--save-every", str(SAVE_EVERY), "--keep-checkpoints", "0", "--eval-every", str(2 * SAVE_EVERY)]
    logs = ["--eval-batches", "2", "--log-every", "1", "--no-progress", "--device", DEVICE]
    io = ["--data", str(token_dir), "--out", str(out)]
    return [*CLI[:4], "--preset", TINY, *shape, *saves, *logs, *io, *extra]


def _run_cli(cmd: list[str]) -> None:
    done = subprocess.run(cmd, env=ENV, cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]


def test_resume_after_sigkill_gives_same_batches_and_close_losses(token_dir, tmp_path):
    """SIGKILL after the first checkpoint, then --resume: the same batches as an uninterrupted run, shown
    exactly by the loader state (epoch, step, seed) in the checkpoints of both runs at every saved step
    (a batch is a pure function of it; test_loader replays batches from a state), and the same lr.
    Losses are compared within 1e-2 relative, not exactly: CUDA kernels (atomics in backward) are not
    deterministic and the trainer does not ask for deterministic algorithms."""
    ref, run = tmp_path / "ref", tmp_path / "run"
    _run_cli(_cli(token_dir, ref))
    killed_at = kill_after_first_checkpoint(_cli(token_dir, run), run)
    assert killed_at < RESUME_STEPS
    _run_cli(_cli(token_dir, run, "--resume"))

    def loader_states(run_dir):
        return {step: ckpt.load_state(path)["loader"] for step, path in ckpt.list_checkpoints(run_dir)}

    expected = loader_states(ref)
    assert sorted(expected) == list(range(SAVE_EVERY, RESUME_STEPS + 1, SAVE_EVERY))
    assert len({repr(s) for s in expected.values()}) == len(expected)  # the position advances
    assert loader_states(run) == expected
    want, got = _comparable(_records(ref)), _comparable(_records(run))
    assert [r["step"] for r in got] == [r["step"] for r in want]
    assert [r["step"] for r in want if "loss" in r] == list(range(1, RESUME_STEPS + 1))
    for g, w in zip(got, want):
        assert g.get("lr") == w.get("lr"), g["step"]
        for key in ("loss", "val_loss"):
            if key in w:
                assert g[key] == pytest.approx(w[key], rel=1e-2), (g["step"], key)


@pytest.mark.parametrize("bf16", [False, True])
def test_flex_attention_gradients_match_sdpa(bf16, monkeypatch):
    """`attention="flex"` trains the same function as SDPA with the dense bias mask: same loss and the
    same gradients, the position-bias tables included (their gradient comes out of the FlexAttention
    kernel's captured-buffer backward). Tolerance: 1e-3 of the gradient's norm in fp32, 3e-2 under
    bf16 autocast (bf16 rounds each product's inputs to 8 mantissa bits, in different places in the
    two kernels)."""
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    from c4clean.train.model import T5, preset

    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)  # the trainer tests turn it on

    torch.manual_seed(0)
    model = T5(preset(SMALL, vocab_size=512)).cuda()
    ids = torch.randint(2, 512, (4, 100), device="cuda")  # neither length a whole flex block
    labels = torch.randint(2, 512, (4, 40), device="cuda")
    mask = torch.ones_like(ids)
    mask[1, 80:] = 0  # key padding in the encoder

    def loss_and_grads(kind: str):
        model.use_attention(kind).zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
            loss = model(ids, labels=labels, attention_mask=mask)["loss"]
        loss.backward()
        return loss.item(), {n: p.grad.float().clone() for n, p in model.named_parameters()}

    dense_loss, dense = loss_and_grads("sdpa")
    flex_loss, flex = loss_and_grads("flex")
    tol = 3e-2 if bf16 else 1e-3
    assert flex_loss == pytest.approx(dense_loss, rel=tol / 3)
    for name, g in dense.items():
        err = (flex[name] - g).norm() / g.norm().clamp(min=1e-12)
        assert err < tol, f"{name}: relative gradient difference {err:.2e} (tolerance {tol})"
    assert dense["encoder.relative_attention_bias.weight"].abs().sum() > 0
