"""Ablations: axis parsing and run naming, budget arithmetic, plan/resume/skip logic, reports from
fake run logs, and one real toy size ablation through the trainer."""

from __future__ import annotations

import csv
import io
import json
import math
import re
import sys
from pathlib import Path

import pytest

from c4clean.ablate import plan as A
from c4clean.ablate import report as R

sys.path.insert(0, str(Path(__file__).parent))  # tokens_testdata, the tokenizer tests' helper

# ---------------------------------------------------------------------------------------------
# parsing and naming


@pytest.mark.parametrize(
    "text,value",
    [
        ("2^23", 1 << 23),
        ("2**23", 1 << 23),
        ("8388608", 1 << 23),
        ("8_388_608", 1 << 23),
        ("1e6", 10**6),
        (" 2 ^ 35 ", 1 << 35),
    ],
)
def test_parse_count(text, value):
    assert A.parse_count(text) == value


@pytest.mark.parametrize("bad", ["", "2^", "abc", "1.5", "0", "-4", "1e-3"])
def test_parse_count_rejects(bad):
    with pytest.raises(A.AblationError):
        A.parse_count(bad)


def test_format_count_round_trips_powers_of_two():
    for k in range(4, 40):
        assert A.parse_count(A.format_count(1 << k)) == 1 << k
    assert A.format_count(1000) == "1000" and A.format_count(128) == "2^7"


def test_parse_axis_resolves_aliases_and_keeps_values_as_typed():
    axis = A.parse_axis("mean_span=2,3,5,10")
    assert axis.name == "mean_noise_span_length" and axis.label == "mean_span"
    assert axis.values == ("2", "3", "5", "10")
    assert A.parse_axis("--noise-density=0.10,0.15").values == ("0.10", "0.15")  # "0.10" not "0.1"
    for bad in ["noise_density", "noise_density=", "1x=3", "a=1,1"]:
        with pytest.raises(A.AblationError):
            A.parse_axis(bad)


def test_expand_product_and_zip():
    a, b = A.parse_axis("noise_density=0.10,0.15,0.25,0.50"), A.parse_axis("mean_span=2,3,5,10")
    product = A.expand_axes([a, b], "product")
    assert len(product) == 16
    assert len({tuple(sorted(p.items())) for p in product}) == 16  # every combination exactly once
    assert product[0] == {"noise_density": "0.10", "mean_noise_span_length": "2"}
    assert [p["mean_noise_span_length"] for p in product[:4]] == ["2", "3", "5", "10"]  # last axis fastest
    zipped = A.expand_axes([a, b], "zip")
    assert [(p["noise_density"], p["mean_noise_span_length"]) for p in zipped] == list(
        zip(a.values, b.values)
    )
    with pytest.raises(A.AblationError):
        A.expand_axes([a, A.parse_axis("seed=1,2")], "zip")
    with pytest.raises(A.AblationError):
        A.expand_axes([a, A.parse_axis("density=0.3")], "product")  # same option twice via alias
    assert A.expand_axes([], "product") == [{}]


def test_run_names_are_deterministic_distinct_and_safe():
    axes = [A.parse_axis("noise_density=0.10,0.15,0.25,0.50"), A.parse_axis("mean_span=2,3,5,10")]
    labels = {a.name: a.display for a in axes}
    names = [A.run_name(v, labels) for v in A.expand_axes(axes)]
    again = [A.run_name(v, labels) for v in A.expand_axes(axes)]
    assert names == again and len(set(names)) == len(names)
    assert all(re.fullmatch(r"[A-Za-z0-9._+~-]+", n) for n in names)
    assert "noise_density-0.10" in names[0] and "mean_span-2" in names[0]
    long_a = {"x": "a" * 200 + "1"}
    long_b = {"x": "a" * 200 + "2"}
    assert A.run_name(long_a) != A.run_name(long_b)
    assert len(A.run_name(long_a)) <= A.MAX_NAME_LEN
    assert A.run_name({"path": "../../etc"}).count("/") == 0


# ---------------------------------------------------------------------------------------------
# budget arithmetic


def test_random_spans_lengths_match_t5_table():
    # the reference's random_spans_helper values (t5-trainer.md section 1.2)
    for inputs, raw, targets in [(128, 141, 29), (256, 284, 58), (512, 568, 114), (1024, 1137, 229)]:
        assert A.random_spans_lengths(inputs, 0.15, 3.0) == (raw, targets)


@pytest.mark.parametrize(
    "budget,batch,tps", [(1 << 35, 128, 568), (1000, 3, 7), (10, 4, 100), (1 << 20, 8, 141)]
)
def test_steps_cover_the_budget_minimally(budget, batch, tps):
    steps = A.steps_for_budget(budget, batch, tps)
    assert steps * batch * tps >= budget
    assert steps == 1 or (steps - 1) * batch * tps < budget


