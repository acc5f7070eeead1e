"""Results of an ablation: `results.csv`, `report.md` (laid out like the T5 paper's Tables 8 and 9)
and PNG plots. Pure functions of (plan, per-run state, per-run training curves), so reports can be
rebuilt at any time from what the runs left on disk.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from c4clean import atomic, markdown
from c4clean.ablate.plan import AblationError, Plan, format_count, load_state

# The T5 paper (arXiv 1910.10683), for orientation only: downstream scores after fine-tuning a
# ~220M model pre-trained on 2^35 tokens with the i.i.d. denoising objective. Never compare them
# numerically with our losses; they show the direction the paper found.
PAPER_COLUMNS = ("GLUE", "CNNDM", "SQuAD", "SGLUE", "EnDe", "EnFr", "EnRo")
PAPER_TABLE9 = {  # number of tokens (None = full C4) -> (repeats, scores)
    None: (0, (83.28, 19.24, 80.88, 71.36, 26.98, 39.82, 27.65)),
    2**29: (64, (82.87, 19.19, 80.97, 72.03, 26.83, 39.74, 27.63)),
    2**27: (256, (82.62, 19.20, 79.78, 69.97, 27.02, 39.71, 27.33)),
    2**25: (1024, (79.55, 18.57, 76.27, 64.76, 26.38, 39.56, 26.80)),
    2**23: (4096, (76.34, 18.33, 70.92, 59.29, 26.37, 38.84, 25.81)),
}
PAPER_TABLE8 = {  # data set -> (size, scores)
    "C4": ("745GB", (83.28, 19.24, 80.88, 71.36, 26.98, 39.82, 27.65)),
    "C4, unfiltered": ("6.1TB", (81.46, 19.14, 78.78, 68.04, 26.55, 39.34, 27.21)),
    "RealNews-like": ("35GB", (83.83, 19.23, 80.39, 72.38, 26.75, 39.90, 27.48)),
    "WebText-like": ("17GB", (84.03, 19.31, 81.42, 71.40, 26.80, 39.74, 27.59)),
    "Wikipedia": ("16GB", (81.85, 19.31, 81.29, 68.01, 26.94, 39.69, 27.67)),
    "Wikipedia + TBC": ("20GB", (83.65, 19.28, 82.08, 73.24, 26.77, 39.63, 27.57)),
}
# corpus labels users give `ablate domain` -> the paper's row of the same recipe
PAPER_DOMAIN_NAMES = {
    "en": "C4",
    "c4": "C4",
    "noclean": "C4, unfiltered",
    "en.noclean": "C4, unfiltered",
    "unfiltered": "C4, unfiltered",
    "realnewslike": "RealNews-like",
    "rn": "RealNews-like",
    "webtextlike": "WebText-like",
    "wikipedia": "Wikipedia",
}
PAPER_TABLE6 = {  # corruption rate (noise density), same model/budget as above
    0.10: (82.82, 19.00, 80.38, 69.55, 26.87, 39.28, 27.44),
    0.15: (83.28, 19.24, 80.88, 71.36, 26.98, 39.82, 27.65),
    0.25: (83.00, 19.54, 80.96, 70.48, 27.04, 39.83, 27.47),
    0.50: (81.27, 19.32, 79.80, 70.33, 27.01, 39.90, 27.49),
}
PAPER_TABLE7 = {  # mean span length at 15% corruption ("i.i.d." = the baseline)
    "i.i.d.": (83.28, 19.24, 80.88, 71.36, 26.98, 39.82, 27.65),
    2.0: (83.54, 19.39, 82.09, 72.20, 26.76, 39.99, 27.63),
    3.0: (83.49, 19.62, 81.84, 72.53, 26.86, 39.65, 27.62),
    5.0: (83.40, 19.24, 82.05, 72.23, 26.88, 39.40, 27.53),
    10.0: (82.85, 19.33, 81.84, 70.44, 26.79, 39.49, 27.69),
}
BASELINE = (83.28, 19.24, 80.88, 71.36, 26.98, 39.82, 27.65)  # the paper's i.i.d. denoising baseline
PAPER_TABLE4 = {  # disparate high-level approaches
    "Prefix language modeling": (80.69, 18.94, 77.99, 65.27, 26.86, 39.73, 27.49),
    "BERT-style": (82.96, 19.17, 80.65, 69.85, 26.78, 40.03, 27.41),
    "Deshuffling": (73.17, 18.59, 67.61, 58.47, 26.11, 39.30, 25.62),
}
PAPER_TABLE5 = {  # simplifying the BERT objective
    "BERT-style": (82.96, 19.17, 80.65, 69.85, 26.78, 40.03, 27.41),
    "MASS-style": (82.32, 19.16, 80.10, 69.28, 26.79, 39.89, 27.55),
    "Replace corrupted spans": BASELINE,
    "Drop corrupted tokens": (84.44, 19.31, 80.52, 68.67, 27.07, 39.76, 27.82),
    "Random spans (Table 7, span 3)": (83.49, 19.62, 81.84, 72.53, 26.86, 39.65, 27.62),
}
PAPER_NOTE = (
    "Columns marked *T5 paper* are the paper's numbers (arXiv 1910.10683), **not ours**: downstream "
    "scores after fine-tuning a ~220M model pre-trained on 2^35 tokens with the i.i.d. denoising "
    "objective. They are here for orientation (which direction the paper found), not for numeric "
    "comparison with our pre-training losses."
)
OBJECTIVE_OPTIONS = {"noise_density", "mean_noise_span_length", "input_length", "doc_separator"}
TAIL_FRACTION = 0.1  # final training loss = mean over the last 10% of logged steps


# --------------------------------------------------------------------------------------------
# what the runs left on disk


def training_curve(run_dir: Path) -> list[tuple[int, float]]:
    """(step, training loss) from the run's metrics.jsonl (each loss averages one log interval)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    curve = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by a kill; the trainer rewrites the log on resume
        if "loss" in record and isinstance(record["loss"], (int, float)) and math.isfinite(record["loss"]):
            curve.append((int(record["step"]), float(record["loss"])))
    return curve


