"""The T5 paper's pre-training objectives (arXiv 1910.10683, Section 3.3), vectorised over a batch.

Each objective turns a (B, raw_length) batch of token windows into `input_ids`, `labels` and
`decoder_input_ids`, as `t5/data/preprocessors.py` defines it (`denoise` with a noise mask, an
inputs function and a targets function):

- `random_spans` (default): random_spans_noise_mask; noise_span_to_unique_sentinel inputs,
  nonnoise_span_to_unique_sentinel targets. Rate and span length apply.
- `prefix_lm`: random_prefix_noise_mask; the prefix is the input, the rest the target.
- `bert`: i.i.d. noise; 80% of noise tokens become the mask token, 10% a random token, 10% stay;
  targets are the original. Rate applies.
- `mass`: i.i.d. noise, every noise token the mask token (noise_token_to_sentinel); targets are the
  original. Rate applies.
- `iid_replace_spans`: i.i.d. noise; each run of noise tokens becomes one sentinel; targets are the
  sentinels and the dropped tokens. Rate applies.
- `iid_drop`: i.i.d. noise tokens dropped from the input (drop_noise_tokens), targets the dropped
  tokens (drop_nonnoise_tokens). Rate applies.
- `deshuffle`: permute_noise_tokens at noise density 1 (all tokens shuffled); targets the original.

Lengths (for `input_length` L; raw window R; the inputs end with EOS, as do the targets):
- `random_spans`: R from `random_spans_helper` (568 for 512), targets 114: inputs fill L exactly.
- `iid_drop`: R is the largest window whose kept tokens + EOS fit L (601 for 512 at 15%); targets
  round(R x rate) + 1 (91). Inputs fill L exactly.
- `bert`, `mass`, `deshuffle`: R = L - 1 (T5's `split_tokens_to_inputs_length`), targets L.
- `iid_replace_spans`: R = L - 1, as T5; the number of noise runs varies, so inputs are at most L
  (about L - rate^2 x R on average) and are padded, with an attention mask; targets are padded to
  their exact bound, 2 x noise tokens + 1, so nothing is ever cut.
- `prefix_lm`: R = L - 1, as T5; the split point is uniform in [1, R - 1], so inputs (prefix + EOS)
  and targets (the rest + EOS) are padded to L and R.

Where c4clean differs from the T5 code, and why:
- i.i.d. noise marks exactly round(R x rate) tokens, at uniformly random positions (T5 draws each
  token independently): the same distribution conditioned on the count, and every row of a batch
  then has the same length, so `iid_drop`, `bert` and `mass` need no padding.
- `bert` follows BERT's 80/10/10 (the T5 gin `iid_15_r10s90_f` uses 90% mask, 10% random, none
  kept); random tokens are drawn from the SentencePiece pieces after pad/eos/unk, never sentinels.
- The mask token is `vocab_size` (the first id after the 100 sentinels, inside the model's embedding
  rows, which are rounded up past it): not a sentinel, not unk. T5 masked with its first sentinel.
- `iid_replace_spans` targets put each noise span after its sentinel even when a window starts with
  noise (T5's `nonnoise_span_to_unique_sentinel` then shifts the sentinels by one span).
Padding: inputs with pad (0) and `attention_mask` 0; labels with -100 (ignored by the loss).

Randomness is stateless, as in span_corruption: a hash of (sample key, stream, position).
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from c4clean.hashing import GOLDEN, splitmix64
from c4clean.train.span_corruption import (
    combine,
    noise_counts,
    random_spans_helper,
    sample_keys,
    span_corrupt,
)

IGNORE = -100  # label padding, excluded from the loss (model.IGNORE_INDEX)
NUM_RESERVED = 3  # pad, eos, unk: never drawn as random replacement tokens
BERT_MASK, BERT_RANDOM = 0.8, 0.1  # of the noise tokens; the remaining 10% stay as they were
# streams of the stateless random numbers, so that no two decisions share them
NOISE, REPLACE, RANDOM_TOKEN, PERMUTE, SPLIT = 0x4E, 0x52, 0x54, 0x50, 0x53
RATE, SPAN = "noise_density", "mean_noise_span_length"


def mask_token_id(vocab_size: int) -> int:
    """The dedicated mask token: the first id after the sentinels (see the module docstring)."""
    return vocab_size


@dataclasses.dataclass(frozen=True)
class Setting:
    """What an objective needs besides the windows and their keys."""

    vocab_size: int  # sentinels count down from vocab_size - 1
    sp_pieces: int  # real pieces: [0, sp_pieces)
    eos_id: int
    pad_id: int
    input_length: int
    target_length: int
    noise_density: float
    mean_noise_span_length: float


# --- stateless random numbers ------------------------------------------------------------------


def _bits(keys: np.ndarray, stream: int, length: int) -> np.ndarray:
    """(B, length) uint64 random bits, a pure function of (key, stream, position)."""
    slots = np.arange(length, dtype=np.uint64)
    return splitmix64(combine(keys, np.uint64(stream))[:, None] ^ (slots[None, :] * GOLDEN))


def _uniform(keys: np.ndarray, stream: int, length: int) -> np.ndarray:
    return (_bits(keys, stream, length) >> np.uint64(11)).astype(np.float64) * 2.0**-53


def iid_noise_mask(keys: np.ndarray, length: int, noise_density: float) -> np.ndarray:
    """(B, length) bool with exactly round(length x density) noise tokens (at least 1, at most
    length - 1), each subset of that size equally likely."""
    num_noise, _ = noise_counts(length, noise_density, 1.0)
    # the num_noise positions with the smallest random scores (64-bit: ties have no chance)
    chosen = np.argpartition(_bits(keys, NOISE, length), num_noise - 1, axis=1)[:, :num_noise]
    mask = np.zeros((len(keys), length), dtype=bool)
    np.put_along_axis(mask, chosen, True, axis=1)
    return mask


# --- building outputs --------------------------------------------------------------------------


def _compact(values: np.ndarray, keep: np.ndarray, width: int, fill: int, eos: int) -> np.ndarray:
    """Per row: the kept values left-aligned, then EOS, then `fill` up to `width`."""
    batch = len(values)
    counts = keep.sum(axis=1)
    if counts.max(initial=0) + 1 > width:
        raise ValueError(f"a row needs {counts.max() + 1} positions, more than {width}")
    out = np.full((batch, width), fill, dtype=np.int64)
    rows = np.broadcast_to(np.arange(batch)[:, None], keep.shape)
    out[rows[keep], (np.cumsum(keep, axis=1) - 1)[keep]] = values[keep]
    out[np.arange(batch), counts] = eos
    return out


def _first_of_runs(mask: np.ndarray) -> np.ndarray:
    previous = np.zeros_like(mask)
    previous[:, 1:] = mask[:, :-1]
    return mask & ~previous


def _finish(inputs: np.ndarray, labels: np.ndarray, s: Setting, padded: bool) -> dict[str, np.ndarray]:
    """Decoder inputs are the labels shifted right (pad = decoder start), padding as pad."""
    decoder = np.concatenate([np.full((len(labels), 1), s.pad_id, np.int64), labels[:, :-1]], axis=1)
    batch = {
        "input_ids": inputs,
        "labels": labels,
        "decoder_input_ids": np.where(decoder == IGNORE, s.pad_id, decoder),
    }
    if padded:  # rows of different lengths: the encoder must not attend to the padding
        batch["attention_mask"] = (np.arange(inputs.shape[1])[None, :] <= _eos_position(inputs, s)).astype(
            np.int64
        )
    return batch


def _eos_position(inputs: np.ndarray, s: Setting) -> np.ndarray:
    return (inputs.shape[1] - 1 - np.argmax((inputs == s.eos_id)[:, ::-1], axis=1))[:, None]


def _with_eos(tokens: np.ndarray, eos: int) -> np.ndarray:
    return np.concatenate([tokens, np.full((len(tokens), 1), eos, np.int64)], axis=1)


# --- the objectives ----------------------------------------------------------------------------


def random_spans(windows, keys, s: Setting):
    """Today's span corruption, unchanged."""
    return span_corrupt(
        windows,
        keys,
        vocab_size=s.vocab_size,
        eos_id=s.eos_id,
        pad_id=s.pad_id,
        noise_density=s.noise_density,
        mean_noise_span_length=s.mean_noise_span_length,
    )


