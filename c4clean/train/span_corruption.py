"""T5 span corruption in vectorized numpy, exactly as t5.data.preprocessors defines it.

`random_spans_helper` gives the raw window length for an inputs length (568 for 512);
`random_spans_noise_mask` splits each window into alternating kept / noise spans (uniformly random
compositions of the kept and the noise token counts into the same number of spans, kept text first,
a noise span last); `noise_span_to_unique_sentinel` / `nonnoise_span_to_unique_sentinel` replace each
span by one sentinel, counting down from `vocab_size - 1`; EOS is appended to inputs and targets.

Randomness is stateless: every random number is a hash of (sample key, stream, position), and the
sample key is a hash of (seed, epoch, sample index), so any sample can be regenerated on its own.
"""

from __future__ import annotations

import numpy as np

from c4clean.hashing import GOLDEN, splitmix64

# distinct streams so the noise and the kept segmentations never share random numbers
NOISE_STREAM, NONNOISE_STREAM = 0x6E6F697365, 0x6B657074


def combine(*parts) -> np.ndarray:
    """Hash a tuple of uint64 values (or arrays, broadcast) into one key."""
    key = np.uint64(0)
    for part in parts:
        key = splitmix64(np.asarray(key, dtype=np.uint64) ^ np.asarray(part, dtype=np.uint64))
    return key


def sample_keys(seed: int, epoch: int, sample_index) -> np.ndarray:
    return combine(np.uint64(seed), np.uint64(epoch), np.asarray(sample_index, dtype=np.uint64))


def noise_counts(length: int, noise_density: float, mean_noise_span_length: float) -> tuple[int, int]:
    """(num_noise_tokens, num_noise_spans) as `random_spans_noise_mask` computes them."""
    length = max(length, 2)
    num_noise = int(round(length * noise_density))
    num_noise = min(max(num_noise, 1), length - 1)
    num_spans = max(int(round(num_noise / mean_noise_span_length)), 1)
    return num_noise, num_spans


def random_spans_helper(
    inputs_length: int,
    noise_density: float = 0.15,
    mean_noise_span_length: float = 3.0,
    extra_tokens_per_span_inputs: int = 1,
    extra_tokens_per_span_targets: int = 1,
) -> tuple[int, int]:
    """(raw tokens_length, targets_length) so that corrupted inputs are exactly `inputs_length` with EOS."""

    def lengths(tokens_length: int) -> tuple[int, int]:
        num_noise = int(round(tokens_length * noise_density))
        num_nonnoise = tokens_length - num_noise
        num_spans = int(round(num_noise / mean_noise_span_length))
        return (
            num_nonnoise + num_spans * extra_tokens_per_span_inputs + 1,
            num_noise + num_spans * extra_tokens_per_span_targets + 1,
        )

    tokens_length = inputs_length - 1
    while lengths(tokens_length + 1)[0] <= inputs_length:
        tokens_length += 1
    _, targets_length = lengths(tokens_length)
    if noise_density == 0.5 and targets_length > inputs_length:  # T5's own correction for this case
        tokens_length -= 1
        targets_length -= 1
    return tokens_length, targets_length


def random_segmentation(keys: np.ndarray, stream: int, num_items: int, num_segments: int) -> np.ndarray:
    """(B, num_segments) positive lengths summing to num_items: a uniformly random composition per row.

    T5 shuffles a vector with num_segments-1 ones among num_items-1 slots; the ones mark where a new
    segment starts. Taking the num_segments-1 slots with the smallest random keys is the same distribution.
    """
    batch = len(keys)
    if num_segments == 1:
        return np.full((batch, 1), num_items, dtype=np.int64)
    slots = np.arange(num_items - 1, dtype=np.uint64)
    scores = splitmix64(combine(keys, np.uint64(stream))[:, None] ^ (slots[None, :] * GOLDEN))
    cuts = np.sort(np.argpartition(scores, num_segments - 2, axis=1)[:, : num_segments - 1], axis=1) + 1
    bounds = np.concatenate(
        [np.zeros((batch, 1), np.int64), cuts, np.full((batch, 1), num_items, np.int64)], axis=1
    )
    return np.diff(bounds, axis=1)


def random_spans_noise_mask(
    keys: np.ndarray, length: int, noise_density: float = 0.15, mean_noise_span_length: float = 3.0
) -> np.ndarray:
    """(B, length) bool, True = noise; starts with kept text, ends with noise."""
    num_noise, num_spans = noise_counts(length, noise_density, mean_noise_span_length)
    noise_lengths = random_segmentation(keys, NOISE_STREAM, num_noise, num_spans)
    kept_lengths = random_segmentation(keys, NONNOISE_STREAM, length - num_noise, num_spans)
    interleaved = np.stack([kept_lengths, noise_lengths], axis=2).reshape(len(keys), 2 * num_spans)
    span_starts = np.cumsum(interleaved, axis=1)[:, :-1]
    indicator = np.zeros((len(keys), length), dtype=np.int32)
    np.put_along_axis(indicator, span_starts, 1, axis=1)
    return np.cumsum(indicator, axis=1) % 2 == 1


def _span_to_sentinel(tokens: np.ndarray, spans: np.ndarray, vocab_size: int) -> np.ndarray:
    """Replace each run of `spans` by one sentinel (vocab_size-1, -2, ... left to right); drop the rest of
    the run."""
    previous = np.zeros_like(spans)
    previous[:, 1:] = spans[:, :-1]
    first = spans & ~previous
    sentinels = vocab_size - np.cumsum(first, axis=1)
    replaced = np.where(first, sentinels, tokens)
    keep = ~spans | first
    counts = keep.sum(axis=1)
    if not np.all(counts == counts[0]):
        raise ValueError("rows of a batch must have the same number of spans and noise tokens")
    return replaced[keep].reshape(len(tokens), counts[0])


def span_corrupt(
    windows: np.ndarray,
    keys: np.ndarray,
    *,
    vocab_size: int,
    eos_id: int = 1,
    pad_id: int = 0,
    noise_density: float = 0.15,
    mean_noise_span_length: float = 3.0,
) -> dict[str, np.ndarray]:
    """Corrupt a (B, raw_length) batch of windows. Returns int64 `input_ids`, `labels`,
    `decoder_input_ids`."""
    windows = np.asarray(windows, dtype=np.int64)
    batch, length = windows.shape
    mask = random_spans_noise_mask(keys, length, noise_density, mean_noise_span_length)
    eos = np.full((batch, 1), eos_id, dtype=np.int64)
    inputs = np.concatenate([_span_to_sentinel(windows, mask, vocab_size), eos], axis=1)
    labels = np.concatenate([_span_to_sentinel(windows, ~mask, vocab_size), eos], axis=1)
    decoder_input_ids = np.concatenate([np.full((batch, 1), pad_id, np.int64), labels[:, :-1]], axis=1)
    return {"input_ids": inputs, "labels": labels, "decoder_input_ids": decoder_input_ids}
