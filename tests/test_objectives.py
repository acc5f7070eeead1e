"""The T5 paper's objectives: Table 3 invariants on the paper's sentence, the loader's lengths,
determinism and resume per objective, BERT's 80/10/10, and bad settings refused before training."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
from click.testing import CliRunner

from c4clean.cli import main
from c4clean.train import objectives as O
from c4clean.train.data import T5SpanCorruptionDataset
from c4clean.train.data_options import DataOptions
from c4clean.train.span_corruption import sample_keys

PAPER = "Thank you for inviting me to your party last week."
WORDS = O.split_words(PAPER)
SEEDS = range(12)


def _views(seed):
    out = CliRunner().invoke(main, ["objectives", "--text", PAPER, "--seed", str(seed), "--json"])
    assert out.exit_code == 0, out.output
    return {
        d["objective"]: (d["inputs"].split(), d["targets"].split())
        for d in map(json.loads, out.output.splitlines())
    }


def test_json_lists_every_objective_once():
    assert list(_views(0)) == list(O.OBJECTIVES)
    assert WORDS == ["Thank", "you", "for", "inviting", "me", "to", "your", "party", "last", "week", "."]


@pytest.mark.parametrize("seed", SEEDS)
def test_table3_invariants(seed):
    v = _views(seed)
    for name in ("deshuffle", "bert", "mass"):
        assert v[name][1] == WORDS  # targets are the original text
    assert sorted(v["deshuffle"][0]) == sorted(WORDS)
    inputs, targets = v["prefix_lm"]
    assert inputs + targets == WORDS and inputs and targets
    inputs, targets = v["iid_drop"]
    assert sorted(inputs + targets) == sorted(WORDS) and len(targets) == 2  # round(11 x 0.15)
    assert [w for w in WORDS if w in inputs] == inputs  # kept words keep their order
    mass_in, bert_in = v["mass"][0], v["bert"][0]
    assert len(mass_in) == len(bert_in) == len(WORDS) and mass_in.count("<M>") == 2
    assert all(m == w for m, w in zip(mass_in, WORDS) if m != "<M>")
    for name in ("random_spans", "iid_replace_spans"):
        _check_sentinels(*v[name])


def _check_sentinels(inputs, targets):
    """Sentinels appear in order <X>, <Y>, ... in both, each once; filling each input sentinel with
    the target words that follow it gives back the text."""
    s_in = [w for w in inputs if w.startswith("<")]
    s_out = [w for w in targets if w.startswith("<")]
    assert s_in == s_out == ["<X>", "<Y>", "<Z>"][: len(s_in)] and s_in
    assert targets[0] == "<X>"
    spans, current = {}, None
    for w in targets:
        if w.startswith("<"):
            current = spans.setdefault(w, [])
        else:
            current.append(w)
    rebuilt = [x for w in inputs for x in (spans[w] if w in spans else [w])]
    assert rebuilt == WORDS and all(spans.values())


def test_text_view_and_single_objective():
    out = CliRunner().invoke(main, ["objectives", "--text", PAPER, "--objective", "mass"])
    assert out.exit_code == 0 and "original" in out.output and "mass" in out.output
    assert "prefix_lm" not in out.output and "<M>" in out.output
    bad = CliRunner().invoke(main, ["objectives", "--text", PAPER, "--objective", "nope"])
    assert bad.exit_code == 2 and "unknown objective" in bad.output and "Traceback" not in bad.output


# --- lengths ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,raw,targets",
    [
        ("random_spans", 568, 114),
        ("prefix_lm", 511, 511),
        ("bert", 511, 512),
        ("mass", 511, 512),
        ("iid_replace_spans", 511, 155),
        ("iid_drop", 601, 91),
        ("deshuffle", 511, 512),
    ],
)
def test_lengths_for_512_inputs(name, raw, targets):
    assert DataOptions(objective=name).lengths() == (raw, targets)


def _setting(name, input_length=64, vocab_size=900, pieces=800):
    raw, target = DataOptions(objective=name, input_length=input_length).lengths()
    return raw, O.Setting(vocab_size, pieces, 1, 0, input_length, target, 0.15, 3.0)


@pytest.mark.parametrize("name", list(O.OBJECTIVES))
def test_shapes_padding_and_determinism(name):
    raw, s = _setting(name)
    windows = np.random.RandomState(1).randint(3, 800, size=(16, raw))
    keys = sample_keys(5, 2, np.arange(16))
    batch = O.apply(name, windows, keys, s)
    assert batch["input_ids"].shape == (16, 64) and batch["labels"].shape == (16, s.target_length)
    assert ("attention_mask" in batch) == O.get(name).padded
    if name in ("random_spans", "iid_drop", "bert", "mass", "deshuffle"):
        assert (batch["input_ids"] != 0).all()  # inputs fill input_length exactly
        assert (batch["input_ids"][:, -1] == 1).all()
    if "attention_mask" in batch:
        real = batch["attention_mask"].astype(bool)
        assert (batch["input_ids"][~real] == 0).all() and (batch["input_ids"][real] != 0).all()
    lab, dec = batch["labels"], batch["decoder_input_ids"]
    assert (dec[:, 1:][lab[:, :-1] != -100] == lab[:, :-1][lab[:, :-1] != -100]).all()
    assert (dec >= 0).all() and (dec[:, 0] == 0).all()
    again = O.apply(name, windows[3:5], keys[3:5], s)  # a sample depends on its key alone
    for k in batch:
        assert np.array_equal(batch[k][3:5], again[k])


def test_bert_replaces_80_10_10_and_never_uses_sentinels():
    raw, s = _setting("bert", input_length=512, vocab_size=1100, pieces=1000)
    windows = np.random.RandomState(0).randint(3, 1000, size=(64, raw))
    batch = O.apply("bert", windows, sample_keys(0, 0, np.arange(64)), s)
    inputs = batch["input_ids"][:, :-1]
    noise = O.iid_noise_mask(sample_keys(0, 0, np.arange(64)), raw, 0.15)
    assert (noise.sum(axis=1) == round(raw * 0.15)).all()
    assert (inputs[~noise] == windows[~noise]).all()
    n = noise.sum()
    masked = (inputs[noise] == O.mask_token_id(1100)).sum() / n
    kept = (inputs[noise] == windows[noise]).sum() / n
    assert abs(masked - 0.8) < 0.03 and abs(kept - 0.1) < 0.02  # the rest: random pieces
    assert inputs.max() <= 1100 and not ((inputs >= 1000) & (inputs < 1100)).any()


def test_deshuffle_is_a_permutation_and_iid_noise_is_uniform():
    raw, s = _setting("deshuffle")
    windows = np.tile(np.arange(3, 3 + raw), (200, 1))
    batch = O.apply("deshuffle", windows, sample_keys(0, 0, np.arange(200)), s)
    assert (np.sort(batch["input_ids"][:, :-1], axis=1) == windows).all()
    first = Counter(batch["input_ids"][:, 0].tolist())
    assert len(first) > raw // 2  # any token can come first
    hits = O.iid_noise_mask(sample_keys(1, 0, np.arange(4000)), 20, 0.25).mean(axis=0)
    assert np.allclose(hits, 0.25, atol=0.04)  # every position equally likely to be noise


# --- the loader ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(O.OBJECTIVES))
def test_loader_is_deterministic_and_resumes_exactly(token_dir, name):
    kw = dict(batch_size=4, seed=7, input_length=32, objective=name)
    ds = T5SpanCorruptionDataset(token_dir, "train", **kw)
    first = [b for _, b in zip(range(3), ds)]
    resumed = T5SpanCorruptionDataset(token_dir, "train", **kw)
    resumed.load_state_dict({"epoch": 0, "step": 2})
    again = next(iter(resumed))
    for k in first[2]:
        assert first[2][k].equal(again[k])
    assert first[0]["input_ids"].shape == (4, 32)
    other = T5SpanCorruptionDataset(token_dir, "train", **{**kw, "seed": 8}).make_batch(0, 0)
    assert not other["input_ids"].equal(first[0]["input_ids"])


@pytest.mark.parametrize(
    "options,message",
    [
        ({"objective": "nope"}, "unknown objective"),
        ({"noise_density": 0.0}, r"\(0, 1\)"),
        ({"noise_density": 1.5}, r"\(0, 1\)"),
        ({"mean_noise_span_length": 0.5}, ">= 1"),
        ({"objective": "prefix_lm", "noise_density": 0.2}, "does not use noise_density"),
        ({"objective": "bert", "mean_noise_span_length": 5}, "does not use mean_noise_span_length"),
        ({"objective": "deshuffle", "noise_density": 0.2}, "does not use"),
    ],
)
def test_bad_settings_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        DataOptions.from_dict(options)


def test_sentinel_overflow_is_refused(token_dir):
    with pytest.raises(ValueError, match="sentinels"):
        T5SpanCorruptionDataset(
            token_dir, "train", objective="iid_replace_spans", input_length=512, noise_density=0.5
        )


@pytest.mark.parametrize(
    "args,message",
    [
        (["--objective", "nope"], "unknown objective"),
        (["--noise-density", "1.5"], "(0, 1)"),
        (["--mean-noise-span-length", "0"], ">= 1"),
        (["--objective", "prefix_lm", "--noise-density", "0.2"], "does not use noise_density"),
    ],
)
def test_train_cli_refuses_bad_objective_settings(tmp_path, args, message):
    out = CliRunner().invoke(main, ["train", "--data", str(tmp_path), "--out", str(tmp_path / "r"), *args])
    assert out.exit_code == 2 and message in out.output and "Traceback" not in out.output
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("name", ["bert", "iid_replace_spans"])
def test_trainer_trains_and_validates_each_kind_of_batch(token_dir, tmp_path, name):
    """Padded batches (attention mask, -100 labels) and the mask token reach the model."""
    import math

    from c4clean.train.trainer import TrainConfig, train

    cfg = TrainConfig(
        data=str(token_dir),
        out=str(tmp_path / "run"),
        preset="t5-v1_1-tiny",
        batch_size=4,
        steps=2,
        eval_every=2,
        eval_batches=1,
        progress=False,
        log_every=1,
        data_options={"input_length": 32, "objective": name},
    )
    train(cfg)
    records = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if "loss" in r] + [r["val_loss"] for r in records if "val_loss" in r]
    assert len(losses) >= 3 and all(math.isfinite(x) for x in losses)