def prefix_lm(windows, keys, s: Setting):
    batch, length = windows.shape
    split = 1 + (_bits(keys, SPLIT, 1)[:, 0] % np.uint64(length - 1)).astype(np.int64)  # [1, R-1]
    prefix = np.arange(length)[None, :] < split[:, None]
    inputs = _compact(windows, prefix, s.input_length, s.pad_id, s.eos_id)
    labels = _compact(windows, ~prefix, s.target_length, IGNORE, s.eos_id)
    return _finish(inputs, labels, s, padded=True)


def bert(windows, keys, s: Setting):
    noise = iid_noise_mask(keys, windows.shape[1], s.noise_density)
    u = _uniform(keys, REPLACE, windows.shape[1])
    random_tokens = NUM_RESERVED + (
        _bits(keys, RANDOM_TOKEN, windows.shape[1]) % np.uint64(s.sp_pieces - NUM_RESERVED)
    ).astype(np.int64)
    corrupted = np.where(u < BERT_MASK, mask_token_id(s.vocab_size), windows)
    corrupted = np.where((u >= BERT_MASK) & (u < BERT_MASK + BERT_RANDOM), random_tokens, corrupted)
    inputs = _with_eos(np.where(noise, corrupted, windows), s.eos_id)
    return _finish(inputs, _with_eos(windows, s.eos_id), s, padded=False)


