"""`c4clean ablate size|domain|sweep|objectives|compact|run|report`: plan, run (resumably) and report
ablations."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click

from c4clean.ablate import plan as A
from c4clean.cli_options import input_option, output_option


def _common(f):
    """Options shared by every ablation: what each run trains with and how runs are executed."""
    options = [
        click.option(
            "--preset", default="t5-v1_1-small", show_default=True, help="Model preset of every run."
        ),
        click.option(
            "--batch-size", type=int, default=128, show_default=True, help="Sequences per optimizer step."
        ),
        click.option(
            "--budget",
            default=None,
            help="Training tokens per run (2^35, 34359738368): steps = budget / (batch × tokens per sample).",
        ),
        click.option(
            "--steps", type=int, default=None, help="Fixed optimizer steps per run instead of --budget."
        ),
        click.option(
            "--count",
            type=click.Choice(["raw", "inputs", "inputs+targets"]),
            default="raw",
            show_default=True,
            help="Tokens per sample for the budget: raw = corpus tokens read (568 for 512 inputs; "
            "repeats = real passes), inputs = encoder length (the paper's 2^35 = 2^19×128×512).",
        ),
        click.option("--seed", type=int, default=0, show_default=True, help="Same seed for every run."),
        click.option(
            "--set",
            "set_options",
            multiple=True,
            metavar="KEY=VALUE",
            help="Any other `c4clean train` option for every run (repeatable), e.g. --set lr=0.01.",
        ),
        output_option(
            "out",
            old=("--out",),
            required=True,
            type=click.Path(file_okay=False, path_type=Path),
            help="Ablation directory: runs/<name>/ are c4clean train runs; results.csv, report.md, *.png.",
        ),
        click.option(
            "--shard",
            default=None,
            metavar="I/N",
            help="Execute only runs i, i+n, ... (one process per GPU/machine on a shared file system).",
        ),
        click.option("--only", multiple=True, metavar="RUN", help="Execute only this run (repeatable)."),
        click.option(
            "--launcher",
            type=click.Choice(["subprocess", "inprocess"]),
            default="subprocess",
            show_default=True,
            help="Run `c4clean train` as a child process (isolated) or in this one.",
        ),
        click.option(
            "--eval-batches",
            type=int,
            default=20,
            show_default=True,
            help="Validation batches for each final model on each evaluation corpus.",
        ),
        click.option("--eval-batch-size", type=int, default=None, help="Default: --batch-size."),
        click.option(
            "--dry-run", is_flag=True, help="Write the plan and print the train commands; train nothing."
        ),
        click.option("--report-only", is_flag=True, help="Only rebuild results.csv, report.md and plots."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _parse_set(items) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} must be KEY=VALUE", param_hint="--set")
        out[A.canonical_option(key)] = value
    return out


def _setup(kw):
    from c4clean.ablate.backend import TrainerBackend

    if (kw["budget"] is None) == (kw["steps"] is None):
        raise click.UsageError("give exactly one of --budget (tokens) and --steps")
    backend = TrainerBackend(
        launcher=kw["launcher"],
        eval_batches=kw["eval_batches"],
        eval_batch_size=kw["eval_batch_size"] or kw["batch_size"],
        seed=kw["seed"],
    )
    common = {
        "preset": kw["preset"],
        "batch_size": str(kw["batch_size"]),
        "seed": str(kw["seed"]),
        **_parse_set(kw["set_options"]),
    }
    budget = A.parse_count(kw["budget"]) if kw["budget"] is not None else None
    # what every plan_* takes alike
    shared = {
        "common": common,
        "budget_tokens": budget,
        "steps": kw["steps"],
        "count": kw["count"],
        "defaults": backend.defaults(),
    }
    return backend, shared


def _finish(plan: A.Plan, backend, kw) -> None:

    for run in plan.runs:  # fail before training if an option is unknown to the trainer
        backend.check_options(run.options)
    if not kw["report_only"]:
        problems = {}  # evaluation corpus -> why some run could not be scored on it
        for run in plan.runs:
            for label, path in run.eval_sets.items():
                if label not in problems and (why := backend.scoring_problem(path, run.options)):
                    problems[label] = why
        A.drop_unscorable(plan, problems)
        for label, why in problems.items():
            click.echo(f"warning: no validation loss on {label}: {why}", err=True)
        plan.settings["scoring"] = backend.scoring()
        A.save_plan(plan)
    else:
        plan = A.Plan.load(plan.out)
    runs = A.select_runs(plan.runs, A.parse_shard(kw["shard"]), kw["only"])
    if kw["dry_run"]:
        for run in runs:
            click.echo(f"# {run.name}: {run.steps} steps")
            click.echo(shlex.join(["c4clean", *backend.train_argv(run, plan.run_dir(run), resume=False)]))
        return
    if not kw["report_only"]:
        outcome = A.execute(plan, backend, runs, echo=lambda m: click.echo(m, err=True))
        click.echo(f"runs: {outcome}", err=True)
    _report(plan)


def _report(plan: A.Plan) -> None:
    from c4clean.ablate.report import rebuild

    for path in rebuild(plan, warn=lambda m: click.echo(m, err=True)):
        click.echo(str(path))


def _guard(fn):
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except A.AblationError as e:
            raise click.ClickException(str(e)) from None

    wrapper.__name__, wrapper.__doc__ = fn.__name__, fn.__doc__
    return wrapper


# The token directory every plan trains on (`c4clean tokenize encode`'s output).
_token_data = input_option(
    "data",
    old=("--data",),
    required=True,
    type=click.Path(exists=True, file_okay=False),
    help="Token directory.",
)


@click.group()
def ablate() -> None:
    """Ablations: many `c4clean train` runs that differ in one thing, resumable, one report.

    Re-running the same command continues an interrupted ablation: finished runs are skipped,
    unfinished ones resume from their last checkpoint."""


@ablate.command()
@_token_data
@click.option("--tokens", "tokens", default="", help="Subset sizes: 2^23,2^25,2^27,2^29 (first N tokens).")
@click.option("--full/--no-full", default=True, show_default=True, help="Also train on the full corpus.")
@_common
@_guard
def size(data, tokens, full, **kw):
    """Dataset size (T5 Table 9): first N tokens, repeated to the same budget; val loss on the full corpus."""
    backend, shared = _setup(kw)
    subsets = [A.parse_count(t) for t in tokens.split(",") if t.strip()]
    plan = A.plan_size(
        kw["out"],
        data,
        subsets,
        include_full=full,
        corpus_tokens=backend.corpus_tokens(data, "train"),
        **shared,
    )
    _finish(plan, backend, kw)


@ablate.command(context_settings={"ignore_unknown_options": False})
@input_option(
    "data",
    old=("--data",),
    multiple=True,
    required=True,
    metavar="NAME=DIR",
    help="A named token corpus; repeat, or list several after one --input.",
)
@click.argument("more", nargs=-1, metavar="[NAME=DIR]...")
@_common
@_guard
def domain(data, more, **kw):
    """Pre-training data set (T5 Table 8): one run per corpus; every run scored on every corpus."""
    backend, shared = _setup(kw)
    corpora = A.parse_corpora([*data, *more])
    for label, path in corpora.items():
        if not Path(path).is_dir():
            raise A.AblationError(f"corpus {label}: {path} is not a directory")
    backend.check_same_vocabulary(corpora)
    plan = A.plan_domain(
        kw["out"],
        corpora,
        corpus_tokens={k: backend.corpus_tokens(v, "train") for k, v in corpora.items()},
        validation_tokens={k: backend.corpus_tokens(v, "validation") for k, v in corpora.items()},
        **shared,
    )
    _finish(plan, backend, kw)


@ablate.command()
@_token_data
@click.option(
    "--axis",
    "axes",
    multiple=True,
    required=True,
    metavar="NAME=V1,V2,...",
    help="An ablated train option and its values (repeatable).",
)
@click.option(
    "--zip",
    "zipped",
    is_flag=True,
    help="Pair the i-th values of all axes instead of every combination (the default).",
)
@_common
@_guard
def sweep(data, axes, zipped, **kw):
    """Any train/data options as axes: every combination (or --zip), one run each.

    Examples: --axis noise_density=0.10,0.15,0.25,0.50 --axis mean_span=2,3,5,10;
    --axis num_layers=2,4,6 --axis d_model=128,256,512; --axis masking=static,dynamic."""
    backend, shared = _setup(kw)
    parsed = [A.parse_axis(a) for a in axes]
    plan = A.plan_sweep(
        kw["out"],
        data,
        parsed,
        mode="zip" if zipped else "product",
        corpus_tokens=backend.corpus_tokens(data, "train"),
        **shared,
    )
    _finish(plan, backend, kw)


@ablate.command()
@_token_data
@click.option(
    "--study",
    "studies",
    default="approaches,strategies,rates,spans",
    show_default=True,
    help="Which of the paper's comparisons: approaches (Table 4), strategies (5), rates (6), spans (7).",
)
@_common
@_guard
def objectives(data, studies, **kw):
    """The T5 paper's objective exploration (Tables 4-7): prefix LM / BERT-style / deshuffling; MASS,
    i.i.d. replace spans, i.i.d. drop, random spans; rates 10/15/25/50%; span lengths 2/3/5/10.

    Shared rows train once. Without --count, every run gets the same number of steps (tokens counted
    as encoder inputs, the paper's 2^35 = 2^19 steps x 128 x 512), whatever its raw window."""
    if click.get_current_context().get_parameter_source("count") == click.core.ParameterSource.DEFAULT:
        kw["count"] = "inputs"
    backend, shared = _setup(kw)
    plan = A.plan_objectives(
        kw["out"],
        data,
        [s.strip() for s in studies.split(",") if s.strip()],
        corpus_tokens=backend.corpus_tokens(data, "train"),
        **shared,
    )
    _finish(plan, backend, kw)


@ablate.command()
@_token_data
@click.option("--layers", default="2,4,6,8,10,12", show_default=True, help="Encoder (= decoder) layers.")
@click.option("--widths", default="128,256,512,768", show_default=True, help="d_model values (heads of 64).")
@click.option(
    "--teacher",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    help="A trained run directory (same vocabulary): every student also trains distilled from it.",
)
@_common
@_guard
def compact(data, layers, widths, teacher, **kw):
    """Compact models (Turc et al.): a layers x width grid of students, each trained on the labels
    and, with --teacher, also with pre-trained distillation; --set distill_alpha=, distill_temperature=."""
    from c4clean.train.data import vocab_info
    from c4clean.train.distill import DistillError, check_vocabulary

    backend, shared = _setup(kw)
    if teacher:
        try:
            check_vocabulary(teacher, vocab_info(data).to_json())
        except DistillError as e:
            raise A.AblationError(str(e)) from None
    plan = A.plan_compact(
        kw["out"],
        data,
        [A.cast_option(x, 0, "layers") for x in layers.split(",") if x.strip()],
        [A.cast_option(x, 0, "width") for x in widths.split(",") if x.strip()],
        str(Path(teacher).resolve()) if teacher else None,
        corpus_tokens=backend.corpus_tokens(data, "train"),
        **shared,
    )
    _finish(plan, backend, kw)


@ablate.command("run")
@output_option(
    "out",
    old=("--out",),
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="An ablation directory planned by size/domain/sweep/objectives/compact (its ablation.json).",
)
@click.option("--shard", default=None, metavar="I/N", help="Execute only runs i, i+n, ...")
@click.option("--only", multiple=True, metavar="RUN", help="Execute only this run (repeatable).")
@click.option(
    "--launcher", type=click.Choice(["subprocess", "inprocess"]), default="subprocess", show_default=True
)
@_guard
def run_cmd(out, shard, only, launcher):
    """Train and score runs of a saved plan: one machine or GPU per --shard/--only, same file system.
    Runs are scored as the plan says (its --eval-batches / --eval-batch-size)."""
    from c4clean.ablate.backend import TrainerBackend

    plan = A.Plan.load(out)
    backend = TrainerBackend.for_plan(plan, launcher)
    runs = A.select_runs(plan.runs, A.parse_shard(shard), only)
    click.echo(f"runs: {A.execute(plan, backend, runs, echo=lambda m: click.echo(m, err=True))}", err=True)
    _report(plan)


@ablate.command()
@input_option(
    "out",
    old=("--out",),
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Ablation directory (its ablation.json and runs/); the report is written into it.",
)
@_guard
def report(out):
    """Rebuild results.csv, report.md and the plots of an ablation directory from its runs."""
    _report(A.Plan.load(out))


if __name__ == "__main__":
    sys.exit(ablate())
