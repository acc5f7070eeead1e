"""Atomic, pickle-free training checkpoints.

A checkpoint is a directory `checkpoints/step-{step:08d}/` holding
- `model.safetensors` + `config.json` (a "model directory": `load_model_dir` reads it alone),
- `state.pt`: optimizer, scheduler, loader state(s), every RNG, the step: plain tensors, numbers,
  strings, lists and dicts only, so `torch.load(weights_only=True)` reads it.
It is written into a hidden temporary directory, fsynced, then renamed into place: a directory named
`step-*` is always complete, whatever killed the writer.

Every model directory and checkpoint also holds `checksums.json`, the sha256 of each of its other files,
verified before loading: a truncated, overwritten or missing file is found, and `--resume` and `export`
fall back to the newest intact checkpoint with a warning. (Directories written before checksums were
recorded are checked for their files only.)
"""

from __future__ import annotations

import json
import logging
import random
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from c4clean import atomic, formats
from c4clean.train.model import T5, T5Config

log = logging.getLogger(__name__)


class DamagedCheckpoint(ValueError):
    """A model directory or checkpoint with a missing, truncated or altered file."""


# --- integrity -----------------------------------------------------------------------------------


def write_checksums(directory: Path) -> None:
    """Record the sha256 of every file of `directory` (written last, inside the temporary directory)."""
    sums = {
        f.name: formats.sha256_file(f)
        for f in sorted(directory.iterdir())
        if f.is_file() and f.name != formats.CHECKPOINT_CHECKSUMS_FILE
    }
    doc = {**formats.CHECKPOINT.stamp(), "sha256": sums}
    (directory / formats.CHECKPOINT_CHECKSUMS_FILE).write_text(
        json.dumps(doc, indent=2, sort_keys=True) + "\n"
    )


def verify(directory: str | Path, *, training_state: bool = False) -> None:
    """Raises DamagedCheckpoint naming what is wrong with `directory`; `training_state` also requires
    state.pt (a training checkpoint, not only a model directory)."""
    directory = Path(directory)
    required = [formats.MODEL_CONFIG_FILE, formats.MODEL_WEIGHTS_FILE]
    if training_state:
        required.append(formats.CHECKPOINT_STATE_FILE)
    missing = [name for name in required if not (directory / name).is_file()]
    if missing:
        raise DamagedCheckpoint(f"{directory}: {', '.join(missing)} missing")
    sums_file = directory / formats.CHECKPOINT_CHECKSUMS_FILE
    if not sums_file.is_file():
        return  # written before checksums were recorded
    try:
        sums = json.loads(sums_file.read_text())["sha256"]
    except (ValueError, KeyError, TypeError):
        raise DamagedCheckpoint(f"{sums_file}: unreadable") from None
    for name, expected in sorted(sums.items()):
        path = directory / name
        if not path.is_file():
            raise DamagedCheckpoint(f"{directory}: {name} missing")
        if formats.sha256_file(path) != expected:
            raise DamagedCheckpoint(f"{path}: sha256 differs from checksums.json (truncated or altered)")


def write_model_dir(model: T5, directory: Path, extra: dict | None = None) -> None:
    """Write `model.safetensors` + `config.json` into an existing (temporary) directory."""
    sd = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(sd, str(directory / formats.MODEL_WEIGHTS_FILE), metadata=formats.CHECKPOINT.stamp())
    meta = {**formats.CHECKPOINT.stamp(), "model": model.cfg.to_dict(), **(extra or {})}
    (directory / formats.MODEL_CONFIG_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def save_model_dir(model: T5, out_dir: str | Path, extra: dict | None = None) -> Path:
    with atomic.replacing_dir(out_dir) as tmp:
        write_model_dir(model, tmp, extra)
        write_checksums(tmp)
    return Path(out_dir)


def read_model_config(directory: str | Path) -> tuple[T5Config, dict]:
    path = Path(directory) / formats.MODEL_CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: not a c4clean model or checkpoint directory")
    meta = json.loads(path.read_text())
    formats.CHECKPOINT.check(meta, path)
    return T5Config.from_dict(meta["model"]), meta


def load_model_weights(model: T5, directory: str | Path) -> None:
    """Load `model.safetensors` into `model`, with a clear error when the shapes differ."""
    cfg, _ = read_model_config(directory)
    if cfg != model.cfg:
        diff = {k: (v, getattr(model.cfg, k)) for k, v in cfg.to_dict().items() if getattr(model.cfg, k) != v}
        raise ValueError(f"checkpoint {directory} is for another model shape (checkpoint, requested): {diff}")
    sd = load_file(str(Path(directory) / formats.MODEL_WEIGHTS_FILE), device=str(model.shared.weight.device))
    model.load_state_dict(sd)


def load_model_dir(directory: str | Path) -> T5:
    verify(directory)
    cfg, _ = read_model_config(directory)
    model = T5(cfg)
    load_model_weights(model, directory)
    return model


# --- RNG state as weights_only-loadable values -------------------------------------------------


def rng_state() -> dict:
    np_state = np.random.get_state()
    py_version, py_internal, py_gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "name": np_state[0],
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": {"version": py_version, "internal": list(py_internal), "gauss_next": py_gauss},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(
        (n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss_next"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def plain(value):
    """numpy scalars/arrays -> Python numbers / tensors, recursively (weights_only cannot read numpy)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(plain(v) for v in value)
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value.copy())
    if isinstance(value, np.generic):
        return value.item()
    return value


# --- training checkpoints ----------------------------------------------------------------------


def checkpoint_dir(run_dir: str | Path, step: int) -> Path:
    return Path(run_dir) / formats.CHECKPOINTS_DIR / formats.checkpoint_dir_name(step)


def list_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    root = Path(run_dir) / formats.CHECKPOINTS_DIR
    if not root.is_dir():
        return []
    found = [
        (int(m.group(1)), p)
        for p in root.iterdir()
        if (m := formats.CHECKPOINT_STEP_RE.match(p.name)) and p.is_dir()
    ]
    return sorted(found)


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest intact checkpoint; each damaged newer one is skipped with a warning."""
    for _, path in reversed(list_checkpoints(run_dir)):
        try:
            verify(path, training_state=True)
        except DamagedCheckpoint as damage:
            log.warning("skipping damaged checkpoint: %s", damage)
            continue
        return path
    return None


def save_checkpoint(
    run_dir: str | Path, step: int, model: T5, state: dict, meta: dict, keep: int = 2
) -> Path:
    """Atomically write checkpoint `step` (model + `state`), then prune to the newest `keep`."""
    final = checkpoint_dir(run_dir, step)
    with atomic.replacing_dir(final) as tmp:
        write_model_dir(model, tmp, {"step": step, **meta})
        torch.save(
            plain({**formats.CHECKPOINT.stamp(), "step": step, **state}),
            tmp / formats.CHECKPOINT_STATE_FILE,
        )
        write_checksums(tmp)
    if keep > 0:
        for _, old in list_checkpoints(run_dir)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    return final


def remove_stale_temporaries(run_dir: str | Path) -> None:
    """Remove what a killed writer left behind (never a complete checkpoint: those are `step-*`)."""
    atomic.remove_stale_dirs(Path(run_dir) / formats.CHECKPOINTS_DIR)


def load_state(ckpt: str | Path, map_location="cpu") -> dict:
    state = torch.load(
        Path(ckpt) / formats.CHECKPOINT_STATE_FILE, map_location=map_location, weights_only=True
    )
    formats.CHECKPOINT.check(state, Path(ckpt) / formats.CHECKPOINT_STATE_FILE)
    return state