def mass(windows, keys, s: Setting):
    noise = iid_noise_mask(keys, windows.shape[1], s.noise_density)
    inputs = _with_eos(np.where(noise, mask_token_id(s.vocab_size), windows), s.eos_id)
    return _finish(inputs, _with_eos(windows, s.eos_id), s, padded=False)


def iid_replace_spans(windows, keys, s: Setting):
    batch, length = windows.shape
    noise = iid_noise_mask(keys, length, s.noise_density)
    first = _first_of_runs(noise)
    sentinels = s.vocab_size - np.cumsum(first, axis=1)
    keep = ~noise | first
    inputs = _compact(np.where(first, sentinels, windows), keep, s.input_length, s.pad_id, s.eos_id)
    # targets: each noise run after its sentinel (two slots per position: sentinel, token)
    slots = np.stack([np.where(first, sentinels, 0), windows], axis=2).reshape(batch, 2 * length)
    slot_keep = np.stack([first, noise], axis=2).reshape(batch, 2 * length)
    labels = _compact(slots, slot_keep, s.target_length, IGNORE, s.eos_id)
    return _finish(inputs, labels, s, padded=True)


def iid_drop(windows, keys, s: Setting):
    noise = iid_noise_mask(keys, windows.shape[1], s.noise_density)
    inputs = _compact(windows, ~noise, s.input_length, s.pad_id, s.eos_id)
    labels = _compact(windows, noise, s.target_length, IGNORE, s.eos_id)
    return _finish(inputs, labels, s, padded=False)


def deshuffle(windows, keys, s: Setting):
    order = np.argsort(_bits(keys, PERMUTE, windows.shape[1]), axis=1, kind="stable")
    inputs = _with_eos(np.take_along_axis(windows, order, axis=1), s.eos_id)
    return _finish(inputs, _with_eos(windows, s.eos_id), s, padded=False)


# --- lengths -----------------------------------------------------------------------------------


def _split_lengths(input_length: int, density: float, span: float) -> tuple[int, int]:
    return input_length - 1, input_length  # T5's split_tokens_to_inputs_length; targets = original


def _prefix_lengths(input_length: int, density: float, span: float) -> tuple[int, int]:
    return input_length - 1, input_length - 1  # targets: at most R - 1 tokens + EOS


def _replace_lengths(input_length: int, density: float, span: float) -> tuple[int, int]:
    num_noise, _ = noise_counts(input_length - 1, density, 1.0)
    return input_length - 1, 2 * num_noise + 1  # every noise token its own run, at worst


def _drop_lengths(input_length: int, density: float, span: float) -> tuple[int, int]:
    raw = input_length - 1
    while (raw + 1) - noise_counts(raw + 1, density, 1.0)[0] + 1 <= input_length:
        raw += 1
    return raw, noise_counts(raw, density, 1.0)[0] + 1


