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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import torch
import torch.distributed as dist

from c4clean import atomic
from c4clean.train import checkpoint as ckpt
from c4clean.train.data_options import DataOptions
from c4clean.train.model import T5, T5Config, preset, train_flops_per_example
from c4clean.train.optim import OPTIMIZERS, build_optimizer

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
RESUME_INVARIANT = ("preset", "batch_size", "grad_accum", "seed", "optimizer", "world_size", "data_options")


class TrainingError(RuntimeError):
    """A run cannot start or continue; the message says why and what to do."""


@dataclass
class TrainConfig:
    data: str
    out: str
    preset: str = "t5-v1_1-small"
    model_overrides: dict = field(default_factory=dict)  # T5Config fields, e.g. {"num_layers": 4}
    steps: int = 10_000
    batch_size: int = 128  # sequences per optimizer step, over all ranks and accumulation steps
    grad_accum: int = 1
    optimizer: str = "adafactor"
    lr: float | None = None  # None: 0.01 (adafactor) / 1e-3 (adamw)
    warmup_steps: int = 10_000
    min_lr: float = 1e-5
    weight_decay: float = 0.0
    clip_grad: float = 1.0  # max global grad norm; 0 disables clipping
    eval_every: int = 1000
    eval_batches: int = 20
    eval_batch_size: int | None = None
    save_every: int = 1000
    keep_checkpoints: int = 2
    log_every: int = 10
    seed: int = 0
    compile: bool = False
    precision: str = "auto"  # auto = bf16 on CUDA, fp32 on CPU; or "fp32" / "bf16"
    device: str | None = None  # default: cuda:LOCAL_RANK when available, else cpu
    resume: bool = False
    init: str | None = None  # start from a c4clean model directory or a Hugging Face T5 directory
    data_options: dict = field(default_factory=dict)  # DataOptions fields set, passed to the loader
    loader_workers: int | None = None  # DataLoader workers; default 4 on CUDA, 0 on CPU (cores train)
    cpu_threads: int | None = None  # torch intra-op threads (default: torch's choice)
    progress: bool = True
    world_size: int = 1  # filled in from the environment under torchrun

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


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
    `c4clean.train.data`; the only place the trainer touches the data layer."""
    from c4clean.train import data as D

    try:
        DataOptions.from_dict(options)
        manifest = D.read_manifest(data_dir)
        vocab = D.vocab_info(data_dir).to_json()
        D.T5SpanCorruptionDataset(
            data_dir, "train", batch_size=micro_batch, seed=seed, rank=rank, world_size=world_size, **options
        )  # validates now, not mid-run
    except (FileNotFoundError, ValueError, KeyError, TypeError) as e:
        raise TrainingError(f"cannot train on {data_dir}: {e.__class__.__name__}: {e}") from e

    def train_loader():
        return D.make_loader(
            data_dir,
            "train",
            batch_size=micro_batch,
            seed=seed,
            rank=rank,
            world_size=world_size,
            num_workers=num_workers,
            pin_memory=num_workers > 0 and torch.cuda.is_available(),
            **options,
        )

    # The whole validation split, whatever `max_tokens` subset trains: size ablations compare runs on
    # the same validation data.
    eval_options = {k: v for k, v in options.items() if k != "max_tokens"}

    def validation_loader():
        # fixed order (no shuffle, one pass), so every evaluation scores the same batches
        return D.make_loader(
            data_dir,
            "validation",
            batch_size=eval_batch,
            seed=seed,
            rank=rank,
            world_size=world_size,
            num_workers=0,
            shuffle=False,
            num_epochs=1,
            **eval_options,
        )

    has_validation = "validation" in manifest.get("splits", {})
    if has_validation:
        try:
            D.T5SpanCorruptionDataset(
                data_dir,
                "validation",
                batch_size=eval_batch,
                seed=seed,
                rank=rank,
                world_size=world_size,
                shuffle=False,
                num_epochs=1,
                **eval_options,
            )
        except ValueError as e:
            log.warning("validation split of %s unusable, no validation loss: %s", data_dir, e)
            has_validation = False
    else:
        log.warning("%s has no validation split: no validation loss will be computed", data_dir)
    return DataSource(
        vocab=vocab, train=train_loader, validation=validation_loader if has_validation else None
    )


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
    changed = {
        k: (saved["train"].get(k), getattr(cfg, k))
        for k in RESUME_INVARIANT
        if saved["train"].get(k) != getattr(cfg, k)
    }
    if changed:
        raise TrainingError(
            f"--resume with changed settings would not continue the same run (saved, requested): {changed}"
        )


# --- the loop -----------------------------------------------------------------------------------


def train(cfg: TrainConfig, data: DataSource | None = None) -> dict:
    """Train (or resume) a run; returns a summary {"step", "loss", "val_loss", "final_dir"}."""
    d = init_distributed(cfg.device)
    if cfg.cpu_threads:
        torch.set_num_threads(cfg.cpu_threads)
    cfg = dataclasses.replace(cfg, world_size=d.world_size)
    if cfg.optimizer not in OPTIMIZERS:
        raise TrainingError(f"unknown optimizer {cfg.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
    per_rank = cfg.batch_size // d.world_size
    if cfg.batch_size % (d.world_size * cfg.grad_accum):
        raise TrainingError(
            f"--batch-size {cfg.batch_size} is not divisible by world size {d.world_size} x "
            f"--grad-accum {cfg.grad_accum}"
        )
    micro = per_rank // cfg.grad_accum
    if cfg.device:
        device = torch.device(cfg.device)
    else:
        device = torch.device(f"cuda:{d.local_rank}" if torch.cuda.is_available() else "cpu")
    bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and device.type == "cuda")
    if cfg.precision not in ("auto", "fp32", "bf16"):
        raise TrainingError(f"--precision must be auto, fp32 or bf16, not {cfg.precision!r}")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    run_dir = Path(cfg.out)
    latest = ckpt.latest_checkpoint(run_dir)
    if latest is not None and not cfg.resume:
        raise TrainingError(
            f"{run_dir} already has checkpoints (newest {latest.name}); pass --resume to "
            f"continue it or choose another --output"
        )
    if data is None:
        workers = (
            cfg.loader_workers if cfg.loader_workers is not None else (4 if device.type == "cuda" else 0)
        )
        data = open_token_data(
            cfg.data,
            micro,
            cfg.eval_batch_size or micro,
            cfg.seed,
            d.rank,
            d.world_size,
            cfg.data_options,
            workers,
        )
    model_cfg = model_config_for(cfg, data.vocab)
    run_meta = {"model": model_cfg.to_dict(), "vocab": data.vocab, "train": cfg.to_json()}
    run_json = run_dir / "run.json"
    if cfg.resume and run_json.exists():
        _check_resume(run_dir, json.loads(run_json.read_text()), cfg, model_cfg, data.vocab)

    _seed_everything(cfg.seed + d.rank)
    model = T5(model_cfg).to(device)
    optimizer, scheduler = build_optimizer(
        cfg.optimizer, model, cfg.lr, cfg.warmup_steps, cfg.steps, cfg.weight_decay, cfg.min_lr
    )
    loader = data.train()
    step = 0
    if cfg.resume and latest is not None:
        try:
            ckpt.load_model_weights(model, latest)
        except ValueError as e:
            raise TrainingError(str(e)) from e
        state = ckpt.load_state(latest)
        if len(state["loader"]) != d.world_size:
            raise TrainingError(
                f"{latest} was written by {len(state['loader'])} ranks, this run has {d.world_size}"
            )
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        loader.load_state_dict(state["loader"][d.rank])
        ckpt.set_rng_state(state["rng"][d.rank])
        step = int(state["step"])
        log.info("resumed %s at step %d", latest, step)
    elif cfg.init:
        _load_init(model, cfg.init)
    if d.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        ckpt.remove_stale_temporaries(run_dir)
        if not (cfg.resume and run_json.exists()):
            atomic.write_text(run_json, json.dumps(run_meta, indent=2, sort_keys=True) + "\n")
    metrics = MetricsLog(run_dir, step if (cfg.resume and latest is not None) else None, d.main)

    step_model: torch.nn.Module = model
    if d.enabled:
        from torch.nn.parallel import DistributedDataParallel as DDP

        step_model = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.compile:
        step_model = torch.compile(step_model)
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext
    peak = gpu_peak_flops(device)
    flops_per_example = None

    def evaluate() -> float | None:
        if data.validation is None:
            return None
        model.eval()
        total, n = torch.zeros((), device=device), 0
        with torch.no_grad(), autocast():
            for i, batch in enumerate(data.validation()):
                if i >= cfg.eval_batches:
                    break
                batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
                total += model(**batch)["loss"].float()
                n += 1
        model.train()
        stats = torch.tensor([total.item(), float(n)], device=device)
        if d.enabled:
            dist.all_reduce(stats)
        return (stats[0] / stats[1]).item() if stats[1] > 0 else None

    def save(at_step: int) -> None:
        loader_states = _gather(ckpt.plain(loader.state_dict()), d)
        rngs = _gather(ckpt.rng_state(), d)
        if d.main:
            ckpt.save_checkpoint(
                run_dir,
                at_step,
                model,
                {
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "loader": loader_states,
                    "rng": rngs,
                },
                {"train": cfg.to_json(), "vocab": data.vocab},
                keep=cfg.keep_checkpoints,
            )
        if d.enabled:
            dist.barrier()

    def check_finite(loss_value: float, at_step: int) -> None:
        if not math.isfinite(loss_value):
            newest = ckpt.latest_checkpoint(run_dir)
            raise TrainingError(
                f"training loss is {loss_value} at step {at_step}: stopped without writing a "
                f"checkpoint; newest good checkpoint: {newest or 'none'} (lower --lr or check data)"
            )

    if d.main and step == 0:
        metrics.write(
            {
                "step": 0,
                "event": "start",
                "parameters": model.num_parameters(),
                "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                "world_size": d.world_size,
                "torch": torch.__version__,
            }
        )
    bar = None
    if cfg.progress and d.main:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.steps, initial=step, unit="step", dynamic_ncols=True)

    model.train()
    batches: Iterator[dict] = iter(loader)
    loss_sum = torch.zeros((), device=device)
    interval_steps, interval_examples, interval_tokens = 0, 0, 0
    t_interval = time.perf_counter()
    last_loss, last_val = math.nan, None
    try:
        while step < cfg.steps:
            for micro_step in range(cfg.grad_accum):
                batch = {k: v.to(device, non_blocking=True) for k, v in next(batches).items()}
                if flops_per_example is None:
                    flops_per_example = train_flops_per_example(
                        model_cfg, batch["input_ids"].shape[1], batch["labels"].shape[1]
                    )
                sync = not d.enabled or micro_step == cfg.grad_accum - 1
                with contextlib.nullcontext() if sync else step_model.no_sync(), autocast():
                    loss = step_model(**batch)["loss"]
                (loss / cfg.grad_accum).backward()
                loss_sum += loss.detach().float() / cfg.grad_accum
                interval_examples += batch["input_ids"].shape[0]
                interval_tokens += batch["input_ids"].numel()
            grad_norm = torch.nn.utils.clip_grad_norm_(
                model.parameters(), cfg.clip_grad if cfg.clip_grad > 0 else math.inf
            )
            optimizer.step()
            lr = scheduler.get_last_lr()[0]
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            interval_steps += 1
            if bar is not None:
                bar.update(1)

            if step % cfg.log_every == 0 or step == cfg.steps or step % cfg.save_every == 0:
                if d.enabled:  # SUM, not AVG: gloo (CPU DDP) has no AVG
                    dist.all_reduce(loss_sum)
                last_loss = loss_sum.item() / interval_steps / d.world_size
                check_finite(last_loss, step)
                elapsed = time.perf_counter() - t_interval
                record = {
                    "step": step,
                    "loss": last_loss,
                    "lr": lr,
                    "grad_norm": grad_norm.item(),
                    "tokens_per_s": interval_tokens * d.world_size / elapsed,
                    "examples_per_s": interval_examples * d.world_size / elapsed,
                }
                if peak and flops_per_example:
                    record["mfu"] = flops_per_example * interval_examples / elapsed / peak
                metrics.write(record)
                if bar is not None:
                    bar.set_postfix(loss=f"{last_loss:.4f}", lr=f"{lr:.2e}")
                loss_sum.zero_()
                interval_steps, interval_examples, interval_tokens = 0, 0, 0
                t_interval = time.perf_counter()
            if cfg.eval_every > 0 and (step % cfg.eval_every == 0 or step == cfg.steps):
                last_val = evaluate()
                if last_val is not None:
                    metrics.write({"step": step, "val_loss": last_val})
                t_interval = time.perf_counter()
            if step % cfg.save_every == 0 or step == cfg.steps:
                save(step)
                t_interval = time.perf_counter()
    finally:  # also on errors (NaN loss): flush the log, end the bar
        if bar is not None:
            bar.close()
        metrics.close()
    final_dir = run_dir / "final"
    if d.main:
        ckpt.save_model_dir(model, final_dir, {"step": step, "vocab": data.vocab})
    if d.enabled:
        dist.barrier()
    return {"step": step, "loss": last_loss, "val_loss": last_val, "final_dir": str(final_dir)}


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