def rebuild(plan: Plan, warn: Callable[[str], None] | None = None) -> list[Path]:
    """The one report path: read every run's state and training curve, write the report files.
    A run whose state belongs to other settings is reported missing (with a warning), not fatal."""
    states = {}
    for run in plan.runs:
        try:
            states[run.name] = load_state(plan, run)
        except AblationError as e:
            if warn is None:
                raise
            warn(f"warning: {e}")
    curves = {run.name: training_curve(plan.run_dir(run)) for run in plan.runs}
    return write_report(plan, states, curves)


# --------------------------------------------------------------------------------------------
# rows


def final_train_loss(curve: Sequence[tuple[int, float]]) -> tuple[float, float]:
    """(mean of the last 10% of logged training losses, last logged loss); single-batch losses
    are noisy, so the mean is the number the report uses."""
    if not curve:
        return math.nan, math.nan
    k = max(1, int(round(len(curve) * TAIL_FRACTION)))
    tail = [loss for _, loss in curve[-k:]]
    return sum(tail) / len(tail), curve[-1][1]


def build_rows(
    plan: Plan, states: Mapping[str, Mapping[str, Any]], curves: Mapping[str, Sequence[tuple[int, float]]]
) -> list[dict[str, Any]]:
    """One row per run of the plan (missing runs get status `missing` and empty numbers)."""
    s = plan.settings
    axis_names = s.get("axes", [])
    eval_labels = list(dict.fromkeys(label for r in plan.runs for label in r.eval_sets))
    rows = []
    for run in plan.runs:
        state = states.get(run.name, {})
        evals = state.get("evals", {})
        train_mean, train_last = final_train_loss(curves.get(run.name, []))
        primary = s.get("primary_eval") or (next(iter(run.eval_sets)) if run.eval_sets else None)
        if plan.kind == "domain":
            primary = run.axis_values.get("corpus")
        budget = run.steps * s["batch_size"] * run.tokens_per_sample
        row = {"run": run.name, "kind": plan.kind}
        row.update({a: run.axis_values.get(a, "") for a in axis_names})
        row.update(
            {
                "status": "done"
                if state.get("trained_step") == run.steps and set(run.eval_sets) <= set(evals)
                else ("trained" if state.get("trained_step") == run.steps else "missing"),
                "steps": run.steps,
                "batch_size": s["batch_size"],
                "tokens_per_sample": run.tokens_per_sample,
                "budget_tokens": budget,
                "train_tokens": run.train_tokens if run.train_tokens is not None else "",
                "repeats": round(budget / run.train_tokens, 6) if run.train_tokens else "",
                "final_train_loss": _round(train_mean),
                "last_train_loss": _round(train_last),
                "val_loss": _round(evals.get(primary, {}).get("loss", math.nan)) if primary else math.nan,
            }
        )
        for label in eval_labels:
            row[f"val_loss[{label}]"] = _round(evals.get(label, {}).get("loss", math.nan))
        rows.append(row)
    return rows