def max_sentinels(name: str, input_length: int, density: float, span: float) -> int:
    """The most sentinels one sample of this objective can use (0: none)."""
    raw, _ = OBJECTIVES[name].lengths(input_length, density, span)
    if name == "random_spans":
        return noise_counts(raw, density, span)[1]
    if name == "iid_replace_spans":
        num_noise, _ = noise_counts(raw, density, 1.0)
        return min(num_noise, raw - num_noise + 1)
    return 0


@dataclasses.dataclass(frozen=True)
class Objective:
    name: str
    apply: Callable[..., dict]  # (windows, keys, Setting) -> batch of numpy arrays
    lengths: Callable[[int, float, float], tuple[int, int]]  # (L, rate, span) -> (raw, targets)
    options: frozenset  # which of noise_density / mean_noise_span_length apply
    padded: bool  # rows differ in length: batches carry an attention mask
    uses_mask_token: bool = False


OBJECTIVES = {
    o.name: o
    for o in (
        Objective("random_spans", random_spans, random_spans_helper, frozenset({RATE, SPAN}), False),
        Objective("prefix_lm", prefix_lm, _prefix_lengths, frozenset(), True),
        Objective("bert", bert, _split_lengths, frozenset({RATE}), False, True),
        Objective("mass", mass, _split_lengths, frozenset({RATE}), False, True),
        Objective("iid_replace_spans", iid_replace_spans, _replace_lengths, frozenset({RATE}), True),
        Objective("iid_drop", iid_drop, _drop_lengths, frozenset({RATE}), False),
        Objective("deshuffle", deshuffle, _split_lengths, frozenset(), False),
    )
}
DEFAULT = "random_spans"


def get(name: str) -> Objective:
    if name not in OBJECTIVES:
        raise ValueError(f"unknown objective {name!r}; known: {', '.join(OBJECTIVES)}")
    return OBJECTIVES[name]


def apply(name: str, windows: np.ndarray, keys: np.ndarray, setting: Setting) -> dict[str, np.ndarray]:
    return get(name).apply(np.asarray(windows, dtype=np.int64), keys, setting)


# --- word-level view (the paper's Table 3) -----------------------------------------------------

SENTINEL_NAMES = ("X", "Y", "Z")  # then <S3>, <S4>, ...


def split_words(text: str) -> list[str]:
    """Words and punctuation marks, as the paper's Table 3 shows them ("week ." not "week.")."""
    import re

    return re.findall(r"\w+(?:'\w+)?|[^\w\s]", text)


def word_view(text: str, name: str, seed: int = 0, **rates) -> tuple[list[str], list[str]]:
    """(inputs, targets) as words: each word of `text` is one token; sentinels are shown as <X>,
    <Y>, ..., the mask token as <M>; EOS and padding are left out."""
    words = split_words(text)
    if len(words) < 2:
        raise ValueError("give a text of at least two words")
    vocab = sorted(set(words))
    ids = {w: NUM_RESERVED + i for i, w in enumerate(vocab)}
    extra = max(100, len(words))
    setting = Setting(
        vocab_size=NUM_RESERVED + len(vocab) + extra,
        sp_pieces=NUM_RESERVED + len(vocab),
        eos_id=1,
        pad_id=0,
        input_length=2 * len(words) + 2,
        target_length=2 * len(words) + 2,
        noise_density=rates.get(RATE, 0.15),
        mean_noise_span_length=rates.get(SPAN, 3.0),
    )
    windows = np.array([[ids[w] for w in words]], dtype=np.int64)
    batch = apply(name, windows, sample_keys(seed, 0, np.zeros(1, np.uint64)), setting)

    def show(row: np.ndarray) -> list[str]:
        out = []
        for t in row.tolist():
            if t in (setting.eos_id, setting.pad_id, IGNORE):
                break
            if t == mask_token_id(setting.vocab_size):
                out.append("<M>")
            elif t >= setting.sp_pieces:
                k = setting.vocab_size - 1 - t
                out.append(f"<{SENTINEL_NAMES[k]}>" if k < len(SENTINEL_NAMES) else f"<S{k}>")
            else:
                out.append(vocab[t - NUM_RESERVED])
        return out

    return show(batch["input_ids"][0]), show(batch["labels"][0])