def test_paper_budget_gives_paper_steps_and_repeats():
    # T5 paper: 2^19 steps x 128 sequences x 512 tokens = 2^35 tokens; Table 9 repeats 64..4096
    assert A.steps_for_budget(1 << 35, 128, A.tokens_per_sample("inputs", 512, 0.15, 3.0)) == 1 << 19
    for k, paper_repeats in [(29, 64), (27, 256), (25, 1024), (23, 4096)]:
        assert A.repeats(1 << 35, 1 << k) == paper_repeats == R.PAPER_TABLE9[1 << k][0]
    # counting raw windows reads more tokens per sample, so fewer steps for the same budget
    assert A.steps_for_budget(1 << 35, 128, A.tokens_per_sample("raw", 512, 0.15, 3.0)) < 1 << 19


def test_size_plan_rows_report_table9_repeats(tmp_path):
    plan = A.plan_size(
        tmp_path,
        "tok",
        [1 << 23, 1 << 25, 1 << 27, 1 << 29],
        include_full=True,
        common={"preset": "p", "batch_size": "128", "seed": "0"},
        budget_tokens=1 << 35,
        steps=None,
        count="inputs",
        corpus_tokens=1 << 40,
    )
    rows = R.build_rows(plan, {}, {})
    got = {r["max_tokens"]: r["repeats"] for r in rows}
    assert got == {
        str(1 << 23): 4096,
        str(1 << 25): 1024,
        str(1 << 27): 256,
        str(1 << 29): 64,
        "full": 1 / 32,
    }
    assert {r.steps for r in plan.runs} == {1 << 19}  # same schedule for every row
    assert all(r.eval_sets == {"full": "tok"} for r in plan.runs)  # all scored on the full corpus
    assert plan.runs[0].options["max_tokens"] == str(1 << 23) and "max_tokens" not in plan.runs[-1].options


def test_budget_follows_ablated_batch_and_density(tmp_path):
    plan = A.plan_sweep(
        tmp_path,
        "tok",
        [A.parse_axis("batch_size=8,16"), A.parse_axis("noise_density=0.15,0.3")],
        mode="product",
        common={"preset": "p", "batch_size": "4"},
        budget_tokens=1 << 20,
        steps=None,
        count="raw",
        corpus_tokens=1 << 16,
    )
    for run in plan.runs:
        b = int(run.options["batch_size"])
        assert run.steps == A.steps_for_budget(1 << 20, b, run.tokens_per_sample)
    by = {(r.options["batch_size"], r.options["noise_density"]): r for r in plan.runs}
    assert by[("8", "0.15")].steps > by[("16", "0.15")].steps
    assert by[("8", "0.3")].tokens_per_sample != by[("8", "0.15")].tokens_per_sample


# ---------------------------------------------------------------------------------------------
# plan persistence, sharding, resume and skip


def _sweep(tmp_path, values="1,2,3", budget=1 << 12):
    return A.plan_sweep(
        tmp_path / "abl",
        "tok",
        [A.parse_axis(f"seed={values}")],
        mode="product",
        common={"preset": "p", "batch_size": "2"},
        budget_tokens=budget,
        steps=None,
        count="raw",
        corpus_tokens=1000,
        defaults={"input_length": 128},
    )


def test_save_plan_refuses_changed_settings_but_allows_new_runs(tmp_path):
    A.save_plan(_sweep(tmp_path))
    A.save_plan(_sweep(tmp_path))  # identical: fine
    grown = _sweep(tmp_path, "1,2,3,4")
    A.save_plan(grown)
    assert len(A.Plan.load(tmp_path / "abl").runs) == 4
    partial = _sweep(tmp_path, "4")
    A.save_plan(partial)  # naming fewer runs keeps the others in the plan
    assert len(A.Plan.load(tmp_path / "abl").runs) == 4
    with pytest.raises(A.AblationError, match="different settings"):
        A.save_plan(_sweep(tmp_path, budget=1 << 14))


def test_shards_partition_the_runs():
    runs = [A.RunSpec(f"r{i}", {}, "d", 1, {}, {}) for i in range(7)]
    parts = [A.select_runs(runs, A.parse_shard(f"{i}/3")) for i in range(3)]
    names = [r.name for p in parts for r in p]
    assert sorted(names) == sorted(r.name for r in runs) and len(names) == len(set(names))
    assert [r.name for r in A.select_runs(runs, only=["r3"])] == ["r3"]
    with pytest.raises(A.AblationError):
        A.select_runs(runs, only=["nope"])
    for bad in ["3/3", "1", "a/b"]:
        with pytest.raises(A.AblationError):
            A.parse_shard(bad)


