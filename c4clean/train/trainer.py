"""Span-corruption T5 pre-training loop: CPU or CUDA, bf16 autocast, torch.compile, DDP, exact resume.

Run layout (`--output`):
  run.json                 model + training settings + vocabulary of the run (checked on --resume)
  metrics.jsonl            one JSON object per log / eval step (train: loss, lr, grad_norm, tokens_per_s,
                           mfu when the GPU's peak is known; eval: val_loss)
  checkpoints/step-NNNNNNNN/  model.safetensors + config.json + state.pt (see checkpoint.py)
  final/                   model directory of the last step (same format; `c4clean export` reads it)
  tensorboard/             when TensorBoard is installed

Exact resume: a checkpoint holds the optimizer, scheduler, loader state and every RNG of every rank,
so `--resume` after any kill continues with the same batches, and on CPU the same losses, as an
uninterrupted run; metrics.jsonl is cut back to the checkpoint's step so the log reads as one run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import torch
import torch.distributed as dist

from c4clean import atomic
from c4clean.train import checkpoint as ckpt
from c4clean.train.config import TrainConfig, TrainingError  # noqa: F401 - re-exported
from c4clean.train.data_options import DataOptions
from c4clean.train.evaluate import evaluate_loss
from c4clean.train.model import T5, T5Config, preset, train_flops_per_example
from c4clean.train.optim import build_optimizer

log = logging.getLogger(__name__)

# bf16 dense tensor-core peaks (NVIDIA spec sheets), matched against torch.cuda.get_device_name()
# in this order; MFU is omitted for any other device.
GPU_PEAK_BF16_FLOPS = (
    ("H100 PCIe", 756e12),
    ("H100 NVL", 835e12),
    ("H100", 989e12),
    ("H200", 989e12),
    ("GH200", 989e12),
    ("A100", 312e12),
)

# settings that must not change across --resume, or the batches (and losses) would differ
RESUME_INVARIANT = (
    "preset",
    "batch_size",
    "grad_accum",
    "seed",
    "optimizer",
    "world_size",
    "data_options",
    "teacher",
    "distill_alpha",
    "distill_temperature",
)


# --- the data dependency (one place) -----------------------------------------------------------


@dataclass
class DataSource:
    """What the trainer needs from the data side.

    `vocab`: {"vocab_size", "pad_id", "eos_id", "sha256"}; `train()` returns an endless iterator of
    batches (dicts of int64 tensors input_ids / labels / decoder_input_ids) that also has
    `state_dict()` / `load_state_dict()`; `validation()` returns a fresh finite iterable of batches
    (same order every call), or is None when the data has no validation split.
    """

    vocab: dict
    train: Callable[[], Any]
    validation: Callable[[], Iterable[dict]] | None


def open_token_data(
    data_dir: str | Path,
    micro_batch: int,
    eval_batch: int,
    seed: int,
    rank: int,
    world_size: int,
    options: dict,
    num_workers: int = 0,
) -> DataSource:
    """The token directory written by `c4clean tokenize` (manifest.json + Arrow token shards), through
    `c4clean.train.data`; the only place the trainer touches the data layer. Both splits are opened
    once here, so bad settings fail before any training."""
    from c4clean.train import data as D

    common = dict(seed=seed, rank=rank, world_size=world_size)
    train_kw = dict(split="train", batch_size=micro_batch, **common, **options)
    # the whole validation split, whatever `max_tokens` subset trains (size ablations compare runs on
    # the same data), in a fixed order (no shuffle, one pass): every evaluation scores the same batches
    eval_options = {k: v for k, v in options.items() if k != "max_tokens"}
    eval_kw = dict(split="validation", batch_size=eval_batch, shuffle=False, num_epochs=1, **common)
    eval_kw.update(eval_options)
    try:
        DataOptions.from_dict(options)
        manifest = D.read_manifest(data_dir)
        vocab = D.vocab_info(data_dir).to_json()
        D.T5SpanCorruptionDataset(data_dir, **train_kw)
    except (FileNotFoundError, ValueError, KeyError, TypeError) as e:
        raise TrainingError(f"cannot train on {data_dir}: {e.__class__.__name__}: {e}") from e
    pin = num_workers > 0 and torch.cuda.is_available()

    def train_loader():
        return D.make_loader(data_dir, num_workers=num_workers, pin_memory=pin, **train_kw)

    def validation_loader():
        return D.make_loader(data_dir, num_workers=0, **eval_kw)

    has_validation = "validation" in manifest.get("splits", {})
    if not has_validation:
        log.warning("%s has no validation split: no validation loss will be computed", data_dir)
    else:
        try:
            D.T5SpanCorruptionDataset(data_dir, **eval_kw)
        except ValueError as e:
            log.warning("validation split of %s unusable, no validation loss: %s", data_dir, e)
            has_validation = False
    return DataSource(vocab, train_loader, validation_loader if has_validation else None)


# --- helpers ------------------------------------------------------------------------------------


def gpu_peak_flops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in GPU_PEAK_BF16_FLOPS if key in name), None)


def model_config_for(cfg: TrainConfig, vocab: dict) -> T5Config:
    """Preset + overrides with the data's vocabulary; rows rounded up to a multiple of 128 as T5's
    32,100-piece vocabulary becomes 32,128 rows (faster matmuls; the extra rows are never targets,
    and the first of them is the mask token of the BERT- and MASS-style objectives)."""
    for key in ("vocab_size", "pad_id", "eos_id", "sha256"):
        if key not in vocab:
            raise TrainingError(
                f"the token directory's vocabulary info lacks {key!r}: re-run `c4clean tokenize`"
            )
    if vocab["pad_id"] != 0:
        raise TrainingError(f"vocabulary has pad id {vocab['pad_id']}; T5 needs pad = decoder start = 0")
    rows = -(-(int(vocab["vocab_size"]) + 1) // 128) * 128  # + 1: the mask token id is vocab_size
    return preset(
        cfg.preset,
        **{
            "vocab_size": rows,
            "pad_token_id": 0,
            "eos_token_id": int(vocab["eos_id"]),
            **cfg.model_overrides,
        },
    )


@dataclass
class Dist:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device_hint: str | None) -> Dist:
    """torchrun sets RANK / LOCAL_RANK / WORLD_SIZE; init the process group from them (env://)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    d = Dist(int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0")), world)
    use_cuda = torch.cuda.is_available() and (device_hint is None or device_hint.startswith("cuda"))
    if use_cuda:
        torch.cuda.set_device(d.local_rank)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return d


def _gather(obj, d: Dist) -> list:
    if not d.enabled:
        return [obj]
    out = [None] * d.world_size
    dist.all_gather_object(out, obj)
    return out


class MetricsLog:
    """metrics.jsonl (rank 0) + TensorBoard when installed."""

    def __init__(self, run_dir: Path, resume_step: int | None, enabled: bool):
        self.enabled = enabled
        self.path = run_dir / "metrics.jsonl"
        self.tb = None
        if not enabled:
            return
        if resume_step is not None and self.path.exists():
            # drop what was logged after the checkpoint: those steps are trained again
            kept = [line for line in self.path.read_text().splitlines() if _logged_step(line) <= resume_step]
            atomic.write_text(self.path, "".join(line + "\n" for line in kept))
        elif resume_step is None:
            atomic.write_text(self.path, "")
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(run_dir / "tensorboard"))
        except ImportError:
            pass
        self.fh = open(self.path, "a")

    def write(self, record: dict) -> None:
        if not self.enabled:
            return
        self.fh.write(json.dumps(record) + "\n")
        self.fh.flush()
        if self.tb is not None:
            for key, value in record.items():
                if key != "step" and isinstance(value, (int, float)):
                    self.tb.add_scalar(key, value, record["step"])

    def close(self) -> None:
        if self.enabled:
            self.fh.close()
            if self.tb is not None:
                self.tb.close()


