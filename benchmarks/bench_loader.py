"""Samples/s per core of the loader: window read + T5 span corruption at inputs 512 (568 raw -> 512/114).

    python benchmarks/bench_loader.py --tokens DIR [--batch-size 128 --batches 50 --doc-separator eos]

Without --tokens it encodes sample_data/wet (repeated) with a small vocabulary first. Runs in one process
(one core): the figure is what one DataLoader worker delivers.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def _build_tokens(work: Path) -> Path:
    from sample_text import write_sample_shards

    from c4clean.tokenize.encode import encode_corpus
    from c4clean.tokenize.vocab import train_vocab

    text = write_sample_shards(work / "text", repeat=4, num_shards=4)
    train_vocab(text, work / "vocab", vocab_size=4000, sample_bytes=4 << 20, num_threads=2)
    encode_corpus(text, work / "vocab", work / "tokens", workers=2)
    return work / "tokens"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tokens", type=Path)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--batches", type=int, default=50)
    parser.add_argument("--input-length", type=int, default=512)
    parser.add_argument("--doc-separator", choices=["none", "eos"], default=None)
    parser.add_argument(
        "--workers", type=int, default=0, help="also time a ResumableLoader with this many workers"
    )
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    from c4clean.train.data import T5SpanCorruptionDataset
    from c4clean.train.span_corruption import sample_keys, span_corrupt

    tokens = args.tokens or _build_tokens(Path(tempfile.mkdtemp(prefix="bench_loader_")))
    t0 = time.perf_counter()
    ds = T5SpanCorruptionDataset(
        tokens, input_length=args.input_length, batch_size=args.batch_size, doc_separator=args.doc_separator
    )
    open_s = time.perf_counter() - t0
    steps = [s % ds.batches_per_epoch for s in range(args.batches)]
    print(
        f"corpus: {ds.stream_tokens} tokens, {ds.num_windows} windows of {ds.raw_length}; "
        f"open {open_s * 1e3:.1f} ms; batch {args.batch_size}; {ds.input_length}/{ds.target_length}"
    )

    ds.make_batch(0, 0)  # warm the page cache
    t0 = time.perf_counter()
    windows = [np.stack([ds.read_window(w) for w in ds.window_index(0, ds.positions(s))]) for s in steps]
    read_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for s, w in zip(steps, windows):
        span_corrupt(w, sample_keys(0, 0, ds.positions(s)), vocab_size=ds.vocab.vocab_size)
    corrupt_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for s in steps:
        ds.make_batch(0, s)
    total_s = time.perf_counter() - t0
    n = args.batches * args.batch_size
    print(f"window read (shuffled):  {n / read_s:10,.0f} samples/s")
    print(f"span corruption:         {n / corrupt_s:10,.0f} samples/s")
    print(f"make_batch (both, int64 tensors): {n / total_s:10,.0f} samples/s per core")
    if args.workers:
        from c4clean.train.data import ResumableLoader

        loader = iter(ResumableLoader(ds, num_workers=args.workers))
        next(loader)  # worker start-up is not throughput
        t0 = time.perf_counter()
        for _ in range(args.batches):
            next(loader)
        print(f"ResumableLoader, {args.workers} workers: {n / (time.perf_counter() - t0):10,.0f} samples/s")


if __name__ == "__main__":
    main()
