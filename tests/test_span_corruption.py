from math import comb

import numpy as np
import pytest

from c4clean.train.span_corruption import (
    noise_counts,
    random_spans_helper,
    random_spans_noise_mask,
    sample_keys,
    span_corrupt,
)

VOCAB = 32100  # T5's: 32,000 pieces + 100 sentinels, <extra_id_0> = 32099


@pytest.mark.parametrize(
    "inputs,raw,targets", [(128, 141, 29), (256, 284, 58), (512, 568, 114), (1024, 1137, 229)]
)
def test_length_table(inputs, raw, targets):
    # values of T5's random_spans_helper (t5-trainer.md 1.2), and the corrupted lengths they imply
    assert random_spans_helper(inputs) == (raw, targets)
    windows = np.random.default_rng(0).integers(3, 32000, size=(4, raw))
    batch = span_corrupt(windows, sample_keys(0, 0, np.arange(4)), vocab_size=VOCAB)
    assert batch["input_ids"].shape == (4, inputs) and batch["labels"].shape == (4, targets)


def test_noise_counts_for_568():
    assert noise_counts(568, 0.15, 3.0) == (85, 28)  # 483 kept + 28 sentinels + EOS = 512


def _reconstruct(inputs, targets):
    """Put the noise spans of `targets` back in place of the sentinels of `inputs` (both end with EOS)."""
    spans, current = {}, None
    for t in targets[:-1]:
        if t >= VOCAB - 100:
            current = int(t)
            spans[current] = []
        else:
            spans[current].append(int(t))
    out = []
    for t in inputs[:-1]:
        out.extend(spans.pop(int(t)) if t >= VOCAB - 100 else [int(t)])
    assert not spans
    return out


def test_reconstruction_and_sentinel_order():
    windows = np.random.default_rng(1).integers(3, 32000, size=(64, 568))
    batch = span_corrupt(windows, sample_keys(7, 0, np.arange(64)), vocab_size=VOCAB)
    for window, inputs, labels, dec in zip(
        windows, batch["input_ids"], batch["labels"], batch["decoder_input_ids"]
    ):
        assert _reconstruct(inputs, labels) == list(window)
        assert inputs[-1] == 1 and labels[-1] == 1
        sentinels_in = inputs[inputs >= VOCAB - 100]
        sentinels_out = labels[labels >= VOCAB - 100]
        assert list(sentinels_in) == list(range(VOCAB - 1, VOCAB - 1 - 28, -1)) == list(sentinels_out)
        assert inputs[0] < VOCAB - 100  # starts with kept text
        assert inputs[-2] == VOCAB - 28  # ends with a noise span: last sentinel right before EOS
        assert labels[0] == VOCAB - 1 and labels[-2] < VOCAB - 100
        assert dec[0] == 0 and list(dec[1:]) == list(labels[:-1])


def test_noise_density_and_span_length_distribution():
    n = 4000
    mask = random_spans_noise_mask(sample_keys(3, 1, np.arange(n)), 568)
    assert np.all(mask.sum(axis=1) == 85)
    assert not mask[:, 0].any() and mask[:, -1].all()
    # noise spans: runs of True
    starts = mask & ~np.pad(mask, ((0, 0), (1, 0)))[:, :-1]
    assert np.all(starts.sum(axis=1) == 28)
    assert mask.mean() == pytest.approx(0.15, abs=0.001)
    run_lengths = []
    for row in mask[:500]:
        edges = np.flatnonzero(np.diff(np.concatenate([[0], row.astype(int), [0]])))
        run_lengths.extend(edges[1::2] - edges[::2])
    assert np.mean(run_lengths) == pytest.approx(85 / 28)
    # a uniformly random composition of 85 into 28 positive parts: P(part = j) = C(85-j-1, 26) / C(84, 27)
    counts = np.bincount(run_lengths, minlength=6)
    for j in (1, 2, 3, 4):
        expected = comb(85 - j - 1, 26) / comb(84, 27)
        assert counts[j] / len(run_lengths) == pytest.approx(expected, abs=0.02)
    # noise is spread over the whole window, not bunched at either end
    quarters = mask[:, 1:-1].reshape(n, 2, -1).mean(axis=(0, 2))
    assert quarters == pytest.approx([0.15, 0.15], abs=0.01)


def test_randomness_is_per_sample():
    windows = np.random.default_rng(2).integers(3, 32000, size=(8, 568))
    keys = sample_keys(11, 4, np.arange(100, 108))
    whole = span_corrupt(windows, keys, vocab_size=VOCAB)
    alone = span_corrupt(windows[5:6], sample_keys(11, 4, [105]), vocab_size=VOCAB)
    assert np.array_equal(whole["input_ids"][5], alone["input_ids"][0])
    again = span_corrupt(windows, keys, vocab_size=VOCAB)
    assert all(np.array_equal(whole[k], again[k]) for k in whole)
    other_epoch = span_corrupt(windows, sample_keys(11, 5, np.arange(100, 108)), vocab_size=VOCAB)
    assert not np.array_equal(whole["input_ids"], other_epoch["input_ids"])
    masks = random_spans_noise_mask(keys, 568)
    assert len({m.tobytes() for m in masks}) == 8