def _logged_step(line: str) -> float:
    """Step of a metrics line; a line cut short by a kill counts as after every checkpoint (dropped)."""
    try:
        return json.loads(line)["step"]
    except (ValueError, KeyError, TypeError):
        return math.inf


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _check_resume(run_dir: Path, saved: dict, cfg: TrainConfig, model_cfg: T5Config, vocab: dict) -> None:
    if saved["vocab"]["sha256"] != vocab["sha256"]:
        raise TrainingError(
            f"vocabulary mismatch: {run_dir} was trained with vocabulary sha256 "
            f"{saved['vocab']['sha256']}, the token directory has {vocab['sha256']}"
        )
    if saved["model"] != model_cfg.to_dict():
        diff = {
            k: (v, model_cfg.to_dict().get(k))
            for k, v in saved["model"].items()
            if model_cfg.to_dict().get(k) != v
        }
        raise TrainingError(f"{run_dir} holds a model of another shape (saved, requested): {diff}")
    default = TrainConfig(data="", out="")  # a setting missing from an older run.json had its default
    was = {k: saved["train"].get(k, getattr(default, k)) for k in RESUME_INVARIANT}
    changed = {k: (was[k], getattr(cfg, k)) for k in RESUME_INVARIANT if was[k] != getattr(cfg, k)}
    if changed:
        raise TrainingError(
            f"--resume with changed settings would not continue the same run (saved, requested): {changed}"
        )