def _round(x: float) -> float:
    return round(x, 4) if isinstance(x, (int, float)) and math.isfinite(x) else math.nan


def _fmt(x: Any, digits: int = 3) -> str:
    if isinstance(x, float):
        return "—" if math.isnan(x) else f"{x:.{digits}f}"
    return "—" if x in ("", None) else str(x)


def rows_to_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows:
        return ""
    fields = list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: ("" if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()})
    return buf.getvalue()


# --------------------------------------------------------------------------------------------
# markdown


def _table(header: Sequence[str], body: Sequence[Sequence[Any]]) -> str:
    return markdown.table(header, [[_fmt(c) for c in row] for row in body])


def _repeats_text(value: Any) -> str:
    if value in ("", None):
        return "—"
    return f"{value:,.0f}" if value >= 10 else f"{value:.2f}" if value >= 1 else f"{value:.2g}"


def _settings_text(plan: Plan) -> str:
    s = plan.settings
    items = [
        f"budget {format_count(s['budget_tokens'])} tokens" if s.get("budget_tokens") else None,
        f"preset `{s.get('preset')}`",
        f"batch {s['batch_size']}",
        f"tokens counted per sample: {s.get('count', 'raw')}",
        f"seed {s.get('seed')}" if s.get("seed") is not None else None,
        f"{len(plan.runs)} runs",
    ]
    extra = s.get("options_common") or {}
    if extra:
        items.append(
            "other options " + ", ".join(f"`--{k.replace('_', '-')} {v}`" for k, v in sorted(extra.items()))
        )
    return "; ".join(i for i in items if i) + "."


def paper_row_for_repeats(repeats: float | str, full: bool) -> tuple[str, int, tuple] | None:
    """The Table 9 row with the same number of repeats (within a factor of 1.5): rows are comparable
    by how often the data is seen, not by absolute size, since our budget differs from 2^35."""
    if full:
        return "★ Full data set", 0, PAPER_TABLE9[None][1]
    if repeats in ("", None) or repeats <= 1:
        return None
    for n, (paper_repeats, scores) in PAPER_TABLE9.items():
        if n is not None and abs(math.log(repeats / paper_repeats)) <= math.log(1.5):
            return format_count(n), paper_repeats, scores
    return None


def size_markdown(plan: Plan, rows: Sequence[Mapping[str, Any]]) -> str:
    header = [
        "Number of tokens",
        "Repeats",
        "Steps",
        "Train loss (final)",
        "Validation loss (full corpus)",
        "Val − train",
        "*T5 paper* row (same repeats)",
        "*T5 paper* GLUE",
        "*T5 paper* SQuAD",
        "*T5 paper* SGLUE",
    ]
    body = []
    for r in rows:
        subset = r.get("max_tokens")
        full = subset in ("", "full", None)
        paper = paper_row_for_repeats(r["repeats"], full)
        gap = (
            r["val_loss"] - r["final_train_loss"]
            if not (math.isnan(r["val_loss"]) or math.isnan(r["final_train_loss"]))
            else math.nan
        )
        name = "★ Full data set" if full else format_count(int(subset))
        if r["train_tokens"] != "":
            name += f" ({r['train_tokens']:,})"
        body.append(
            [
                name,
                _repeats_text(r["repeats"]),
                r["steps"],
                r["final_train_loss"],
                r["val_loss"],
                gap,
                *(
                    (f"{paper[0]} ({paper[1]:,}×)", *(f"{paper[2][i]:.2f}" for i in (0, 2, 3)))
                    if paper
                    else ("—",) * 4
                ),
            ]
        )
    return "\n\n".join(
        [
            "## Dataset size (like Table 9 of the T5 paper)",
            "Each run trains on the first N tokens of the corpus (fixed document order), repeated as often "
            "as "
            "the budget needs; same model, batch, schedule and seed for all rows. Validation loss is "
            "measured "
            "on the full corpus's validation split. A training loss far below the validation loss is "
            "memorization (the paper's Figure 6). The paper's row is the one with the same number of "
            "repeats.",
            _table(header, body),
            PAPER_NOTE,
            "![training loss](training_loss.png)\n\n![loss vs subset size](loss_vs_size.png)",
        ]
    )