class FakeBackend:
    """Trains by writing a checkpoint step counter; can be told to crash part-way through a run."""

    def __init__(self, crash_run=None, crash_at=None):
        self.calls, self.crash_run, self.crash_at = [], crash_run, crash_at
        self.evals = []

    def final_step(self, run_dir):
        f = run_dir / "step"
        return int(f.read_text()) if f.is_file() else None

    def train(self, run, run_dir, resume):
        self.calls.append((run.name, resume, self.final_step(run_dir)))
        run_dir.mkdir(parents=True, exist_ok=True)
        start = self.final_step(run_dir) or 0
        for step in range(start + 1, run.steps + 1):
            (run_dir / "step").write_text(str(step))
            if run.name == self.crash_run and step == self.crash_at:
                raise KeyboardInterrupt

    def evaluate(self, run_dir, token_dir):
        self.evals.append((run_dir.name, token_dir))
        return {"loss": 1.0 + len(self.evals), "tokens": 10}


def test_interrupted_ablation_continues_with_missing_runs_and_steps(tmp_path):
    plan = _sweep(tmp_path)
    A.save_plan(plan)
    names = [r.name for r in plan.runs]
    crashing = FakeBackend(crash_run=names[1], crash_at=3)
    with pytest.raises(KeyboardInterrupt):
        A.execute(plan, crashing)
    assert [c[0] for c in crashing.calls] == names[:2]
    assert A.is_done(plan, plan.runs[0]) and not A.is_done(plan, plan.runs[1])

    again = FakeBackend()
    outcome = A.execute(A.Plan.load(plan.out), again)
    assert outcome[names[0]] == "skipped"
    assert again.calls[0] == (names[1], True, 3)  # resumed at the step it reached, not restarted
    assert again.calls[1] == (names[2], False, None)
    assert all(A.is_done(plan, r) for r in plan.runs)
    assert len(again.evals) == 2  # the finished run's evaluation was cached, not redone

    third = FakeBackend()
    assert set(A.execute(plan, third).values()) == {"skipped"} and not third.calls and not third.evals


def test_trained_run_missing_its_evaluation_is_only_evaluated(tmp_path):
    plan = _sweep(tmp_path, "1")
    run = plan.runs[0]
    run_dir = plan.run_dir(run)
    run_dir.mkdir(parents=True)
    (run_dir / "step").write_text(str(run.steps))  # e.g. trained on another machine
    backend = FakeBackend()
    assert A.execute(plan, backend)[run.name] == "eval:validation"
    assert not backend.calls and len(backend.evals) == 1


def test_trainer_stopping_early_is_an_error(tmp_path):
    plan = _sweep(tmp_path, "1")

    class Short(FakeBackend):
        def train(self, run, run_dir, resume):
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / "step").write_text("1")

    with pytest.raises(A.AblationError, match="stopped at step 1"):
        A.execute(plan, Short())


def test_domain_plan_scores_every_run_on_every_corpus(tmp_path):
    corpora = A.parse_corpora(["en=t/en", "realnewslike=t/rn", "noclean=t/nc"])
    plan = A.plan_domain(
        tmp_path,
        corpora,
        common={"preset": "p", "batch_size": "4"},
        budget_tokens=1 << 16,
        steps=None,
        count="raw",
        corpus_tokens={"en": 100, "realnewslike": 50, "noclean": 400},
        defaults={"input_length": 128},
    )
    assert [r.data for r in plan.runs] == ["t/en", "t/rn", "t/nc"]
    assert all(r.eval_sets == corpora for r in plan.runs)
    assert len({r.steps for r in plan.runs}) == 1  # same budget and settings
    for bad in [["en"], ["en=a", "en=b"], ["=x"]]:
        with pytest.raises(A.AblationError):
            A.parse_corpora(bad)


# ---------------------------------------------------------------------------------------------
# reports from fake run logs


def _fake_size_ablation(tmp_path):
    """Smaller subsets: lower training loss, higher validation loss (memorization), as Figure 6."""
    subsets = [1 << 12, 1 << 14, 1 << 16]
    plan = A.plan_size(
        tmp_path / "abl",
        "tok",
        subsets,
        include_full=True,
        common={"preset": "p", "batch_size": "4"},
        budget_tokens=1 << 20,
        steps=None,
        count="raw",
        corpus_tokens=1 << 18,
        defaults={"input_length": 128},
    )
    states, curves = {}, {}
    for i, run in enumerate(plan.runs):  # order: 2^12, 2^14, 2^16, full
        final_train = 1.0 + 0.5 * i
        curves[run.name] = [
            (s, final_train + 3.0 * math.exp(-s / 50) + 0.01 * (s % 3)) for s in range(1, run.steps + 1)
        ]
        states[run.name] = {"trained_step": run.steps, "evals": {"full": {"loss": 4.0 - 0.4 * i}}}
    return plan, states, curves