# --- the loop: setup, restore, step, log, eval, save ----------------------------------------------


@dataclass
class Run:
    """Everything a running training holds (built by `setup`)."""

    cfg: TrainConfig
    dist: Dist
    device: torch.device
    bf16: bool
    run_dir: Path
    data: DataSource
    model_cfg: T5Config
    model: T5
    step_model: torch.nn.Module  # the model as trained: DDP and/or compiled
    optimizer: torch.optim.Optimizer
    scheduler: Any
    loader: Any
    metrics: MetricsLog | None = None
    step: int = 0
    bar: Any = None
    distiller: Any = None  # train/distill.Distiller with --teacher

    def autocast(self):
        if self.bf16:
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()


@dataclass
class Interval:
    """What happened since the last log line."""

    loss: torch.Tensor
    z_loss: torch.Tensor
    steps: int = 0
    examples: int = 0
    tokens: int = 0
    lr: float = math.nan
    started: float = dataclasses.field(default_factory=time.perf_counter)

    @classmethod
    def new(cls, device: torch.device) -> "Interval":
        return cls(torch.zeros((), device=device), torch.zeros((), device=device))


def train(cfg: TrainConfig, data: DataSource | None = None) -> dict:
    """Train (or resume) a run; returns a summary {"step", "loss", "val_loss", "final_dir"}."""
    run = setup(cfg, data)
    last_loss, last_val = math.nan, None
    interval = Interval.new(run.device)
    batches: Iterator[dict] = iter(run.loader)
    try:
        while run.step < cfg.steps:
            grad_norm = train_step(run, batches, interval)
            at = run.step
            if at % cfg.log_every == 0 or at == cfg.steps or at % cfg.save_every == 0:
                last_loss = log_interval(run, interval, grad_norm)
                interval = Interval.new(run.device)
            if cfg.eval_every > 0 and (at % cfg.eval_every == 0 or at == cfg.steps):
                last_val = evaluate(run)
                interval.started = time.perf_counter()
            if at % cfg.save_every == 0 or at == cfg.steps:
                save(run)
                interval.started = time.perf_counter()
    finally:  # also on errors (NaN loss): flush the log, end the bar
        if run.bar is not None:
            run.bar.close()
        run.metrics.close()
    final_dir = run.run_dir / "final"
    if run.dist.main:
        ckpt.save_model_dir(run.model, final_dir, {"step": run.step, "vocab": run.data.vocab})
    if run.dist.enabled:
        dist.barrier()
    return {"step": run.step, "loss": last_loss, "val_loss": last_val, "final_dir": str(final_dir)}


