"""The ablation side of the trainer and loader: turns a run's options into a `TrainConfig`, trains it
(in this process or a child), reads its metrics and scores its final model on any corpus.

Option routing (any trainer or loader option can be an ablation axis):
  1. derived axes: `layers` (encoder and decoder layers), `width` (d_model, heads = width/64, d_kv 64,
     d_ff = 8/3 width rounded to 64: GEGLU with BERT's 4H FFN parameters; 768 -> 2048 as v1.1-base)
  2. `TrainConfig` fields of `c4clean train` (lr, optimizer, warmup_steps, batch_size, seed, ...)
  3. `T5Config` fields (d_model, num_layers, num_heads, d_ff, dropout_rate, ...) -> model_overrides
  4. `DataOptions` fields, the loader's (noise_density, mean_noise_span_length, input_length,
     max_tokens, doc_separator, masking: `dynamic` a new mask every epoch, `static` one mask per
     window for the whole run, as RoBERTa's static masking) -> data_options
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Mapping

from c4clean.ablate.plan import AblationError, Plan, RunSpec, cast_option
from c4clean.train.data_options import DataOptions

DERIVED = ("layers", "width")
# TrainConfig fields an ablation controls itself (or that make no sense per run)
RESERVED_TRAIN = {
    "data",
    "out",
    "steps",
    "resume",
    "model_overrides",
    "data_options",
    "progress",
    "world_size",
    "init",
}
# model fields the trainer derives from the token directory's vocabulary
RESERVED_MODEL = {"vocab_size", "pad_token_id", "eos_token_id", "decoder_start_token_id"}


def width_overrides(width: int) -> dict[str, int]:
    if width < 64 or width % 64:
        raise AblationError(f"width {width} must be a positive multiple of 64 (heads of 64 dimensions)")
    return {
        "d_model": width,
        "num_heads": width // 64,
        "d_kv": 64,
        "d_ff": max(64, round(width * 8 / 3 / 64) * 64),
    }


class TrainerBackend:
    """Adapter from ablation runs to `c4clean.train.trainer.train` and `c4clean.train.data`."""

    def __init__(
        self,
        launcher: str = "subprocess",
        eval_batches: int = 20,
        eval_batch_size: int = 8,
        seed: int = 0,
        progress: bool = True,
    ):
        if launcher not in ("subprocess", "inprocess"):
            raise AblationError(f"unknown launcher {launcher!r}")
        self.launcher, self.eval_batches, self.eval_batch_size = launcher, eval_batches, eval_batch_size
        self.eval_seed, self.progress = seed, progress

    # --- option routing ----------------------------------------------------------------------

    @staticmethod
    def _train_defaults() -> dict[str, Any]:
        from c4clean.train.trainer import TrainConfig

        cfg = TrainConfig(data="", out="")
        return {
            f.name: getattr(cfg, f.name)
            for f in dataclasses.fields(TrainConfig)
            if f.name not in RESERVED_TRAIN
        }

    @staticmethod
    def _model_defaults() -> dict[str, Any]:
        from c4clean.train.model import T5Config

        cfg = T5Config()
        return {
            f.name: getattr(cfg, f.name) for f in dataclasses.fields(T5Config) if f.name not in RESERVED_MODEL
        }

    def defaults(self) -> dict[str, Any]:
        """Defaults for token counting and for settings every run shares (batch size, preset, seed)."""
        return {**DataOptions.defaults(), **self._train_defaults()}

    def route(self, options: Mapping[str, str]) -> tuple[dict, dict, dict]:
        """(TrainConfig kwargs, model_overrides, data_options) from string options, checked."""
        train_d, model_d, data_d = self._train_defaults(), self._model_defaults(), DataOptions.defaults()
        train, model, data = {}, {}, {}
        for key, value in options.items():
            if key == "layers":
                n = cast_option(value, 0, key)
                model.update(num_layers=n, num_decoder_layers=n)
            elif key == "width":
                model.update(width_overrides(cast_option(value, 0, key)))
            elif key in train_d:
                train[key] = cast_option(value, train_d[key], key)
            elif key in model_d:
                model[key] = cast_option(value, model_d[key], key)
            elif key in data_d:
                data[key] = cast_option(value, data_d[key], key)
            else:
                known = sorted({*DERIVED, *train_d, *model_d, *data_d})
                raise AblationError(
                    f"unknown train/data option {key!r}; ablatable options: {', '.join(known)}"
                )
        try:
            DataOptions.from_dict(data)
        except ValueError as e:
            raise AblationError(str(e)) from None
        return train, model, data

    def check_options(self, options: Mapping[str, str]) -> None:
        self.route(options)

    def scoring(self) -> dict[str, int]:
        """How final models are scored; saved in the plan so every later `ablate run` scores alike."""
        return {
            "eval_batches": self.eval_batches,
            "eval_batch_size": self.eval_batch_size,
            "eval_seed": self.eval_seed,
        }

    @classmethod
    def for_plan(cls, plan, launcher: str = "subprocess") -> "TrainerBackend":
        return cls(
            launcher=launcher,
            **{k if k != "eval_seed" else "seed": v for k, v in plan.settings["scoring"].items()},
        )

    def _scoring_set(self, token_dir: str, data_options: Mapping):
        """The validation batches a run is scored on: the same for every run of a plan."""
        from c4clean.train import data as D

        return D.T5SpanCorruptionDataset(
            token_dir,
            "validation",
            batch_size=self.eval_batch_size,
            seed=self.eval_seed,
            shuffle=False,
            num_epochs=1,
            **data_options,
        )

    def scoring_problem(self, token_dir: str, options: Mapping[str, str]) -> str | None:
        """Why the validation split of `token_dir` cannot score a run with `options`, or None."""
        _, _, data_options = self.route(options)
        data_options.pop("max_tokens", None)
        try:
            self._scoring_set(token_dir, data_options)
        except (ValueError, KeyError, FileNotFoundError) as e:
            return f"{e.__class__.__name__}: {e}"
        return None

    def train_config(self, run: RunSpec, run_dir: Path, resume: bool):
        from c4clean.train.trainer import TrainConfig

        train, model, data = self.route(run.options)
        return TrainConfig(
            data=run.data,
            out=str(run_dir),
            steps=run.steps,
            resume=resume,
            model_overrides=model,
            data_options=data,
            progress=self.progress,
            **train,
        )

    def train_argv(self, run: RunSpec, run_dir: Path, resume: bool) -> list[str]:
        """The command that trains one run of a saved plan (what `--dry-run` prints for a scheduler)."""
        out = run_dir.parent.parent
        return ["ablate", "run", "--output", str(out), "--only", run.name]

    # --- training ----------------------------------------------------------------------------

    def train(self, run: RunSpec, run_dir: Path, resume: bool) -> None:
        if self.launcher == "subprocess":
            # a child process per run: memory (and GPU memory) is returned between runs, and a crash
            # of one run cannot take the ablation's bookkeeping with it
            cmd = [
                sys.executable,
                "-m",
                "c4clean.ablate.backend",
                str(run_dir.parent.parent),
                run.name,
                "--resume" if resume else "--fresh",
            ]
            rc = subprocess.call(cmd, env={**os.environ, "PYTHONUNBUFFERED": "1"})
            if rc != 0:
                raise AblationError(f"run {run.name}: training exited with status {rc}")
            return
        self.train_inprocess(run, run_dir, resume)

    def train_inprocess(self, run: RunSpec, run_dir: Path, resume: bool) -> dict:
        from c4clean.train import trainer

        cfg = self.train_config(run, run_dir, resume)
        try:
            return trainer.train(cfg)
        except trainer.TrainingError as e:
            raise AblationError(f"run {run.name}: {e}") from e

    def final_step(self, run_dir: Path) -> int | None:
        """Step of the newest complete checkpoint (checkpoint dirs appear atomically), None if none."""
        from c4clean.train.checkpoint import list_checkpoints

        found = list_checkpoints(run_dir)
        return found[-1][0] if found else None

    # --- reading results ---------------------------------------------------------------------

    def evaluate(self, run_dir: Path, token_dir: str, options: Mapping[str, str] | None = None) -> dict:
        """Mean loss of the run's newest checkpoint on the validation split of `token_dir`, with the
        run's own objective (input length, noise density, span length) but never its subset:
        a fixed, unshuffled set of batches with fixed masks, identical for every run scored on it."""
        import torch

        from c4clean.train import data as D
        from c4clean.train.checkpoint import latest_checkpoint, load_model_dir
        from c4clean.train.evaluate import evaluate_loss

        ckpt = latest_checkpoint(run_dir)
        if ckpt is None:
            raise AblationError(f"{run_dir} has no checkpoint to evaluate")
        run_json = json.loads((Path(run_dir) / "run.json").read_text())
        data_options = {
            k: v for k, v in run_json["train"].get("data_options", {}).items() if k != "max_tokens"
        }
        model = load_model_dir(ckpt)
        vocab = D.vocab_info(token_dir)
        if vocab.sha256 != run_json["vocab"]["sha256"]:
            raise AblationError(
                f"{token_dir} uses another vocabulary than run {run_dir}: losses would not compare"
            )
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        model.to(device).eval()
        try:
            dataset = self._scoring_set(token_dir, data_options)
        except ValueError as e:
            raise AblationError(f"cannot score on {token_dir}: {e} (lower --eval-batch-size)") from e
        result = evaluate_loss(
            model, dataset, device=device, bf16=device.type == "cuda", max_batches=self.eval_batches
        )
        return {
            "loss": result.loss,
            "batches": result.batches,
            "target_tokens": result.target_tokens,
            "checkpoint": ckpt.name,
        }

    @staticmethod
    def corpus_tokens(token_dir: str, split: str) -> int:
        from c4clean.tokenize.encode import read_manifest

        manifest = read_manifest(token_dir)
        if split not in manifest["splits"]:
            raise AblationError(f"{token_dir} has no {split!r} split (has {sorted(manifest['splits'])})")
        return int(manifest["splits"][split]["tokens"])

    @staticmethod
    def check_same_vocabulary(corpora: Mapping[str, str]) -> None:
        from c4clean.tokenize.encode import read_manifest

        shas = {label: read_manifest(path)["vocab"]["sha256"] for label, path in corpora.items()}
        if len(set(shas.values())) > 1:
            raise AblationError(
                f"the corpora use different vocabularies, so their losses do not compare: {shas}; "
                "encode them all with one vocabulary"
            )


def _main(argv: list[str]) -> int:
    """Child-process entry: `python -m c4clean.ablate.backend OUT RUN --resume|--fresh`."""
    out, name, mode = argv
    plan = Plan.load(Path(out))
    run = next((r for r in plan.runs if r.name == name), None)
    if run is None:
        print(f"no run {name!r} in {out}", file=sys.stderr)
        return 2
    try:
        TrainerBackend(launcher="inprocess").train_inprocess(
            run, plan.run_dir(run), resume=mode == "--resume"
        )
    except AblationError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
