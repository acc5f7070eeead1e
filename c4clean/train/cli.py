"""`c4clean train` and `c4clean export` (to and from Hugging Face T5 checkpoints)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import click

from c4clean.cli_options import RenamedOption, input_option, output_option
from c4clean.train.config import MODEL_OVERRIDES, OPTIMIZERS, PRECISIONS, TrainConfig, TrainingError
from c4clean.train.data_options import DataOptions
from c4clean.train.model_config import ATTENTIONS, INIT_STYLES, PRESETS, T5Config

D = TrainConfig.defaults()  # every default is TrainConfig's
DATA_OPTION_NAMES = DataOptions.names()


def _parse_model_overrides(items) -> dict:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key not in MODEL_OVERRIDES:
            raise click.BadParameter(
                f"{item!r}: expected KEY=VALUE with KEY one of {sorted(MODEL_OVERRIDES)}",
                param_hint="--model",
            )
        kind = type(getattr(T5Config(), key))
        try:
            out[key] = kind(value)
        except ValueError:
            raise click.BadParameter(
                f"{item!r}: {key} takes a {kind.__name__}", param_hint="--model"
            ) from None
    return out


def _opt(name: str, help: str, **kwargs):
    """An option whose default is TrainConfig's (shown in --help)."""
    field = name.lstrip("-").replace("-", "_")
    return click.option(name, default=D[field], show_default=D[field] is not None, help=help, **kwargs)


@click.command("train")
@input_option(
    "data",
    old=("--data",),
    required=True,
    type=click.Path(file_okay=False),
    help="Token directory (`c4clean tokenize encode`).",
)
@output_option(
    "out",
    old=("--out",),
    required=True,
    type=click.Path(file_okay=False),
    help="Run directory (checkpoints, metrics.jsonl).",
)
@_opt("--preset", "Model shape.", type=click.Choice(sorted(PRESETS)))
@click.option(
    "--model",
    "model_overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a preset field, e.g. --model num_layers=4 (repeatable).",
)
@_opt("--steps", "Optimizer steps.", type=int)
@_opt("--batch-size", "Sequences per optimizer step (all GPUs and accumulation steps together).", type=int)
@_opt("--grad-accum", "Micro-batches per optimizer step.", type=int)
@_opt("--optimizer", "Optimizer.", type=click.Choice(OPTIMIZERS))
@_opt("--lr", "Peak learning rate [adafactor 0.01, adamw 1e-3].", type=float)
@_opt("--warmup-steps", "Adafactor: constant-lr steps before rsqrt decay; AdamW: linear warm-up.", type=int)
@_opt("--min-lr", "AdamW: lr at the end of the cosine.", type=float)
@_opt("--weight-decay", "AdamW weight decay.", type=float)
@click.option(
    "--clip-grad-norm",
    "--clip-grad",
    "clip_grad_norm",
    cls=RenamedOption,
    old=("--clip-grad",),
    type=float,
    default=None,
    help="Max global gradient norm, 0: off [adafactor: off, as T5; adamw: 1.0].",
)
@_opt("--z-loss", "Mesh TF's z-loss weight (T5: 1e-4; 0: plain cross-entropy).", type=float)
@_opt(
    "--init-style",
    "Weight initialisation: Mesh TF's (T5's) or Hugging Face's.",
    type=click.Choice(INIT_STYLES),
)
@_opt("--eval-every", "Validation loss every N steps (0: off).", type=int)
@_opt("--eval-batches", "Validation batches per evaluation.", type=int)
@_opt("--eval-batch-size", "Default: the per-rank micro-batch.", type=int)
@_opt("--save-every", "Checkpoint every N steps (and at the end).", type=int)
@_opt("--keep-checkpoints", "Newest checkpoints kept (0: all).", type=int)
@_opt("--log-every", "Metrics record every N steps.", type=int)
@_opt("--seed", "Seed of initialisation, data order and masks.", type=int)
@click.option("--compile", "compile", is_flag=True, help="torch.compile the model.")
@_opt(
    "--attention",
    "Self-attention kernel: sdpa (dense bias mask) or flex (bias inside a FlexAttention kernel; CUDA).",
    type=click.Choice(ATTENTIONS),
)
@_opt("--precision", "auto: bf16 autocast (+TF32) on CUDA, fp32 on CPU.", type=click.Choice(PRECISIONS))
@_opt("--device", "Default: cuda (LOCAL_RANK under torchrun) when available, else cpu.")
@click.option("--resume", is_flag=True, help="Continue from the newest intact checkpoint in --output.")
@click.option(
    "--init",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    help="Initial weights: a c4clean model/checkpoint directory or a Hugging Face T5 v1.1 directory.",
)
@click.option(
    "--teacher",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    help="Pre-trained distillation: a c4clean run directory (same vocabulary) whose newest "
    "checkpoint teaches this run, frozen.",
)
@_opt(
    "--distill-alpha",
    "Weight of the teacher's soft targets (KL at the temperature) vs the labels.",
    type=float,
)
@_opt("--distill-temperature", "Softmax temperature of the distillation.", type=float)
@click.option(
    "--objective",
    default=None,
    help="Pre-training objective [random_spans]: random_spans, prefix_lm, bert, mass, "
    "iid_replace_spans, iid_drop, deshuffle (see `c4clean objectives`).",
)
@click.option(
    "--masking",
    type=click.Choice(["dynamic", "static"]),
    default=None,
    help="dynamic: new noise every epoch [default]; static: one noise pattern per window (RoBERTa).",
)
@click.option(
    "--input-length", type=int, default=None, help="Encoder length [512]; targets follow (114 for 512)."
)
@click.option("--noise-density", type=float, default=None, help="Span corruption noise density [0.15].")
@click.option("--mean-noise-span-length", type=float, default=None, help="Mean noise span length [3].")
@click.option("--max-tokens", type=int, default=None, help="Train on the first N tokens of the corpus only.")
@click.option(
    "--doc-separator",
    type=click.Choice(["none", "eos"]),
    default=None,
    help="eos: put EOS between documents at load time (HF/nanoT5); default: as encoded.",
)
@_opt("--loader-workers", "DataLoader worker processes [4 on CUDA, 0 on CPU].", type=int)
@_opt(
    "--cpu-threads",
    "torch threads on CPU [OMP_NUM_THREADS, else cores - loader workers - 1].",
    type=int,
)
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def train(model_overrides, no_progress, **options):
    """Pre-train T5 v1.1 with span corruption on a token directory (CPU, CUDA, DDP under torchrun)."""
    from c4clean.train.trainer import train as run_training

    data_options = {k: options.pop(k) for k in DATA_OPTION_NAMES}
    ctx = click.get_current_context()
    set_distill = [
        f"--{k.replace('_', '-')}"
        for k in ("distill_alpha", "distill_temperature")
        if ctx.get_parameter_source(k) != click.core.ParameterSource.DEFAULT
    ]
    if set_distill and not options["teacher"]:
        raise click.UsageError(f"{' / '.join(set_distill)} need --teacher")
    try:
        cfg = TrainConfig(
            **options,
            model_overrides=_parse_model_overrides(model_overrides),
            data_options={k: v for k, v in data_options.items() if v is not None},
            progress=not no_progress,
        )
    except TrainingError as e:
        raise click.UsageError(str(e)) from None
    try:
        summary = run_training(cfg)
    except TrainingError as e:
        raise click.ClickException(str(e)) from e
    click.echo(json.dumps(summary))


