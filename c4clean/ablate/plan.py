"""Ablation planning and execution: many independent `c4clean train` runs, resumable, one report.

An ablation is a list of runs. Each run is a normal `c4clean train` run directory under
`<out>/runs/<name>/`, trained with the same settings except for the ablated options. Run names are
derived from the axis values alone, so re-running the same command finds the same directories:
finished runs are skipped, interrupted ones continue with `--resume`, missing ones start.

Budget arithmetic: the budget counts *corpus tokens read* (`tokens_per_sample = "raw"`, the raw
window span corruption consumes: 568 tokens for 512 inputs). Then `repeats = budget / subset size`
is the real number of passes over a subset, which is how Table 9 of the T5 paper defines "repeats"
(2^35 / 2^23 = 4,096). `tokens_per_sample = "inputs"` counts encoder input slots instead (512 per
sample: the paper's own 2^35 = 2^19 steps x 128 x 512), giving the paper's step count.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import itertools
import json
import logging
import math
import re
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from c4clean import atomic, formats
from c4clean.formats import PLAN_FILE
from c4clean.formats import PLAN_RUNS_DIR as RUNS_DIR
from c4clean.formats import PLAN_STATE_DIR as STATE_DIR
from c4clean.train.data_options import DataOptions

log = logging.getLogger(__name__)

MAX_NAME_LEN = 96

# Short axis names people type -> the trainer/loader option they mean.
AXIS_ALIASES = {
    "mean_span": "mean_noise_span_length",
    "span": "mean_noise_span_length",
    "corruption_rate": "noise_density",
    "density": "noise_density",
    "tokens": "max_tokens",
    "batch": "batch_size",
    "inputs_length": "input_length",
    "learning_rate": "lr",
}


class AblationError(ValueError):
    """A user-facing problem with an ablation spec or its output directory."""


# --------------------------------------------------------------------------------------------
# parsing


def parse_count(text: str | int) -> int:
    """`2^23`, `2**23`, `8388608`, `8_388_608`, `1e6` (exact integers only) -> int."""
    if isinstance(text, int):
        return text
    s = str(text).strip().replace("_", "").replace(",", "")
    m = re.fullmatch(r"(\d+)\s*(?:\^|\*\*)\s*(\d+)", s)
    if m:
        value = int(m.group(1)) ** int(m.group(2))
    elif re.fullmatch(r"\d+", s):
        value = int(s)
    elif re.fullmatch(r"\d+(\.\d+)?[eE]\d+", s) and float(s).is_integer():
        value = int(float(s))
    else:
        raise AblationError(f"not a token count: {text!r} (use 2^23, 8388608 or 1e6)")
    if value <= 0:
        raise AblationError(f"token count must be positive: {text!r}")
    return value


def format_count(n: int) -> str:
    """Inverse of parse_count for display: powers of two as `2^k`."""
    if n >= 16 and n & (n - 1) == 0:
        return f"2^{n.bit_length() - 1}"
    return str(n)


@dataclasses.dataclass(frozen=True)
class Axis:
    name: str  # canonical option name (underscores), after alias resolution
    values: tuple[str, ...]  # as typed: "0.10" stays "0.10" so run names are stable
    label: str = ""  # the name as typed, for names and reports

    @property
    def display(self) -> str:
        return self.label or self.name


def canonical_option(name: str) -> str:
    key = name.strip().lstrip("-").replace("-", "_").lower()
    return AXIS_ALIASES.get(key, key)


def parse_axis(spec: str) -> Axis:
    """`noise_density=0.10,0.15` -> Axis("noise_density", ("0.10", "0.15"))."""
    if "=" not in spec:
        raise AblationError(f"axis {spec!r} must look like name=v1,v2,...")
    name, _, values_text = spec.partition("=")
    label = name.strip().lstrip("-").replace("-", "_")
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", label):
        raise AblationError(f"axis name {name!r} is not an option name")
    values = tuple(v.strip() for v in values_text.split(",") if v.strip())
    if not values:
        raise AblationError(f"axis {label!r} has no values")
    if len(set(values)) != len(values):
        raise AblationError(f"axis {label!r} repeats a value: {values_text!r}")
    return Axis(canonical_option(label), values, label)


def expand_axes(axes: Sequence[Axis], mode: str = "product") -> list[dict[str, str]]:
    """All run settings: `product` = every combination (axis order = loop nesting, last fastest);
    `zip` = i-th value of every axis together (all axes need the same number of values)."""
    if not axes:
        return [{}]
    names = [a.name for a in axes]
    if len(set(names)) != len(names):
        raise AblationError(f"the same option appears on two axes: {names}")
    if mode == "product":
        combos = itertools.product(*(a.values for a in axes))
    elif mode == "zip":
        lengths = {a.display: len(a.values) for a in axes}
        if len(set(lengths.values())) != 1:
            raise AblationError(f"--zip needs axes of equal length, got {lengths}")
        combos = zip(*(a.values for a in axes))
    else:
        raise AblationError(f"unknown axis mode {mode!r} (product or zip)")
    return [dict(zip(names, combo)) for combo in combos]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", text).strip("_") or "_"


def run_name(values: Mapping[str, str], labels: Mapping[str, str] | None = None) -> str:
    """Deterministic directory name from axis values, in axis order: `noise_density-0.10__mean_span-2`.

    Overlong names keep a readable prefix plus a hash of the full name, so they stay unique."""
    if not values:
        return "base"
    labels = labels or {}
    name = "__".join(f"{_slug(labels.get(k, k))}-{_slug(v)}" for k, v in values.items())
    if len(name) > MAX_NAME_LEN:
        digest = hashlib.sha1(name.encode()).hexdigest()[:10]
        name = f"{name[: MAX_NAME_LEN - 11]}~{digest}"
    return name


# --------------------------------------------------------------------------------------------
# budget arithmetic


def steps_for_budget(budget_tokens: int, batch_size: int, tokens_per_sample: int) -> int:
    """Optimizer steps that read `budget_tokens` (rounded up: the budget is a minimum)."""
    if budget_tokens <= 0 or batch_size <= 0 or tokens_per_sample <= 0:
        raise AblationError("budget, batch size and tokens per sample must be positive")
    return max(1, math.ceil(budget_tokens / (batch_size * tokens_per_sample)))


def repeats(budget_tokens: int, data_tokens: int) -> float:
    """Passes over the data a budget makes (Table 9's "Repeats" column: budget / subset size)."""
    if data_tokens <= 0:
        raise AblationError("data size must be positive")
    return budget_tokens / data_tokens


def random_spans_lengths(inputs_length: int, noise_density: float, mean_span: float) -> tuple[int, int]:
    """(raw tokens per sample, targets length): T5's `random_spans_helper`, as the loader computes it."""
    return DataOptions(
        input_length=inputs_length, noise_density=noise_density, mean_noise_span_length=mean_span
    ).lengths()


def tokens_per_sample(mode: str, inputs_length: int, noise_density: float, mean_span: float) -> int:
    options = DataOptions(
        input_length=inputs_length, noise_density=noise_density, mean_noise_span_length=mean_span
    )
    try:
        return options.tokens_per_sample(mode)
    except ValueError as e:
        raise AblationError(str(e)) from None


def cast_option(value: str, default: Any, name: str) -> Any:
    """A typed option value from its string, by the type of the option's default."""
    text = str(value).strip()
    try:
        if isinstance(default, bool):
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if isinstance(default, int):
            return parse_count(text) if not text.lstrip("-").isdigit() else int(text)
        if isinstance(default, float):
            return float(text)
        if default is None:
            if text.lower() in ("none", "null", ""):
                return None
            for conv in (int, float, parse_count):  # parse_count: 2^20 for max_tokens
                try:
                    return conv(text)
                except (ValueError, AblationError):
                    pass
        return text
    except (ValueError, AblationError) as e:
        raise AblationError(f"option {name}: cannot read {value!r} as {type(default).__name__}") from e


def data_options_of(options: Mapping[str, Any], defaults: Mapping[str, Any] = {}) -> DataOptions:
    """The loader options of a run: its own (strings), else `defaults`, else DataOptions' defaults."""
    values = {}
    for name, default in DataOptions.defaults().items():
        value = options.get(name, defaults.get(name, default))
        values[name] = cast_option(value, default, name) if isinstance(value, str) else value
    return DataOptions(**values)


# --------------------------------------------------------------------------------------------
# the plan


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """One training run of an ablation and how to judge it."""

    name: str
    axis_values: dict[str, str]  # what distinguishes this run (report columns)
    data: str  # token directory the run trains on
    steps: int
    options: dict[str, str]  # every other train option (--key value), including ablated ones
    eval_sets: dict[str, str]  # label -> token dir whose validation split the final model is scored on
    train_tokens: int | None = None  # size of the data the run sees (subset or corpus), for repeats
    tokens_per_sample: int = 0

    def settings_key(self) -> str:
        """What must match for a run directory to be resumed rather than refused."""
        body = {"data": self.data, "steps": self.steps, "options": self.options}
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]