def domain_markdown(plan: Plan, rows: Sequence[Mapping[str, Any]]) -> str:
    labels = [r["corpus"] for r in rows]
    sizes = plan.settings.get("corpus_tokens", {})
    header = [
        "Data set (trained on)",
        "Train tokens",
        "Repeats",
        "Train loss (final)",
        "Val loss (own corpus)",
        "*T5 paper* data set",
        "*T5 paper* size",
        "*T5 paper* GLUE",
        "*T5 paper* SGLUE",
    ]
    body = []
    for r in rows:
        paper_name = PAPER_DOMAIN_NAMES.get(str(r["corpus"]).lower())
        paper = PAPER_TABLE8.get(paper_name) if paper_name else None
        body.append(
            [
                r["corpus"],
                f"{sizes.get(r['corpus'], r['train_tokens']):,}"
                if sizes.get(r["corpus"], r["train_tokens"]) != ""
                else "—",
                _repeats_text(r["repeats"]),
                r["final_train_loss"],
                r["val_loss"],
                paper_name or "—",
                paper[0] if paper else "—",
                f"{paper[1][0]:.2f}" if paper else "—",
                f"{paper[1][3]:.2f}" if paper else "—",
            ]
        )
    matrix_header = ["trained on ↓ / validated on →"] + [str(label) for label in labels]
    matrix = [[r["corpus"]] + [r.get(f"val_loss[{label}]", math.nan) for label in labels] for r in rows]
    val_sizes = plan.settings.get("corpus_validation_tokens", {})
    size_table = _table(
        ["Corpus", "Train tokens", "Validation tokens"],
        [[k, f"{sizes.get(k, 0):,}", f"{val_sizes.get(k, 0):,}"] for k in labels],
    )
    unscorable = plan.settings.get("unscorable", {})
    unscorable_note = " ".join(
        f"No run is scored on {label}: its validation split cannot be used ({why})."
        for label, why in unscorable.items()
    )
    return "\n\n".join(
        [
            "## Pre-training data set (like Table 8 of the T5 paper)",
            "One run per corpus, same budget and settings. Losses are comparable across corpora only because "
            "all corpora share one vocabulary (checked).",
            _table(header, body),
            PAPER_NOTE,
            "### Validation loss of every run on every corpus (lower is better; the diagonal is in-domain)",
            _table(matrix_header, matrix) + ("\n\n" + unscorable_note if unscorable else ""),
            "### Corpus sizes (tokens)",
            size_table,
            "![validation matrix](domain_matrix.png)\n\n![training loss](training_loss.png)",
        ]
    )


def sweep_markdown(plan: Plan, rows: Sequence[Mapping[str, Any]]) -> str:
    axes = plan.settings.get("axes", [])
    header = [*axes, "Steps", "Repeats", "Train loss (final)", "Validation loss"]
    body = [
        [*(r[a] for a in axes), r["steps"], _repeats_text(r["repeats"]), r["final_train_loss"], r["val_loss"]]
        for r in rows
    ]
    parts = ["## Sweep: " + " × ".join(axes) if axes else "## Sweep", _table(header, body)]
    if set(axes) & OBJECTIVE_OPTIONS:
        parts.append(
            "Validation loss is measured with each run's own objective (its corruption rate, span "
            "length, input length): runs with different objectives solve different tasks, so their "
            "losses rank runs of one objective, not objectives against each other. The paper compared "
            "objectives by fine-tuned downstream scores."
        )
    parts.append("![training loss](training_loss.png)\n\n![sweep](sweep.png)")
    if "noise_density" in axes:
        parts += [
            "### *T5 paper*, Table 6 (corruption rate), for orientation",
            PAPER_NOTE,
            _table(
                ["Corruption rate", *(f"*T5 paper* {c}" for c in PAPER_COLUMNS)],
                [[f"{k:.0%}", *(f"{x:.2f}" for x in v)] for k, v in PAPER_TABLE6.items()],
            ),
        ]
    if "mean_noise_span_length" in axes:
        parts += [
            "### *T5 paper*, Table 7 (mean span length, 15% corruption), for orientation",
            PAPER_NOTE,
            _table(
                ["Span length", *(f"*T5 paper* {c}" for c in PAPER_COLUMNS)],
                [
                    [k if isinstance(k, str) else f"{k:g}", *(f"{x:.2f}" for x in v)]
                    for k, v in PAPER_TABLE7.items()
                ],
            ),
        ]
    return "\n\n".join(parts)


