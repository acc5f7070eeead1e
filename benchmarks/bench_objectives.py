"""Samples/s per core of each pre-training objective (train/objectives.py) at inputs 512.

    python benchmarks/bench_objectives.py [--batch-size 128 --batches 20 --input-length 512]
                                          [--tokens DIR]

Times the objective alone on random token windows (a 32,000-piece vocabulary), in one process with
one thread: what one DataLoader worker spends per sample besides reading the window. With --tokens,
also times whole batches from the loader (window reads + objective) on that token directory.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def _rate(fn, batches: int, batch_size: int) -> float:
    fn(0)  # warm up
    t0 = time.perf_counter()
    for b in range(batches):
        fn(b + 1)
    return batches * batch_size / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--input-length", type=int, default=512)
    parser.add_argument("--tokens", default=None, help="also time the loader on this token directory")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    from c4clean.train import objectives as O
    from c4clean.train.data_options import DataOptions
    from c4clean.train.span_corruption import sample_keys

    print(f"{'objective':<18} {'raw':>5} {'targets':>7} {'samples/s (objective)':>22} {'(loader)':>10}")
    for name in O.OBJECTIVES:
        raw, targets = DataOptions(objective=name, input_length=args.input_length).lengths()
        setting = O.Setting(32100, 32000, 1, 0, args.input_length, targets, 0.15, 3.0)
        windows = np.random.default_rng(0).integers(3, 32000, size=(args.batch_size, raw))
        first = np.arange(args.batch_size)

        def objective_batch(b):
            O.apply(name, windows, sample_keys(0, 0, first + b * args.batch_size), setting)

        rate = _rate(objective_batch, args.batches, args.batch_size)
        loader = "—"
        if args.tokens:
            from c4clean.train.data import T5SpanCorruptionDataset

            ds = T5SpanCorruptionDataset(
                args.tokens, input_length=args.input_length, batch_size=args.batch_size, objective=name
            )

            def loader_batch(b):
                ds.make_batch(0, b % ds.batches_per_epoch)

            loader = f"{_rate(loader_batch, args.batches, args.batch_size):,.0f}"
        print(f"{name:<18} {raw:>5} {targets:>7} {rate:>22,.0f} {loader:>10}")


if __name__ == "__main__":
    main()