@dataclasses.dataclass
class Plan:
    kind: str  # size | domain | sweep | objectives | compact
    out: Path
    runs: list[RunSpec]
    settings: dict[str, Any]  # budget, batch, preset, counting mode, corpus sizes, ...

    @property
    def runs_dir(self) -> Path:
        return self.out / RUNS_DIR

    def run_dir(self, run: RunSpec) -> Path:
        return self.runs_dir / run.name

    def state_path(self, run: RunSpec) -> Path:
        return self.out / STATE_DIR / f"{run.name}.json"

    def to_json(self) -> dict[str, Any]:
        return {
            **formats.PLAN.stamp(),
            "kind": self.kind,
            "settings": self.settings,
            "runs": [dataclasses.asdict(r) for r in self.runs],
        }

    @classmethod
    def load(cls, out: Path) -> "Plan":
        path = Path(out) / PLAN_FILE
        if not path.is_file():
            raise AblationError(f"no ablation plan at {path}")
        doc = json.loads(path.read_text())
        try:
            formats.PLAN.check(doc, path)
        except formats.FormatError as error:
            raise AblationError(str(error)) from None
        runs = [RunSpec(**r) for r in doc["runs"]]
        return cls(doc["kind"], Path(out), runs, doc["settings"])


def save_plan(plan: Plan) -> None:
    """Write the plan, refusing to silently change the settings of runs that already exist.

    Adding runs (a new axis value) to an existing ablation is allowed; changing a run's settings
    (budget, batch, preset ...) under the same name is not: that would mix two experiments."""
    path = plan.out / PLAN_FILE
    if path.is_file():
        old = Plan.load(plan.out)
        if old.kind != plan.kind:
            raise AblationError(f"{plan.out} holds a {old.kind!r} ablation, not {plan.kind!r}")
        old_keys = {r.name: r.settings_key() for r in old.runs}
        changed = [r.name for r in plan.runs if r.name in old_keys and old_keys[r.name] != r.settings_key()]
        if changed:
            raise AblationError(
                f"runs {changed} already exist in {plan.out} with different settings; "
                "use a new --output (or delete those runs) to change budget, batch or options"
            )
        # keep runs of the old plan that this invocation does not name, so reports stay complete
        names = {r.name for r in plan.runs}
        plan.runs = plan.runs + [r for r in old.runs if r.name not in names]
    atomic.write_json(path, plan.to_json())