def _paper_objective_tables() -> dict[str, dict[str, tuple]]:
    return {
        "Table 4": PAPER_TABLE4,
        "Table 5": PAPER_TABLE5,
        "Table 6": {f"{k:.0%}": v for k, v in PAPER_TABLE6.items()},
        "Table 7": {"Baseline (i.i.d.)": PAPER_TABLE7["i.i.d."]}
        | {f"{k:g}": v for k, v in PAPER_TABLE7.items() if not isinstance(k, str)},
    }


OBJECTIVE_TITLES = {
    "approaches": "Disparate high-level approaches (like Table 4 of the T5 paper)",
    "strategies": "Corruption strategies (like Table 5)",
    "rates": "Corruption rate, i.i.d. replace spans (like Table 6)",
    "spans": "Span length at 15% corruption (like Table 7)",
}


def objectives_markdown(plan: Plan, rows: Sequence[Mapping[str, Any]]) -> str:
    """One table per study, each row a run beside the paper's row of the same name."""
    by_run = {r["run"]: r for r in rows}
    paper = _paper_objective_tables()
    header = ["Objective", "Run", "Steps", "Train loss (final)", "Validation loss"]
    header += [f"*T5 paper* {c}" for c in PAPER_COLUMNS]
    parts = ["## Pre-training objectives (like Section 3.3 of the T5 paper)"]
    for study, spec in plan.settings["studies"].items():
        body = []
        for label, name in spec["rows"]:
            r = by_run.get(name, {})
            scores = paper[spec["table"]].get(label)
            body.append(
                [
                    label,
                    f"`{name}`",
                    r.get("steps", "—"),
                    r.get("final_train_loss", math.nan),
                    r.get("val_loss", math.nan),
                    *((f"{x:.2f}" for x in scores) if scores else ("—",) * len(PAPER_COLUMNS)),
                ]
            )
        parts += [f"### {OBJECTIVE_TITLES[study]}", _table(header, body)]
    parts += [
        "Columns marked *T5 paper* are the paper's numbers (arXiv 1910.10683, Tables 4-7), **not "
        "ours**: downstream scores after fine-tuning a ~220M model pre-trained on 2^35 tokens with "
        "that row's objective. They show which direction the paper found; they do not compare "
        "numerically with our pre-training losses.",
        "Each validation loss is the run's own objective on the validation split (its own inputs "
        "and targets): objectives whose targets differ (the full text, the dropped tokens, the "
        "spans) solve different tasks, so their losses are not a ranking of objectives; the paper "
        "ranked them by fine-tuned scores. Rows with the same objective (rates, span lengths) "
        "compare more closely, though a higher rate or longer span is a harder task too.",
        "![training loss](training_loss.png)\n\n![sweep](sweep.png)",
    ]
    return "\n\n".join(parts)


def compact_markdown(plan: Plan, rows: Sequence[Mapping[str, Any]]) -> str:
    """Layers x width, each with its validation loss without and with pre-trained distillation."""
    cells: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rows:
        cells.setdefault((r["layers"], r["width"]), {})[r["distillation"]] = r
    teacher = plan.settings.get("teacher")
    header = ["Layers", "Width", "Steps", "Val loss (labels only)"]
    if teacher:
        header += ["Val loss (distilled)", "Distilled − labels only"]
    body = []
    for (layers, width), by in cells.items():
        plain, pd = by.get("no", {}), by.get("yes", {})
        line = [layers, width, plain.get("steps", "—"), plain.get("val_loss", math.nan)]
        if teacher:
            gap = pd.get("val_loss", math.nan) - plain.get("val_loss", math.nan)
            line += [pd.get("val_loss", math.nan), gap]
        body.append(line)
    about = (
        f"Teacher: `{teacher}` (frozen; its soft targets at the run's `distill_temperature`, weight "
        "`distill_alpha`). "
        if teacher
        else "No teacher given: labels-only runs. "
    )
    return "\n\n".join(
        [
            "## Compact models with pre-trained distillation (like Turc et al., Well-Read Students)",
            about + "Validation loss is the label loss (cross-entropy on the validation split's targets) "
            "for every run, distilled or not, so the columns compare. A negative difference means the "
            "teacher helped.",
            _table(header, body),
            "![training loss](training_loss.png)\n\n![sweep](sweep.png)",
        ]
    )


