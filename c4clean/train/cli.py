"""`c4clean train` and `c4clean export` (to and from Hugging Face T5 checkpoints)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from c4clean.cli_options import input_option, output_option
from c4clean.train.model_config import PRESETS, T5Config

# T5Config fields a user may override on top of a preset (--model key=value)
_MODEL_FIELDS = {
    f
    for f in T5Config.__dataclass_fields__
    if f not in ("vocab_size", "pad_token_id", "eos_token_id", "decoder_start_token_id")
}


def _parse_model_overrides(items) -> dict:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key not in _MODEL_FIELDS:
            raise click.BadParameter(
                f"{item!r}: expected KEY=VALUE with KEY one of {sorted(_MODEL_FIELDS)}", param_hint="--model"
            )
        kind = type(getattr(T5Config(), key))
        try:
            out[key] = kind(value)
        except ValueError:
            raise click.BadParameter(
                f"{item!r}: {key} takes a {kind.__name__}", param_hint="--model"
            ) from None
    return out


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
@click.option("--preset", type=click.Choice(sorted(PRESETS)), default="t5-v1_1-small", show_default=True)
@click.option(
    "--model",
    "model_overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a preset field, e.g. --model num_layers=4 (repeatable).",
)
@click.option("--steps", type=int, default=10_000, show_default=True, help="Optimizer steps.")
@click.option(
    "--batch-size",
    type=int,
    default=128,
    show_default=True,
    help="Sequences per optimizer step (all GPUs and accumulation steps together).",
)
@click.option(
    "--grad-accum", type=int, default=1, show_default=True, help="Micro-batches per optimizer step."
)
@click.option(
    "--optimizer", type=click.Choice(["adafactor", "adamw"]), default="adafactor", show_default=True
)
@click.option("--lr", type=float, default=None, help="Peak learning rate [adafactor 0.01, adamw 1e-3].")
@click.option(
    "--warmup-steps",
    type=int,
    default=10_000,
    show_default=True,
    help="Adafactor: constant-lr steps before rsqrt decay; AdamW: linear warm-up steps.",
)
@click.option(
    "--min-lr", type=float, default=1e-5, show_default=True, help="AdamW: lr at the end of the cosine."
)
@click.option("--weight-decay", type=float, default=0.0, show_default=True, help="AdamW weight decay.")
@click.option(
    "--clip-grad", type=float, default=1.0, show_default=True, help="Max global gradient norm (0: off)."
)
@click.option(
    "--eval-every", type=int, default=1000, show_default=True, help="Validation loss every N steps (0: off)."
)
@click.option("--eval-batches", type=int, default=20, show_default=True)
@click.option("--eval-batch-size", type=int, default=None, help="Default: the per-rank micro-batch.")
@click.option(
    "--save-every",
    type=int,
    default=1000,
    show_default=True,
    help="Checkpoint every N steps (and at the end).",
)
@click.option(
    "--keep-checkpoints", type=int, default=2, show_default=True, help="Newest checkpoints kept (0: all)."
)
@click.option("--log-every", type=int, default=10, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--compile", "compile_", is_flag=True, help="torch.compile the model.")
@click.option(
    "--precision",
    type=click.Choice(["auto", "fp32", "bf16"]),
    default="auto",
    show_default=True,
    help="auto: bf16 autocast (+TF32) on CUDA, fp32 on CPU.",
)
@click.option(
    "--device", default=None, help="Default: cuda (LOCAL_RANK under torchrun) when available, else cpu."
)
@click.option("--resume", is_flag=True, help="Continue from the newest intact checkpoint in --output.")
@click.option(
    "--init",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    help="Initial weights: a c4clean model/checkpoint directory or a Hugging Face T5 v1.1 directory.",
)
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
@click.option(
    "--loader-workers", type=int, default=None, help="DataLoader worker processes [4 on CUDA, 0 on CPU]."
)
@click.option(
    "--cpu-threads",
    type=int,
    default=None,
    help="torch threads; on a busy shared CPU, 1 can be many times faster than oversubscribing.",
)
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def train(
    data,
    out,
    preset,
    model_overrides,
    steps,
    batch_size,
    grad_accum,
    optimizer,
    lr,
    warmup_steps,
    min_lr,
    weight_decay,
    clip_grad,
    eval_every,
    eval_batches,
    eval_batch_size,
    save_every,
    keep_checkpoints,
    log_every,
    seed,
    compile_,
    precision,
    device,
    resume,
    init,
    objective,
    masking,
    input_length,
    noise_density,
    mean_noise_span_length,
    max_tokens,
    doc_separator,
    loader_workers,
    cpu_threads,
    no_progress,
):
    """Pre-train T5 v1.1 with span corruption on a token directory (CPU, CUDA, DDP under torchrun)."""
    from c4clean.train.data_options import DataOptions
    from c4clean.train.trainer import TrainConfig, TrainingError
    from c4clean.train.trainer import train as run_training

    data_options = {
        k: v
        for k, v in dict(
            objective=objective,
            masking=masking,
            input_length=input_length,
            noise_density=noise_density,
            mean_noise_span_length=mean_noise_span_length,
            max_tokens=max_tokens,
            doc_separator=doc_separator,
        ).items()
        if v is not None
    }
    try:  # bad objective settings are errors before anything loads
        DataOptions.from_dict(data_options)
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    cfg = TrainConfig(
        data=data,
        out=out,
        preset=preset,
        model_overrides=_parse_model_overrides(model_overrides),
        steps=steps,
        batch_size=batch_size,
        grad_accum=grad_accum,
        optimizer=optimizer,
        lr=lr,
        warmup_steps=warmup_steps,
        min_lr=min_lr,
        weight_decay=weight_decay,
        clip_grad=clip_grad,
        eval_every=eval_every,
        eval_batches=eval_batches,
        eval_batch_size=eval_batch_size,
        save_every=save_every,
        keep_checkpoints=keep_checkpoints,
        log_every=log_every,
        seed=seed,
        compile=compile_,
        precision=precision,
        device=device,
        resume=resume,
        init=init,
        data_options=data_options,
        loader_workers=loader_workers,
        cpu_threads=cpu_threads,
        progress=not no_progress,
    )
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
def export(source_arg, source, out, from_hf):
    """Export a run (its final model, else its newest intact checkpoint) or a model directory to a
    Hugging Face T5ForConditionalGeneration directory (config.json + model.safetensors); with --from-hf,
    import one."""
    if (source is None) == (source_arg is None):
        raise click.UsageError("give the directory to export once: --input DIR (or as SOURCE)")
    source = source or source_arg
    from c4clean.train import checkpoint as ckpt
    from c4clean.train.hf_export import export_hf, import_hf

    try:
        if from_hf:
            model = import_hf(source)
            ckpt.save_model_dir(model, out, {"imported_from": str(Path(source).resolve())})
        else:
            model = ckpt.load_model_dir(_model_dir(Path(source)))
            export_hf(model, out)
    except (ValueError, FileNotFoundError) as e:
        raise click.ClickException(str(e)) from e
    click.echo(f"wrote {out} ({model.num_parameters():,} parameters)")


def _model_dir(source: Path) -> Path:
    from c4clean.train import checkpoint as ckpt

    if (source / "model.safetensors").is_file():
        return source
    if (source / "final" / "model.safetensors").is_file():
        return source / "final"
    latest = ckpt.latest_checkpoint(source)
    if latest is None:
        raise FileNotFoundError(f"{source}: no model.safetensors, final/ or checkpoints/step-*/ to export")
    return latest