def select_runs(
    runs: Sequence[RunSpec], shard: tuple[int, int] | None = None, only: Iterable[str] = ()
) -> list[RunSpec]:
    """The runs this process executes: `--shard i/n` takes every n-th run starting at i (stable,
    so n machines sharing a file system split an ablation with no coordination); `--only` by name."""
    only = set(only)
    unknown = only - {r.name for r in runs}
    if unknown:
        raise AblationError(f"--only names no run of this ablation: {sorted(unknown)}")
    picked = [r for r in runs if not only or r.name in only]
    if shard is not None:
        index, count = shard
        if not 0 <= index < count:
            raise AblationError(f"--shard {index}/{count}: need 0 <= i < n")
        picked = [r for i, r in enumerate(picked) if i % count == index]
    return picked


def parse_shard(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    m = re.fullmatch(r"(\d+)/(\d+)", text.strip())
    if not m:
        raise AblationError(f"--shard must be i/n, got {text!r}")
    index, count = int(m.group(1)), int(m.group(2))
    if not 0 <= index < count:
        raise AblationError(f"--shard {text}: need 0 <= i < n")
    return index, count


# --------------------------------------------------------------------------------------------
# execution: train what is missing, evaluate what is not cached, mark done


def load_state(plan: Plan, run: RunSpec) -> dict[str, Any]:
    path = plan.state_path(run)
    if not path.is_file():
        return {}
    state = json.loads(path.read_text())
    if state.get("settings_key") != run.settings_key():
        raise AblationError(f"state of run {run.name} belongs to other settings ({path}); use a new --output")
    return state


def is_done(plan: Plan, run: RunSpec, state: Mapping[str, Any] | None = None) -> bool:
    """Completion marker: trained to the target step and scored on every evaluation set."""
    state = load_state(plan, run) if state is None else state
    return (
        bool(state)
        and state.get("trained_step") == run.steps
        and set(run.eval_sets) <= set(state.get("evals", {}))
    )


def execute(plan: Plan, backend, runs: Sequence[RunSpec] | None = None, *, echo=log.info) -> dict[str, str]:
    """Bring every selected run to done; returns run name -> what was done ("skipped", "trained", ...).

    Each step is idempotent, so an ablation killed at any point continues where it stopped:
    the trainer resumes from its newest checkpoint, cached evaluations are not recomputed."""
    outcome = {}
    for run in plan.runs if runs is None else runs:
        state = load_state(plan, run)
        if is_done(plan, run, state):
            echo(f"[{run.name}] done, skipped")
            outcome[run.name] = "skipped"
            continue
        run_dir = plan.run_dir(run)
        state = {"name": run.name, "settings_key": run.settings_key(), "evals": {}, **state}
        actions = []
        step = backend.final_step(run_dir)
        if step is None or step < run.steps:
            resume = step is not None
            echo(
                f"[{run.name}] {'resuming at step ' + str(step) if resume else 'training'} -> {run.steps} "
                f"steps"
            )
            backend.train(run, run_dir, resume=resume)
            step = backend.final_step(run_dir)
            if step is None or step < run.steps:
                raise AblationError(f"run {run.name}: trainer stopped at step {step}, expected {run.steps}")
            actions.append("trained" if not resume else "resumed")
        state["trained_step"] = run.steps
        atomic.write_json(plan.state_path(run), state)
        for label, token_dir in run.eval_sets.items():
            if label in state["evals"]:
                continue
            echo(f"[{run.name}] validation loss on {label}")
            state["evals"][label] = backend.evaluate(run_dir, token_dir)
            atomic.write_json(plan.state_path(run), state)
            actions.append(f"eval:{label}")
        outcome[run.name] = "+".join(actions) or "marked"
    return outcome


def drop_unscorable(plan: Plan, problems: Mapping[str, str]) -> None:
    """Leave out evaluation corpora whose validation split cannot be scored (`problems`: label ->
    why), before anything trains. A domain ablation still trains on such a corpus and scores it
    on the others; a size ablation or sweep has nothing to report without its one evaluation set."""
    if not problems:
        return
    text = "; ".join(f"{label}: {why}" for label, why in problems.items())
    if plan.kind != "domain" or set(problems) >= {label for r in plan.runs for label in r.eval_sets}:
        raise AblationError(f"cannot score on the validation split of {text}")
    plan.runs = [
        dataclasses.replace(run, eval_sets={k: v for k, v in run.eval_sets.items() if k not in problems})
        for run in plan.runs
    ]
    plan.settings["unscorable"] = dict(problems)
    log.warning("no validation loss on %s", text)


# --------------------------------------------------------------------------------------------
# building plans: sweep is the general case; size and domain are presets of it


def tokens_per_sample_of(options: Mapping[str, str], count: str, defaults: Mapping[str, Any]) -> int:
    try:
        return data_options_of(options, defaults).tokens_per_sample(count)
    except ValueError as e:
        raise AblationError(str(e)) from None


def check_sentinels_of(name: str, options: Mapping[str, str], data: str, defaults: Mapping[str, Any]):
    """A run whose objective needs more sentinels than its corpus' vocabulary has (T5's 100 when
    the token directory cannot be read yet) is refused at planning time."""
    from c4clean.tokenize.vocab import NUM_SENTINELS

    try:
        available = json.loads((Path(data) / "manifest.json").read_text())["vocab"]["extra_ids"]
    except (OSError, ValueError, KeyError, TypeError):
        available = NUM_SENTINELS
    try:
        data_options_of(options, defaults).check_sentinels(int(available))
    except ValueError as e:
        raise AblationError(f"run {name}: {e}") from None


def make_run(
    name: str,
    axis_values: dict[str, str],
    data: str,
    options: dict[str, str],
    *,
    budget_tokens: int | None,
    steps: int | None,
    count: str,
    eval_sets: dict[str, str],
    train_tokens: int | None,
    defaults: Mapping[str, Any],
) -> RunSpec:
    """One run: steps from the token budget (per run, since batch size, input length or noise
    density may be ablated), or a fixed step count."""
    opts = dict(options)
    batch_size = int(opts.get("batch_size", defaults.get("batch_size", 0)))
    tps = tokens_per_sample_of(opts, count, defaults)
    check_sentinels_of(name, opts, data, defaults)
    if (budget_tokens is None) == (steps is None):
        raise AblationError("give exactly one of --budget (tokens) and --steps")
    n_steps = steps if steps is not None else steps_for_budget(budget_tokens, batch_size, tps)
    opts.pop("steps", None)
    return RunSpec(
        name=name,
        axis_values=dict(axis_values),
        data=str(data),
        steps=int(n_steps),
        options=opts,
        eval_sets=dict(eval_sets),
        train_tokens=train_tokens,
        tokens_per_sample=tps,
    )


def plan_sweep(
    out: Path,
    data: str,
    axes: Sequence[Axis],
    *,
    mode: str,
    common: Mapping[str, str],
    budget_tokens: int | None,
    steps: int | None,
    count: str,
    corpus_tokens: int | None,
    defaults: Mapping[str, Any] = {},
) -> Plan:
    if "data" in {a.name for a in axes}:
        raise AblationError("ablate data sets with `c4clean ablate domain`, not a --axis")
    labels = {a.name: a.display for a in axes}
    runs = []
    run = functools.partial(
        make_run, budget_tokens=budget_tokens, steps=steps, count=count, defaults=defaults
    )
    for values in expand_axes(axes, mode):
        options = {**common, **values}
        subset = options.get("max_tokens")
        train_tokens = min(parse_count(subset), corpus_tokens) if subset and corpus_tokens else corpus_tokens
        runs.append(
            run(
                run_name(values, labels),
                values,
                data,
                options,
                eval_sets={"validation": str(data)},
                train_tokens=train_tokens,
            )
        )
    extra = {
        "axes": [a.name for a in axes],
        "mode": mode,
        "data": str(data),
        "corpus_tokens": corpus_tokens,
        "primary_eval": "validation",
    }
    return _plan("sweep", out, runs, _settings(budget_tokens, count, common, defaults), extra)


def plan_size(
    out: Path,
    data: str,
    subsets: Sequence[int],
    *,
    include_full: bool,
    common: Mapping[str, str],
    budget_tokens: int | None,
    steps: int | None,
    count: str,
    corpus_tokens: int,
    defaults: Mapping[str, Any] = {},
) -> Plan:
    """Table 9: the first N tokens of a fixed document order, repeated to fill the same budget.

    Every run is scored on the FULL corpus's validation split, so the rows are comparable."""
    if "max_tokens" in common:
        raise AblationError("the size ablation sets max_tokens itself")
    runs = []
    run = functools.partial(
        make_run, budget_tokens=budget_tokens, steps=steps, count=count, defaults=defaults
    )
    for n in sorted(set(subsets)):
        if n > corpus_tokens:
            raise AblationError(
                f"subset {format_count(n)} is larger than the corpus ({corpus_tokens:,} train tokens)"
            )
        runs.append(
            run(
                f"tokens-{_slug(format_count(n).replace('^', 'p'))}",
                {"max_tokens": str(n)},
                data,
                {**common, "max_tokens": str(n)},
                eval_sets={"full": str(data)},
                train_tokens=n,
            )
        )
    if include_full:
        runs.append(
            run(
                "tokens-full",
                {"max_tokens": "full"},
                data,
                dict(common),
                eval_sets={"full": str(data)},
                train_tokens=corpus_tokens,
            )
        )
    if not runs:
        raise AblationError("no runs: give --tokens or keep the full-data run")
    settings = _settings(budget_tokens, count, common, defaults)
    settings.update(
        {"axes": ["max_tokens"], "data": str(data), "corpus_tokens": corpus_tokens, "primary_eval": "full"}
    )
    return Plan("size", Path(out), runs, settings)


def plan_domain(
    out: Path,
    corpora: Mapping[str, str],
    *,
    common: Mapping[str, str],
    budget_tokens: int | None,
    steps: int | None,
    count: str,
    corpus_tokens: Mapping[str, int],
    validation_tokens: Mapping[str, int] | None = None,
    defaults: Mapping[str, Any] = {},
) -> Plan:
    """Table 8: one run per corpus, same budget; each final model scored on every corpus."""
    if len(corpora) < 1:
        raise AblationError("give at least one corpus as NAME=DIR")
    run = functools.partial(
        make_run, budget_tokens=budget_tokens, steps=steps, count=count, defaults=defaults
    )
    runs = [
        run(
            f"corpus-{_slug(label)}",
            {"corpus": label},
            path,
            dict(common),
            eval_sets=dict(corpora),
            train_tokens=corpus_tokens[label],
        )
        for label, path in corpora.items()
    ]
    extra = {
        "axes": ["corpus"],
        "corpora": dict(corpora),
        "corpus_tokens": dict(corpus_tokens),
        "corpus_validation_tokens": dict(validation_tokens or {}),
    }
    return _plan("domain", out, runs, _settings(budget_tokens, count, common, defaults), extra)


# The T5 paper's objective studies (Section 3.3): study -> (its table, rows of (paper row, options)).
# Rows of several studies that train the same thing share one run.
_IID = {"objective": "iid_replace_spans"}
OBJECTIVE_STUDIES: dict[str, tuple[str, list[tuple[str, dict[str, str]]]]] = {
    "approaches": (
        "Table 4",
        [
            ("Prefix language modeling", {"objective": "prefix_lm"}),
            ("BERT-style", {"objective": "bert"}),
            ("Deshuffling", {"objective": "deshuffle"}),
        ],
    ),
    "strategies": (
        "Table 5",
        [
            ("BERT-style", {"objective": "bert"}),
            ("MASS-style", {"objective": "mass"}),
            ("Replace corrupted spans", _IID),
            ("Drop corrupted tokens", {"objective": "iid_drop"}),
            ("Random spans (Table 7, span 3)", {"objective": "random_spans"}),
        ],
    ),
    "rates": (
        "Table 6",
        [(f"{rate:.0%}", {**_IID, "noise_density": f"{rate:.2f}"}) for rate in (0.10, 0.15, 0.25, 0.50)],
    ),
    "spans": (
        "Table 7",
        [("Baseline (i.i.d.)", _IID)]
        + [
            (str(span), {"objective": "random_spans", "mean_noise_span_length": str(span)})
            for span in (2, 3, 5, 10)
        ],
    ),
}
OBJECTIVE_AXES = ("objective", "noise_density", "mean_noise_span_length")


def _objective_run_name(options: Mapping[str, str]) -> str:
    """`objective-bert`, `objective-iid_replace_spans__noise_density-0.25`: the same options give
    the same name in every study, so a shared row trains once (default rate / span left out)."""
    defaults = DataOptions.defaults()
    values = {
        k: options[k]
        for k in OBJECTIVE_AXES
        if k in options and (k == "objective" or float(options[k]) != defaults[k])
    }
    return run_name(values)


def plan_objectives(
    out: Path,
    data: str,
    studies: Sequence[str],
    *,
    common: Mapping[str, str],
    budget_tokens: int | None,
    steps: int | None,
    count: str,
    corpus_tokens: int | None,
    defaults: Mapping[str, Any] = {},
) -> Plan:
    """Tables 4-7: the objectives, corruption strategies, rates and span lengths the T5 paper
    compared, each an ordinary run on `data` with the shared settings `common`."""
    unknown = [s for s in studies if s not in OBJECTIVE_STUDIES]
    if unknown or not studies:
        raise AblationError(f"unknown study {unknown}; studies: {', '.join(OBJECTIVE_STUDIES)}")
    clash = sorted(set(common) & set(OBJECTIVE_AXES))
    if clash:
        raise AblationError(f"the objective studies set {', '.join(clash)} themselves; do not --set them")
    runs: dict[str, RunSpec] = {}
    tables = {}
    run = functools.partial(
        make_run, budget_tokens=budget_tokens, steps=steps, count=count, defaults=defaults
    )
    for study in studies:
        table, rows = OBJECTIVE_STUDIES[study]
        tables[study] = {"table": table, "rows": []}
        for label, options in rows:
            name = _objective_run_name(options)
            tables[study]["rows"].append([label, name])
            if name not in runs:
                runs[name] = run(
                    name,
                    {k: options.get(k, "") for k in OBJECTIVE_AXES},
                    data,
                    {**common, **options},
                    eval_sets={"validation": str(data)},
                    train_tokens=corpus_tokens,
                )
    settings = _settings(budget_tokens, count, common, defaults)
    settings.update(
        {
            "axes": list(OBJECTIVE_AXES),
            "studies": tables,
            "data": str(data),
            "corpus_tokens": corpus_tokens,
            "primary_eval": "validation",
        }
    )
    return Plan("objectives", Path(out), list(runs.values()), settings)


def plan_compact(
    out: Path,
    data: str,
    layers: Sequence[int],
    widths: Sequence[int],
    teacher: str | None,
    *,
    common: Mapping[str, str],
    budget_tokens: int | None,
    steps: int | None,
    count: str,
    corpus_tokens: int | None,
    defaults: Mapping[str, Any] = {},
) -> Plan:
    """Compact models (Turc et al.): every layers x width student, pre-trained on the labels alone
    and, given a teacher run, with pre-trained distillation from it (same data, budget, seed)."""
    if not layers or not widths:
        raise AblationError("give at least one layer count and one width")
    clash = sorted(set(common) & {"layers", "width", "teacher", "num_layers", "d_model"})
    if clash:
        raise AblationError(f"the compact grid sets {', '.join(clash)} itself; do not --set them")
    modes = ["no", "yes"] if teacher else ["no"]
    runs = []
    run = functools.partial(
        make_run, budget_tokens=budget_tokens, steps=steps, count=count, defaults=defaults
    )
    for n_layers, width in itertools.product(layers, widths):
        for pd in modes:
            values = {"layers": str(n_layers), "width": str(width), "distillation": pd}
            options = {**common, "layers": str(n_layers), "width": str(width)}
            if pd == "yes":
                options["teacher"] = str(teacher)
            runs.append(
                run(
                    run_name({"layers": values["layers"], "width": values["width"], "pd": pd}),
                    values,
                    data,
                    options,
                    eval_sets={"validation": str(data)},
                    train_tokens=corpus_tokens,
                )
            )
    extra = {
        "axes": ["layers", "width", "distillation"],
        "teacher": str(teacher) if teacher else None,
        "data": str(data),
        "corpus_tokens": corpus_tokens,
        "primary_eval": "validation",
    }
    return _plan("compact", out, runs, _settings(budget_tokens, count, common, defaults), extra)


def parse_corpora(specs: Iterable[str]) -> dict[str, str]:
    corpora: dict[str, str] = {}
    for spec in specs:
        label, sep, path = spec.partition("=")
        if not sep or not label or not path:
            raise AblationError(f"corpus {spec!r} must be NAME=DIR (e.g. en=tokens/en)")
        if label in corpora:
            raise AblationError(f"corpus name {label!r} given twice")
        corpora[label] = path
    return corpora


def _check_unique(runs: Sequence[RunSpec]) -> None:
    names = [r.name for r in runs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise AblationError(
            f"two runs would share the directory name(s) {dupes}; make the axis values distinct"
        )


def _plan(kind: str, out, runs: list[RunSpec], settings: dict[str, Any], extra: dict[str, Any]) -> Plan:
    """The plan of `runs` (names checked unique); its settings: the common ones, then the kind's own."""
    _check_unique(runs)
    return Plan(kind, Path(out), runs, {**settings, **extra})


def _settings(budget_tokens, count, common, defaults) -> dict[str, Any]:
    return {
        "budget_tokens": budget_tokens,
        "count": count,
        "batch_size": int(common.get("batch_size", defaults.get("batch_size", 0))),
        "preset": common.get("preset", defaults.get("preset")),
        "seed": common.get("seed", defaults.get("seed")),
        "options_common": {k: v for k, v in common.items() if k not in ("batch_size", "preset", "seed")},
    }