def report_markdown(plan: Plan, rows: Sequence[Mapping[str, Any]]) -> str:
    kinds = {
        "size": size_markdown,
        "domain": domain_markdown,
        "sweep": sweep_markdown,
        "objectives": objectives_markdown,
        "compact": compact_markdown,
    }
    body = kinds[plan.kind](plan, rows)
    missing = [r["run"] for r in rows if r["status"] != "done"]
    status = (
        f"**Incomplete: runs not finished yet: {', '.join(missing)}.** Re-run the same command to continue."
        if missing
        else "All runs finished."
    )
    notes = (
        "Final training loss = mean of the last 10% of logged training losses (each the mean of one "
        "logging interval). "
        "Budget tokens = steps × batch × tokens per sample; repeats = budget tokens / tokens the run "
        "trains on. Every run directory under `runs/` is a normal `c4clean train` run."
    )
    return "\n\n".join([f"# Ablation report: {plan.kind}", _settings_text(plan), status, body, notes]) + "\n"


# --------------------------------------------------------------------------------------------
# plots (matplotlib Agg; each figure is written atomically)


def _smooth(values: Sequence[float]) -> list[float]:
    """Centred moving average over ~5% of the points: no lag, unlike an exponential average."""
    half = max(0, len(values) // 40)
    out = []
    for i in range(len(values)):
        window = values[max(0, i - half) : i + half + 1]
        out.append(sum(window) / len(window))
    return out


def _save(fig, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight", metadata={"Software": None})
    atomic.write_bytes(path, buf.getvalue())


def _label(plan: Plan, row: Mapping[str, Any]) -> str:
    if plan.kind == "size":
        subset = row.get("max_tokens")
        name = "full" if subset in ("", "full", None) else format_count(int(subset))
        return f"{name} ({_repeats_text(row['repeats'])}×)" if row["repeats"] != "" else name
    if plan.kind == "domain":
        return str(row["corpus"])
    axes = plan.settings.get("axes", [])
    return ", ".join(f"{a}={row[a]}" for a in axes if row[a] != "") or row["run"]


def plot_training_curves(plan: Plan, rows, curves, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    cmap = plt.get_cmap("viridis" if plan.kind == "size" else "tab10")
    late = []  # losses after the first quarter of each run: the y-range that shows the differences
    for i, row in enumerate(rows):
        curve = curves.get(row["run"], [])
        if not curve:
            continue
        # viridis stops short of its pale yellow end, which is unreadable on white
        color = cmap(0.85 * i / max(1, len(rows) - 1)) if plan.kind == "size" else cmap(i % 10)
        steps = [s for s, _ in curve]
        losses = [v for _, v in curve]
        ax.plot(steps, losses, color=color, alpha=0.25, linewidth=0.8)
        ax.plot(steps, _smooth(losses), color=color, linewidth=1.8, label=_label(plan, row))
        late += losses[len(losses) // 4 :]
        if not math.isnan(row["val_loss"]):
            ax.scatter(
                [steps[-1]], [row["val_loss"]], color=color, marker="D", s=45, zorder=3, edgecolor="black"
            )
            late.append(row["val_loss"])
    if late:
        # the first steps of a T5 run sit far above the rest (untrained logits); zoom on what differs
        low, high = min(late), max(late)
        pad = 0.08 * (high - low or 1.0)
        ax.set_ylim(low - pad, high + pad)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (smoothed; faint = raw)")
    ax.set_title(
        f"Training loss, {plan.kind} ablation (◆ = final validation loss; first steps cut off)", fontsize=10
    )
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, title="run")
    _save(fig, path)
    plt.close(fig)


def plot_size(plan: Plan, rows, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = [
        (r["train_tokens"], r["final_train_loss"], r["val_loss"], r.get("max_tokens") in ("", "full", None))
        for r in rows
        if r["train_tokens"] != ""
    ]
    pts.sort()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    xs = [p[0] for p in pts]
    ax.plot(xs, [p[1] for p in pts], "o-", label="final training loss")
    ax.plot(xs, [p[2] for p in pts], "s-", label="validation loss (full corpus)")
    for x, tr, va, full in pts:
        if full:
            ax.annotate(
                "full corpus", (x, va), textcoords="offset points", xytext=(0, 8), ha="center", fontsize=8
            )
    ax.set_xscale("log", base=2)
    ax.set_xlabel("tokens the run trains on (subset size, log2)")
    ax.set_ylabel("loss")
    ax.set_title("Loss vs pre-training data size (gap = memorization)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, path)
    plt.close(fig)


def plot_domain_matrix(rows, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    labels = [str(r["corpus"]) for r in rows]
    m = np.array([[r.get(f"val_loss[{c}]", math.nan) for c in labels] for r in rows], dtype=float)
    fig, ax = plt.subplots(figsize=(1.6 * len(labels) + 2.5, 1.2 * len(labels) + 1.8))
    _annotated_heatmap(fig, ax, m)
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("validation split of")
    ax.set_ylabel("trained on")
    ax.set_title("Validation loss: every run on every corpus")
    _save(fig, path)
    plt.close(fig)


def _annotated_heatmap(fig, ax, m) -> None:
    """Validation losses as a heat map with each value written in its cell."""
    import numpy as np

    im = ax.imshow(m, cmap="viridis_r")
    finite = m[np.isfinite(m)]
    mid = (finite.min() + finite.max()) / 2 if finite.size else 0
    for i, j in np.ndindex(m.shape):
        if np.isfinite(m[i, j]):
            ax.text(
                j,
                i,
                f"{m[i, j]:.3f}",
                ha="center",
                va="center",
                fontsize=9,
                color="white" if m[i, j] > mid else "black",
            )
        else:
            ax.text(j, i, "no score", ha="center", va="center", fontsize=8, color="grey")
    fig.colorbar(im, ax=ax, label="validation loss")


def plot_sweep(plan: Plan, rows, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    axes = plan.settings.get("axes", [])
    if len(axes) == 2 and plan.settings.get("mode") == "product":
        a, b = axes
        av = list(dict.fromkeys(r[a] for r in rows))
        bv = list(dict.fromkeys(r[b] for r in rows))
        m = np.full((len(av), len(bv)), np.nan)
        for r in rows:
            m[av.index(r[a]), bv.index(r[b])] = r["val_loss"]
        fig, ax = plt.subplots(figsize=(1.3 * len(bv) + 3, 1.0 * len(av) + 2))
        _annotated_heatmap(fig, ax, m)
        ax.set_xticks(range(len(bv)), bv)
        ax.set_yticks(range(len(av)), av)
        ax.set_xlabel(b)
        ax.set_ylabel(a)
    else:
        fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(rows) + 2), 4.5))
        labels = [_label(plan, r) for r in rows]
        x = np.arange(len(rows))
        ax.bar(x - 0.2, [r["final_train_loss"] for r in rows], 0.4, label="final training loss")
        ax.bar(x + 0.2, [r["val_loss"] for r in rows], 0.4, label="validation loss")
        ax.set_xticks(
            x,
            labels,
            rotation=30 if len(rows) > 4 else 0,
            ha="right" if len(rows) > 4 else "center",
            fontsize=8,
        )
        ax.set_ylabel("loss")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3, axis="y")
    ax.set_title("Sweep: " + " × ".join(axes))
    _save(fig, path)
    plt.close(fig)


def write_report(plan: Plan, states, curves) -> list[Path]:
    """Write results.csv, report.md and the plots into the ablation directory; returns the paths."""
    rows = build_rows(plan, states, curves)
    out = plan.out
    paths = [out / "results.csv", out / "report.md", out / "training_loss.png"]
    atomic.write_text(paths[0], rows_to_csv(rows))
    atomic.write_text(paths[1], report_markdown(plan, rows))
    plot_training_curves(plan, rows, curves, paths[2])
    if plan.kind == "size":
        paths.append(out / "loss_vs_size.png")
        plot_size(plan, rows, paths[-1])
    elif plan.kind == "domain":
        paths.append(out / "domain_matrix.png")
        plot_domain_matrix(rows, paths[-1])
    else:
        paths.append(out / "sweep.png")
        plot_sweep(plan, rows, paths[-1])
    return paths