def test_size_report_csv_markdown_and_plots(tmp_path):
    plan, states, curves = _fake_size_ablation(tmp_path)
    paths = R.write_report(plan, states, curves)
    assert {p.name for p in paths} == {"results.csv", "report.md", "training_loss.png", "loss_vs_size.png"}
    for p in paths:
        if p.suffix == ".png":
            assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 10_000
    rows = list(csv.DictReader(io.StringIO((plan.out / "results.csv").read_text())))
    assert [r["run"] for r in rows] == [r.name for r in plan.runs]
    for row, run in zip(rows, plan.runs):
        assert row["status"] == "done"
        assert int(row["steps"]) * 4 * run.tokens_per_sample == int(row["budget_tokens"])
        assert float(row["repeats"]) == pytest.approx(int(row["budget_tokens"]) / run.train_tokens, rel=1e-3)
        assert float(row["val_loss"]) == pytest.approx(states[run.name]["evals"]["full"]["loss"])
        tail = curves[run.name][-max(1, round(len(curves[run.name]) * 0.1)) :]
        assert float(row["final_train_loss"]) == pytest.approx(sum(v for _, v in tail) / len(tail), abs=1e-4)
    # smaller subsets repeat more: repeats decrease as the subset grows
    reps = [float(r["repeats"]) for r in rows]
    assert reps == sorted(reps, reverse=True)
    md = (plan.out / "report.md").read_text()
    assert "All runs finished" in md and "T5 paper" in md and "not ours" in md
    for row in rows:
        assert f"{float(row['val_loss']):.3f}" in md
    assert md.count("\n| ") >= len(rows) + 1


def test_report_marks_missing_runs(tmp_path):
    plan, states, curves = _fake_size_ablation(tmp_path)
    missing = plan.runs[1].name
    del states[missing], curves[missing]
    R.write_report(plan, states, curves)
    rows = {r["run"]: r for r in csv.DictReader(io.StringIO((plan.out / "results.csv").read_text()))}
    assert rows[missing]["status"] == "missing" and rows[missing]["val_loss"] == ""
    assert (
        "Incomplete" in (plan.out / "report.md").read_text()
        and missing in (plan.out / "report.md").read_text()
    )


def test_domain_report_has_full_matrix(tmp_path):
    corpora = {"en": "t/en", "realnewslike": "t/rn", "noclean": "t/nc"}
    plan = A.plan_domain(
        tmp_path / "abl",
        corpora,
        common={"preset": "p", "batch_size": "4"},
        budget_tokens=1 << 14,
        steps=None,
        count="raw",
        corpus_tokens={"en": 1000, "realnewslike": 300, "noclean": 5000},
        validation_tokens={"en": 100, "realnewslike": 30, "noclean": 500},
        defaults={"input_length": 128},
    )
    loss = {
        (a, b): 2.0 + (0 if a == b else 0.5) + 0.1 * i + 0.01 * j
        for i, a in enumerate(corpora)
        for j, b in enumerate(corpora)
    }
    states = {
        r.name: {
            "trained_step": r.steps,
            "evals": {b: {"loss": loss[(r.axis_values["corpus"], b)]} for b in corpora},
        }
        for r in plan.runs
    }
    curves = {r.name: [(s, 5.0 / s) for s in range(1, r.steps + 1)] for r in plan.runs}
    R.write_report(plan, states, curves)
    rows = list(csv.DictReader(io.StringIO((plan.out / "results.csv").read_text())))
    for row in rows:
        for b in corpora:
            assert float(row[f"val_loss[{b}]"]) == pytest.approx(loss[(row["corpus"], b)])
        assert float(row["val_loss"]) == pytest.approx(loss[(row["corpus"], row["corpus"])])  # own corpus
    md = (plan.out / "report.md").read_text()
    assert "RealNews-like" in md and "C4, unfiltered" in md  # the paper's rows beside ours
    assert (plan.out / "domain_matrix.png").stat().st_size > 10_000


def test_sweep_report_two_axes(tmp_path):
    axes = [A.parse_axis("noise_density=0.10,0.15,0.25,0.50"), A.parse_axis("mean_span=2,3,5,10")]
    plan = A.plan_sweep(
        tmp_path / "abl",
        "tok",
        axes,
        mode="product",
        common={"preset": "p", "batch_size": "4"},
        budget_tokens=None,
        steps=5,
        count="raw",
        corpus_tokens=1000,
        defaults={"input_length": 128},
    )
    states = {
        r.name: {
            "trained_step": 5,
            "evals": {
                "validation": {
                    "loss": float(r.options["noise_density"]) * 10
                    + float(r.options["mean_noise_span_length"])
                }
            },
        }
        for r in plan.runs
    }
    curves = {r.name: [(s, 6.0 - s) for s in range(1, 6)] for r in plan.runs}
    R.write_report(plan, states, curves)
    md = (plan.out / "report.md").read_text()
    assert "Table 6" in md and "Table 7" in md
    rows = list(csv.DictReader(io.StringIO((plan.out / "results.csv").read_text())))
    assert len(rows) == 16 and {r["noise_density"] for r in rows} == {"0.10", "0.15", "0.25", "0.50"}
    assert (plan.out / "sweep.png").stat().st_size > 10_000
    assert "own objective" in md  # losses under different corruption settings are flagged as not comparable


