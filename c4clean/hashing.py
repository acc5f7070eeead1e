"""Stateless hashing for deterministic choices: the same key gives the same number on any machine,
worker count or run, with no RNG state to carry or restore."""

from __future__ import annotations

import numpy as np

GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # SplitMix64's increment (2^64 / golden ratio)


def splitmix64(x) -> np.ndarray:
    """SplitMix64 finalizer: a bijective 64-bit mixer (uint64 in, uint64 out), vectorized."""
    with np.errstate(over="ignore"):  # wrap-around multiplication is the point
        z = np.asarray(x, dtype=np.uint64) + GOLDEN
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))