def default_cpu_threads(loader_workers: int) -> int:
    """torch threads on CPU: the cores this process may use, less one per loader worker process and
    one left to everything else (the in-process loader between steps, logging, the OS), so compute
    does not oversubscribe the machine. On a shared 2-core machine 2 threads ran the README recipe
    2-9x slower than 1 (threads spin-waiting on each other while other processes hold a core)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores - loader_workers - 1)


def _runtime(cfg: TrainConfig) -> tuple[TrainConfig, Dist, torch.device, bool, int, int]:
    """(cfg with world size, ranks, device, bf16, per-rank micro-batch, loader workers)."""
    d = init_distributed(cfg.device)
    cfg = dataclasses.replace(cfg, world_size=d.world_size)
    if cfg.batch_size % (d.world_size * cfg.grad_accum):
        raise TrainingError(
            f"--batch-size {cfg.batch_size} is not divisible by world size {d.world_size} x "
            f"--grad-accum {cfg.grad_accum}"
        )
    micro = cfg.batch_size // d.world_size // cfg.grad_accum
    if cfg.device:
        device = torch.device(cfg.device)
    else:
        device = torch.device(f"cuda:{d.local_rank}" if torch.cuda.is_available() else "cpu")
    bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and device.type == "cuda")
    if cfg.attention == "flex" and device.type != "cuda":
        raise TrainingError("--attention flex needs a CUDA device (FlexAttention has no CPU backward)")
    workers = cfg.loader_workers
    if workers is None:
        workers = 4 if device.type == "cuda" else 0
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    elif cfg.cpu_threads or "OMP_NUM_THREADS" not in os.environ:  # an explicit OMP setting stands
        torch.set_num_threads(cfg.cpu_threads or default_cpu_threads(workers))
    return cfg, d, device, bf16, micro, workers


def setup(cfg: TrainConfig, data: DataSource | None = None) -> Run:
    """Everything before the first step: ranks, device, data, model, optimizer; restores the newest
    checkpoint on --resume, else loads --init weights; writes run.json; opens the metrics log."""
    cfg, d, device, bf16, micro, workers = _runtime(cfg)
    run_dir = Path(cfg.out)
    latest = ckpt.latest_checkpoint(run_dir)
    if latest is not None and not cfg.resume:
        raise TrainingError(
            f"{run_dir} already has checkpoints (newest {latest.name}); pass --resume to "
            f"continue it or choose another --output"
        )
    if data is None:
        eval_batch = cfg.eval_batch_size or micro
        data = open_token_data(
            cfg.data, micro, eval_batch, cfg.seed, d.rank, d.world_size, cfg.data_options, workers
        )
    model_cfg = model_config_for(cfg, data.vocab)
    run_json = run_dir / "run.json"
    if cfg.resume and run_json.exists():
        _check_resume(run_dir, json.loads(run_json.read_text()), cfg, model_cfg, data.vocab)
    distiller = _load_teacher(cfg, data.vocab, device)
    _seed_everything(cfg.seed + d.rank)
    try:
        model = T5(model_cfg, init_style=cfg.init_style, attention=cfg.attention).to(device)
    except ValueError as e:  # flex with dropout
        raise TrainingError(str(e)) from None
    optimizer, scheduler = build_optimizer(
        cfg.optimizer, model, cfg.lr, cfg.warmup_steps, cfg.steps, cfg.weight_decay, cfg.min_lr
    )
    loader = data.train()
    run = Run(cfg, d, device, bf16, run_dir, data, model_cfg, model, model, optimizer, scheduler, loader)
    run.distiller = distiller
    if cfg.resume and latest is not None:
        restore(run, latest)
    elif cfg.init:
        _load_init(model, cfg.init)
    if d.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        ckpt.remove_stale_temporaries(run_dir)
        if not (cfg.resume and run_json.exists()):
            meta = {"model": model_cfg.to_dict(), "vocab": data.vocab, "train": cfg.to_json()}
            atomic.write_text(run_json, json.dumps(meta, indent=2, sort_keys=True) + "\n")
    run.metrics = MetricsLog(run_dir, run.step if (cfg.resume and latest is not None) else None, d.main)
    _wrap(run)
    _start_log(run)
    return run


def _load_teacher(cfg: TrainConfig, vocab: dict, device: torch.device):
    """The frozen teacher of pre-trained distillation, checked before anything trains."""
    if not cfg.teacher:
        return None
    from c4clean.train.distill import Distiller, DistillError

    try:
        return Distiller.load(cfg.teacher, vocab, cfg.distill_alpha, cfg.distill_temperature, device)
    except DistillError as e:
        raise TrainingError(str(e)) from e


def restore(run: Run, checkpoint: Path) -> None:
    """Model, optimizer, scheduler, loader position and RNGs of this rank from `checkpoint`."""
    try:
        ckpt.load_model_weights(run.model, checkpoint)
    except ValueError as e:
        raise TrainingError(str(e)) from e
    state = ckpt.load_state(checkpoint)
    if len(state["loader"]) != run.dist.world_size:
        raise TrainingError(
            f"{checkpoint} was written by {len(state['loader'])} ranks, this run has {run.dist.world_size}"
        )
    try:
        run.optimizer.load_state_dict(state["optimizer"])
    except (ValueError, KeyError) as e:
        raise TrainingError(f"{checkpoint}: optimizer state does not fit this run: {e}") from e
    run.scheduler.load_state_dict(state["scheduler"])
    run.loader.load_state_dict(state["loader"][run.dist.rank])
    ckpt.set_rng_state(state["rng"][run.dist.rank])
    run.step = int(state["step"])
    log.info("resumed %s at step %d", checkpoint, run.step)


def _wrap(run: Run) -> None:
    """DDP across ranks, torch.compile when asked."""
    if run.dist.enabled:
        from torch.nn.parallel import DistributedDataParallel as DDP

        device_ids = [run.device.index] if run.device.type == "cuda" else None
        run.step_model = DDP(run.model, device_ids=device_ids)
    if run.cfg.compile:
        run.step_model = torch.compile(run.step_model)


def _start_log(run: Run) -> None:
    """The start record of a new run, and the progress bar."""
    if run.dist.main and run.step == 0:
        device = run.device
        run.metrics.write(
            {
                "step": 0,
                "event": "start",
                "parameters": run.model.num_parameters(),
                "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                "world_size": run.dist.world_size,
                "torch": torch.__version__,
            }
        )
    if run.cfg.progress and run.dist.main:
        from tqdm.auto import tqdm

        run.bar = tqdm(total=run.cfg.steps, initial=run.step, unit="step", dynamic_ncols=True)


def train_step(run: Run, batches: Iterator[dict], interval: Interval) -> torch.Tensor:
    """One optimizer step over `grad_accum` micro-batches; returns the global gradient norm (before
    any clipping)."""
    cfg = run.cfg
    for micro_step in range(cfg.grad_accum):
        batch = {k: v.to(run.device, non_blocking=True) for k, v in next(batches).items()}
        sync = not run.dist.enabled or micro_step == cfg.grad_accum - 1
        with contextlib.nullcontext() if sync else run.step_model.no_sync(), run.autocast():
            out = run.step_model(**batch, z_loss=cfg.z_loss)
            if run.distiller is not None:  # the teacher's soft targets mixed with the label loss
                out = {**out, "loss": run.distiller.loss(out, batch)}
        z = out.get("z_loss")
        objective = out["loss"] if z is None else out["loss"] + z
        (objective / cfg.grad_accum).backward()
        interval.loss += out["loss"].detach().float() / cfg.grad_accum
        if z is not None:
            interval.z_loss += z.detach().float() / cfg.grad_accum
        interval.examples += batch["input_ids"].shape[0]
        interval.tokens += batch["input_ids"].numel()
    params = [p for p in run.model.parameters() if p.grad is not None]
    clip = cfg.effective_clip_grad_norm
    if clip > 0:
        grad_norm = torch.nn.utils.clip_grad_norm_(params, clip)
    else:
        grad_norm = torch.nn.utils.get_total_norm([p.grad for p in params])
    run.optimizer.step()
    interval.lr = run.scheduler.get_last_lr()[0]  # the lr this step used
    run.scheduler.step()
    run.optimizer.zero_grad(set_to_none=True)
    run.step += 1
    interval.steps += 1
    if run.bar is not None:
        run.bar.update(1)
    return grad_norm


def log_interval(run: Run, interval: Interval, grad_norm: torch.Tensor) -> float:
    """Write the interval's metrics record (mean loss over steps and ranks); stop on a non-finite
    loss. Returns the mean loss."""
    d, world = run.dist, run.dist.world_size
    sums = torch.stack([interval.loss, interval.z_loss])
    if d.enabled:  # SUM, not AVG: gloo (CPU DDP) has no AVG
        dist.all_reduce(sums)
    loss, z_loss = (sums / interval.steps / world).tolist()
    if not math.isfinite(loss):
        newest = ckpt.latest_checkpoint(run.run_dir)
        raise TrainingError(
            f"training loss is {loss} at step {run.step}: stopped without writing a "
            f"checkpoint; newest good checkpoint: {newest or 'none'} (lower --lr or check data)"
        )
    elapsed = time.perf_counter() - interval.started
    record = {
        "step": run.step,
        "loss": loss,
        "lr": interval.lr,
        "grad_norm": grad_norm.item(),
        "tokens_per_s": interval.tokens * world / elapsed,
        "examples_per_s": interval.examples * world / elapsed,
    }
    if run.cfg.z_loss:
        record["z_loss"] = z_loss
    peak = gpu_peak_flops(run.device)
    if peak and interval.examples:
        flops = train_flops_per_example(run.model_cfg, *_lengths(run))
        record["mfu"] = flops * interval.examples / elapsed / peak
    run.metrics.write(record)
    if run.bar is not None:
        run.bar.set_postfix(loss=f"{loss:.4f}", lr=f"{interval.lr:.2e}")
    return loss


def _lengths(run: Run) -> tuple[int, int]:
    """(encoder, decoder) lengths of a training sample."""
    options = DataOptions.from_dict(run.cfg.data_options)
    return options.input_length, options.lengths()[1]


def evaluate(run: Run) -> float | None:
    """Validation loss over `eval_batches` batches of every rank (None without validation data);
    written to the metrics log."""
    if run.data.validation is None:
        return None
    result = evaluate_loss(
        run.model, run.data.validation(), device=run.device, bf16=run.bf16, max_batches=run.cfg.eval_batches
    )
    stats = torch.tensor([result.loss_sum, float(result.batches)], device=run.device)
    if run.dist.enabled:
        dist.all_reduce(stats)
    value = (stats[0] / stats[1]).item() if stats[1] > 0 else None
    if value is not None:
        run.metrics.write({"step": run.step, "val_loss": value})
    return value


def save(run: Run) -> None:
    """Checkpoint of the current step: rank 0 writes the model and every rank's loader and RNG state."""
    d = run.dist
    loader_states = _gather(ckpt.plain(run.loader.state_dict()), d)
    rngs = _gather(ckpt.rng_state(), d)
    if d.main:
        state = {
            "optimizer": run.optimizer.state_dict(),
            "scheduler": run.scheduler.state_dict(),
            "loader": loader_states,
            "rng": rngs,
        }
        meta = {"train": run.cfg.to_json(), "vocab": run.data.vocab}
        ckpt.save_checkpoint(run.run_dir, run.step, run.model, state, meta, keep=run.cfg.keep_checkpoints)
    if d.enabled:
        dist.barrier()


def _load_init(model: T5, path: str) -> None:
    """Initial weights from a c4clean model/checkpoint directory or a Hugging Face T5 directory."""
    meta = (
        json.loads((Path(path) / "config.json").read_text()) if (Path(path) / "config.json").is_file() else {}
    )
    if meta.get("model_type") == "t5":
        from c4clean.train.hf_export import import_hf

        source = import_hf(path)
        if source.cfg != model.cfg:
            raise TrainingError(f"--init {path} is a model of another shape than --preset/vocabulary")
        model.load_state_dict(source.state_dict())
    else:
        try:
            ckpt.load_model_weights(model, path)
        except (ValueError, FileNotFoundError) as e:
            raise TrainingError(f"--init {path}: {e}") from e