def _objective_plan(tmp_path, studies=("approaches", "strategies", "rates", "spans"), **common):
    return A.plan_objectives(
        tmp_path / "abl",
        "tok",
        list(studies),
        common={"preset": "p", "batch_size": "4", "input_length": "64", **common},
        budget_tokens=1 << 16,
        steps=None,
        count="inputs",
        corpus_tokens=1000,
    )


def test_objective_studies_share_runs_and_keep_the_papers_rows(tmp_path):
    plan = _objective_plan(tmp_path)
    names = [r.name for r in plan.runs]
    assert len(names) == len(set(names)) == 13  # 3 + 4 new + 3 new rates + 3 new span lengths
    assert "objective-iid_replace_spans" in names and "objective-random_spans" in names
    assert "objective-random_spans__mean_noise_span_length-10" in names
    by = {r.name: r for r in plan.runs}
    assert by["objective-iid_replace_spans__noise_density-0.50"].options["noise_density"] == "0.50"
    assert "noise_density" not in by["objective-prefix_lm"].options  # prefix LM takes no rate
    assert {r.steps for r in plan.runs} == {(1 << 16) // (4 * 64)}  # same steps: counted as inputs
    studies = plan.settings["studies"]
    assert [row[0] for row in studies["strategies"]["rows"]][:4] == [
        "BERT-style",
        "MASS-style",
        "Replace corrupted spans",
        "Drop corrupted tokens",
    ]
    assert studies["spans"]["rows"][0] == ["Baseline (i.i.d.)", "objective-iid_replace_spans"]
    assert studies["spans"]["rows"][2] == ["3", "objective-random_spans"]  # shared with Table 5's row


def test_objective_studies_refuse_bad_settings_before_training(tmp_path):
    with pytest.raises(A.AblationError, match="sentinels"):  # 25% and 50% i.i.d. spans at 512 inputs
        _objective_plan(tmp_path, studies=["rates"], input_length="512")
    assert len(_objective_plan(tmp_path, studies=["rates"], input_length="128").runs) == 4
    with pytest.raises(A.AblationError, match="set objective"):
        _objective_plan(tmp_path, objective="bert")
    with pytest.raises(A.AblationError, match="unknown study"):
        _objective_plan(tmp_path, studies=["tables"])


def test_objective_report_sets_the_papers_numbers_beside_ours(tmp_path):
    plan = _objective_plan(tmp_path)
    states = {
        r.name: {"trained_step": r.steps, "evals": {"validation": {"loss": 2.0 + i / 10}}}
        for i, r in enumerate(plan.runs)
    }
    curves = {r.name: [(s, 6.0 - s / 100) for s in range(1, 65)] for r in plan.runs}
    R.write_report(plan, states, curves)
    md = (plan.out / "report.md").read_text()
    for title in ("Table 4", "Table 5", "Table 6", "Table 7"):
        assert title in md
    prefix = next(line for line in md.splitlines() if line.startswith("| Prefix language modeling"))
    assert "`objective-prefix_lm`" in prefix and "80.69" in prefix and "2.000" in prefix
    drop = next(line for line in md.splitlines() if line.startswith("| Drop corrupted tokens"))
    assert "84.44" in drop
    assert "*T5 paper* GLUE" in md and "not ours" in md and "All runs finished" in md


# ---------------------------------------------------------------------------------------------
# one real toy ablation: sample WET -> vocabulary -> token shards (E's APIs) -> tiny T5 runs (F's trainer)


@pytest.fixture(scope="module")
def toy_tokens(tmp_path_factory, sample_wet):
    import tokens_testdata as TD

    from c4clean.tokenize.encode import encode_corpus
    from c4clean.tokenize.vocab import train_vocab

    root = tmp_path_factory.mktemp("ablate_tokens")
    TD.write_text_shards(
        root / "text",
        TD.wet_documents(sample_wet),
        splits=(("train", 2), ("validation", 1)),
        validation_every=5,
    )
    train_vocab(root / "text", root / "vocab", vocab_size=300, sample_bytes=1 << 18)
    encode_corpus(root / "text", root / "vocab", root / "tokens")
    return root / "tokens"


def test_real_toy_size_ablation_resumes_and_reports(toy_tokens, tmp_path):
    from click.testing import CliRunner

    from c4clean.cli import main

    out = tmp_path / "abl"
    args = [
        "ablate",
        "size",
        "--data",
        str(toy_tokens),
        "--tokens",
        "2^7,2^9",
        "--no-full",
        "--budget",
        "2^9",
        "--preset",
        "t5-v1_1-tiny",
        "--batch-size",
        "2",
        "--set",
        "input_length=32",
        "--set",
        "log_every=1",
        "--set",
        "eval_every=0",
        "--set",
        "warmup_steps=2",
        "--set",
        "cpu_threads=1",
        "--launcher",
        "inprocess",
        "--eval-batches",
        "2",
        "--out",
        str(out),
    ]
    first = CliRunner().invoke(main, [*args, "--only", "tokens-2p7"])
    assert first.exit_code == 0, first.output
    plan = A.Plan.load(out)
    small = plan.run_dir(plan.runs[0])
    ckpt = sorted((small / "checkpoints").iterdir())[-1] / "model.safetensors"
    mtime = ckpt.stat().st_mtime_ns

    second = CliRunner().invoke(main, args)
    assert second.exit_code == 0, second.output
    assert "tokens-2p7] done, skipped" in second.output
    assert ckpt.stat().st_mtime_ns == mtime  # the finished run was not trained again

    raw = A.random_spans_lengths(32, 0.15, 3.0)[0]
    rows = list(csv.DictReader(io.StringIO((out / "results.csv").read_text())))
    assert [r["max_tokens"] for r in rows] == [str(1 << 7), str(1 << 9)]
    for row, run in zip(rows, plan.runs):
        assert row["status"] == "done"
        assert run.steps == A.steps_for_budget(1 << 9, 2, raw) and run.tokens_per_sample == raw
        assert float(row["repeats"]) == pytest.approx(run.steps * 2 * raw / int(row["max_tokens"]), rel=1e-4)
        assert math.isfinite(float(row["val_loss"])) and math.isfinite(float(row["final_train_loss"]))
        run_json = json.loads((plan.run_dir(run) / "run.json").read_text())  # a normal train run directory
        assert run_json["train"]["data_options"]["max_tokens"] == int(row["max_tokens"])
        logged = [
            json.loads(x)["step"] for x in (plan.run_dir(run) / "metrics.jsonl").read_text().splitlines()
        ]
        assert max(logged) == run.steps
    for name in ("training_loss.png", "loss_vs_size.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"
    md = (out / "report.md").read_text()
    passes = plan.runs[0].steps * 2 * raw / 128  # the 2^9 budget, rounded up to whole steps, over 2^7 tokens
    assert 4 <= passes < 4 + 2 * 2 * raw / 128
    assert "All runs finished" in md and f"| 2^7 (128) | {passes:.2f} |" in md


def test_option_routing_reaches_trainer_model_and_loader():
    from c4clean.ablate.backend import TrainerBackend

    backend = TrainerBackend(launcher="inprocess")
    train, model, data = backend.route(
        {
            "lr": "0.01",
            "optimizer": "adamw",
            "num_heads": "2",
            "noise_density": "0.25",
            "max_tokens": "2^20",
            "layers": "4",
            "width": "768",
            "masking": "static",
        }
    )
    assert train == {"lr": 0.01, "optimizer": "adamw"}
    assert data == {"noise_density": 0.25, "max_tokens": 1 << 20, "masking": "static"}
    # width 768 is T5 v1.1-base's shape: 12 heads of 64, d_ff 2048; layers set encoder and decoder
    assert model == {
        "num_heads": 12,
        "num_layers": 4,
        "num_decoder_layers": 4,
        "d_model": 768,
        "d_kv": 64,
        "d_ff": 2048,
    }
    with pytest.raises(A.AblationError, match="unknown train/data option"):
        backend.route({"no_such_option": "1"})
    with pytest.raises(A.AblationError):
        backend.route({"masking": "sometimes"})


def test_static_masking_keeps_one_mask_per_window(toy_tokens):
    import numpy as np

    from c4clean.train import data as D

    kwargs = dict(batch_size=4, seed=3, input_length=32)
    static = D.T5SpanCorruptionDataset(toy_tokens, "train", masking="static", **kwargs)
    dynamic = D.T5SpanCorruptionDataset(toy_tokens, "train", **kwargs)

    def by_window(ds, epoch):
        s = ds.make_samples(epoch, np.arange(ds.samples_per_epoch))
        return {int(w): s["input_ids"][i].tobytes() for i, w in enumerate(s["window"])}

    s0, s1 = by_window(static, 0), by_window(static, 1)
    d0, d1 = by_window(dynamic, 0), by_window(dynamic, 1)
    common = set(s0) & set(s1)
    assert len(common) > 10
    assert all(s0[w] == s1[w] for w in common)  # static: same window, same corrupted input in every epoch
    assert sum(d0[w] != d1[w] for w in set(d0) & set(d1)) > len(common) // 2  # dynamic: new masks


def test_static_masking_trains_through_the_trainer(toy_tokens, tmp_path):
    from c4clean.ablate.backend import TrainerBackend

    plan = A.plan_sweep(
        tmp_path / "abl",
        str(toy_tokens),
        [A.parse_axis("masking=static,dynamic")],
        mode="product",
        common={
            "preset": "t5-v1_1-tiny",
            "batch_size": "2",
            "input_length": "32",
            "cpu_threads": "1",
            "eval_every": "0",
            "log_every": "1",
        },
        budget_tokens=None,
        steps=3,
        count="raw",
        corpus_tokens=TrainerBackend.corpus_tokens(str(toy_tokens), "train"),
    )
    A.save_plan(plan)
    backend = TrainerBackend(launcher="inprocess", eval_batches=1, eval_batch_size=2, progress=False)
    A.execute(plan, backend)
    curves = {r.name: R.training_curve(plan.run_dir(r)) for r in plan.runs}
    assert all(len(c) == 3 for c in curves.values())
    # same seed, same windows: the first batches differ only by their masks, so the losses differ
    static, dynamic = (curves[r.name] for r in plan.runs)
    assert static != dynamic


def test_domain_corpus_without_usable_validation_is_trained_but_not_scored(toy_tokens, tmp_path):
    """A corpus whose validation split cannot fill one batch (C4's 1-in-1000 split of a small corpus)
    is found at planning time: its run still trains and is scored on the other corpora, the ablation
    completes, and the report says why that column is empty. Scoring settings live in the plan."""
    import tokens_testdata as TD
    from click.testing import CliRunner

    from c4clean.cli import main
    from c4clean.tokenize.encode import encode_corpus

    root = toy_tokens.parent
    docs = [("http://empty.example/", "")] + [(u, t) for u, t in _toy_docs(root)]
    TD.write_text_shards(
        tmp_path / "text", docs, splits=(("train", 1), ("validation", 1)), validation_every=len(docs) + 1
    )  # validation = the empty document alone
    encode_corpus(tmp_path / "text", root / "vocab", tmp_path / "tokens")

    out = tmp_path / "abl"
    result = CliRunner().invoke(
        main,
        [
            "ablate",
            "domain",
            "--data",
            f"full={toy_tokens}",
            f"noval={tmp_path / 'tokens'}",
            "--steps",
            "2",
            "--preset",
            "t5-v1_1-tiny",
            "--batch-size",
            "2",
            "--set",
            "input_length=32",
            "--set",
            "eval_every=0",
            "--set",
            "cpu_threads=1",
            "--launcher",
            "inprocess",
            "--eval-batches",
            "3",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "no validation loss on noval" in result.output
    plan = A.Plan.load(out)
    assert plan.settings["scoring"] == {"eval_batches": 3, "eval_batch_size": 2, "eval_seed": 0}
    assert all(set(run.eval_sets) == {"full"} for run in plan.runs)
    assert all(A.is_done(plan, run) for run in plan.runs)
    assert "No run is scored on noval" in (out / "report.md").read_text()

    again = CliRunner().invoke(main, ["ablate", "run", "--out", str(out), "--launcher", "inprocess"])
    assert again.exit_code == 0 and again.output.count("done, skipped") == 2, again.output


def _toy_docs(root):
    import pyarrow as pa

    rows = []
    for shard in sorted((root / "text").glob("train-*.arrow")):
        with pa.memory_map(str(shard)) as source:
            table = pa.ipc.open_file(source).read_all()
        rows += list(zip(table.column("url").to_pylist(), table.column("text").to_pylist()))
    return rows


def test_objective_is_a_sweep_axis_checked_before_training(tmp_path):
    from c4clean.ablate.backend import TrainerBackend

    backend = TrainerBackend(launcher="inprocess")
    assert backend.route({"objective": "bert", "noise_density": "0.25"})[2] == {
        "objective": "bert",
        "noise_density": 0.25,
    }
    for bad, message in [
        ({"objective": "nope"}, "unknown objective"),
        ({"objective": "prefix_lm", "noise_density": "0.2"}, "does not use noise_density"),
        ({"noise_density": "1.5"}, r"\(0, 1\)"),
        ({"mean_noise_span_length": "0"}, ">= 1"),
    ]:
        with pytest.raises(A.AblationError, match=message):
            backend.route(bad)
    plan = A.plan_sweep(
        tmp_path,
        "tok",
        [A.parse_axis("objective=random_spans,iid_drop,deshuffle")],
        mode="product",
        common={"preset": "p", "batch_size": "4", "input_length": "64"},
        budget_tokens=1 << 16,
        steps=None,
        count="raw",
        corpus_tokens=None,
    )
    raw = {r.axis_values["objective"]: r.tokens_per_sample for r in plan.runs}
    assert raw == {"random_spans": 70, "iid_drop": 74, "deshuffle": 63}  # each objective's window


def test_compact_grid_with_and_without_a_teacher(tmp_path):
    plan = A.plan_compact(
        tmp_path / "abl",
        "tok",
        [2, 4],
        [128, 256],
        "/runs/teacher",
        common={"preset": "p", "batch_size": "4", "input_length": "64"},
        budget_tokens=None,
        steps=7,
        count="raw",
        corpus_tokens=1000,
    )
    assert len(plan.runs) == 8 and len({r.name for r in plan.runs}) == 8
    taught = [r for r in plan.runs if r.axis_values["distillation"] == "yes"]
    assert {r.options["teacher"] for r in taught} == {"/runs/teacher"} and len(taught) == 4
    assert all("teacher" not in r.options for r in plan.runs if r not in taught)
    assert plan.runs[0].name == "layers-2__width-128__pd-no"
    states = {
        r.name: {
            "trained_step": 7,
            "evals": {"validation": {"loss": 3.0 - (0.25 if r in taught else 0.0)}},
        }
        for r in plan.runs
    }
    R.write_report(plan, states, {r.name: [(1, 5.0), (7, 4.0)] for r in plan.runs})
    md = (plan.out / "report.md").read_text()
    line = next(x for x in md.splitlines() if x.startswith("| 4 | 256 |"))
    assert "3.000" in line and "2.750" in line and "-0.250" in line
    with pytest.raises(A.AblationError, match="sets layers"):
        A.plan_compact(
            tmp_path,
            "tok",
            [2],
            [128],
            None,
            common={"layers": "3"},
            budget_tokens=None,
            steps=1,
            count="raw",
            corpus_tokens=None,
        )
    no_teacher = A.plan_compact(
        tmp_path / "b",
        "tok",
        [2],
        [128, 256],
        None,
        common={},
        budget_tokens=None,
        steps=1,
        count="raw",
        corpus_tokens=None,
    )
    assert [r.axis_values["distillation"] for r in no_teacher.runs] == ["no", "no"]


def test_compact_refuses_a_teacher_of_another_vocabulary(toy_tokens, tmp_path):
    from click.testing import CliRunner

    from c4clean.cli import main

    teacher = tmp_path / "teacher"
    teacher.mkdir()
    (teacher / "run.json").write_text(json.dumps({"vocab": {"sha256": "f" * 64}}))
    out = CliRunner().invoke(
        main,
        [
            "ablate",
            "compact",
            "--input",
            str(toy_tokens),
            "--teacher",
            str(teacher),
            "--steps",
            "1",
            "--output",
            str(tmp_path / "abl"),
        ],
    )
    assert out.exit_code == 1 and "another vocabulary" in out.output and "Traceback" not in out.output
    assert not (tmp_path / "abl" / "runs").exists()


def test_real_toy_objectives_and_compact_ablations_through_the_cli(toy_tokens, tmp_path):
    """`ablate objectives` trains and scores each objective through the trainer (same steps for all,
    counted as inputs); `ablate compact` then distils students from one of those runs."""
    from click.testing import CliRunner

    from c4clean.cli import main

    common = ["--preset", "t5-v1_1-tiny", "--batch-size", "2", "--set", "input_length=32"]
    common += ["--set", "cpu_threads=1", "--set", "eval_every=0", "--launcher", "inprocess"]
    common += ["--eval-batches", "1", "--eval-batch-size", "2", "--input", str(toy_tokens)]
    out = CliRunner().invoke(
        main,
        [
            "ablate",
            "objectives",
            "--study",
            "approaches",
            "--budget",
            "256",
            *common,
            "--output",
            str(tmp_path / "obj"),
        ],
    )
    assert out.exit_code == 0, out.output
    plan = A.Plan.load(tmp_path / "obj")
    assert [r.name for r in plan.runs] == ["objective-prefix_lm", "objective-bert", "objective-deshuffle"]
    assert {r.steps for r in plan.runs} == {4}  # 256 / (2 x 32 inputs)
    rows = list(csv.DictReader(io.StringIO((tmp_path / "obj" / "results.csv").read_text())))
    assert all(r["status"] == "done" and math.isfinite(float(r["val_loss"])) for r in rows)
    assert "80.69" in (tmp_path / "obj" / "report.md").read_text()

    teacher = plan.run_dir(plan.runs[1])
    out = CliRunner().invoke(
        main,
        [
            "ablate",
            "compact",
            "--layers",
            "1",
            "--widths",
            "64",
            "--teacher",
            str(teacher),
            "--steps",
            "2",
            *common,
            "--output",
            str(tmp_path / "compact"),
        ],
    )
    assert out.exit_code == 0, out.output
    md = (tmp_path / "compact" / "report.md").read_text()
    line = next(x for x in md.splitlines() if x.startswith("| 1 | 64 |"))
    assert line.count(".") >= 3  # both losses and their difference were measured
    pd = json.loads((tmp_path / "compact" / "runs" / "layers-1__width-64__pd-yes" / "run.json").read_text())
    assert pd["train"]["teacher"] == str(teacher.resolve()) and pd["model"]["d_model"] == 64