@click.command("export")
@click.argument(
    "source_arg", metavar="[SOURCE]", required=False, type=click.Path(exists=True, file_okay=False)
)
@input_option(
    "source",
    type=click.Path(exists=True, file_okay=False),
    help="Run, checkpoint or model directory to export (or give it as SOURCE).",
)
@output_option(
    "out", old=("--out",), required=True, type=click.Path(file_okay=False), help="Directory to write."
)
@click.option(
    "--from-hf",
    is_flag=True,
    help="Import: SOURCE is a Hugging Face T5 v1.1 directory; write a c4clean model directory.",
)
@click.option(
    "--vocab",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    help="Vocabulary directory (`c4clean tokenize train-vocab`) whose tokenizer goes into the export.",
)
@click.option(
    "--weights-only", is_flag=True, help="Export config.json + model.safetensors without tokenizer."
)
def export(source_arg, source, out, from_hf, vocab, weights_only):
    """Export a run (its final model, else its newest intact checkpoint) or a model directory to a
    Hugging Face folder (config.json, model.safetensors, and the tokenizer of --vocab: spiece.model,
    tokenizer.json, tokenizer_config.json, special tokens); with --from-hf, import one."""
    if (source is None) == (source_arg is None):
        raise click.UsageError("give the directory to export once: --input DIR (or as SOURCE)")
    if not (from_hf or vocab or weights_only):
        raise click.UsageError(
            "give --vocab DIR, the vocabulary the run's tokens were encoded with, so that the export "
            "includes its tokenizer (or --weights-only for config.json + model.safetensors alone)"
        )
    source = source or source_arg
    from c4clean.train import checkpoint as ckpt
    from c4clean.train.hf_export import export_hf, import_hf

    try:
        if from_hf:
            model = import_hf(source)
            ckpt.save_model_dir(model, out, {"imported_from": str(Path(source).resolve())})
        else:
            model_dir = _model_dir(Path(source))
            model = ckpt.load_model_dir(model_dir)
            sha = ckpt.read_model_config(model_dir)[1].get("vocab", {}).get("sha256")
            export_hf(model, out, None if weights_only else vocab, vocab_sha256=sha)
    except (ValueError, FileNotFoundError) as e:
        raise click.ClickException(str(e)) from e
    click.echo(f"wrote {out} ({model.num_parameters():,} parameters)")


def _model_dir(source: Path) -> Path:
    """A model directory given as such; else the run's final model, else its newest intact checkpoint
    (damaged ones are skipped with a warning)."""
    from c4clean import formats
    from c4clean.train import checkpoint as ckpt

    if (source / formats.MODEL_WEIGHTS_FILE).is_file() or (source / formats.MODEL_CONFIG_FILE).is_file():
        return source
    final = source / "final"
    if final.is_dir():
        try:
            ckpt.verify(final)
            return final
        except ckpt.DamagedCheckpoint as damage:
            logging.getLogger(__name__).warning("skipping damaged final model: %s", damage)
    latest = ckpt.latest_checkpoint(source)
    if latest is None:
        raise FileNotFoundError(
            f"{source}: no intact model.safetensors, final/ or checkpoints/step-*/ to export"
        )
    return latest
