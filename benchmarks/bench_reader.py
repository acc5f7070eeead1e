"""The WET reader on one huge record against the same bytes as many small records.

For each size N (MB) two files are written to a temporary folder, plain and gzip: one record whose
body is N MB, and N MB of 4 KB records. Each is read with `iter_records`; the table gives CPU
seconds, MB/s and the peak of Python-allocated memory (tracemalloc, a separate pass), and the
ratio of the huge record's time to the small records'. Linear time means that ratio stays near 1 as
N grows; memory of about a small multiple of the record (the record, its decoded text and its lines)
means the reader holds one record and not the file.

    python benchmarks/bench_reader.py [--sizes 10 20 50]
"""

from __future__ import annotations

import argparse
import gzip
import random
import tempfile
import time
import tracemalloc
from pathlib import Path

from c4clean.cleaning.wet import ReadIssue, iter_records

SMALL_BODY = 4000


def _record(i: int, body: bytes) -> bytes:
    head = (
        f"WARC/1.0\r\nWARC-Type: conversion\r\nWARC-Target-URI: http://bench.example/{i}\r\n"
        f"WARC-Date: 2019-04-18T10:00:00Z\r\nContent-Type: text/plain\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    return head + body + b"\r\n\r\n"


_WORDS_RNG = random.Random(0)
WORDS = [
    bytes(_WORDS_RNG.choice(b"etaoinshrdlu") for _ in range(_WORDS_RNG.randint(2, 9))) for _ in range(5000)
]


def _text(rng: random.Random, size: int) -> bytes:
    """English-like lines (12 words, an end mark, LF) totalling `size` bytes or a little more."""
    words = WORDS
    lines, total = [], 0
    while total < size:
        line = b" ".join(rng.choice(words) for _ in range(12)) + b".\n"
        lines.append(line)
        total += len(line)
    return b"".join(lines)


def _read(path: Path) -> tuple[int, float]:
    start = time.process_time()
    pages = sum(not isinstance(r, ReadIssue) for r in iter_records(path))
    return pages, time.process_time() - start


def _peak_mb(path: Path) -> float:
    tracemalloc.start()
    for _ in iter_records(path):
        pass
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10, 20, 50], help="record sizes, MB")
    args = ap.parse_args(argv)
    rng = random.Random(0)
    print(
        f"{'size':>5} {'form':<5} {'layout':<14} {'pages':>6} {'cpu s':>7} {'MB/s':>6} "
        f"{'peak MB':>8} {'huge/small':>10}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for mb in args.sizes:
            size = mb << 20
            layouts = {
                "one record": _record(0, _text(rng, size)),
                "4 KB records": b"".join(
                    _record(i, _text(rng, SMALL_BODY)) for i in range(size // (SMALL_BODY + 160))
                ),
            }
            for form in ("plain", "gzip"):
                seconds = {}
                for layout, data in layouts.items():
                    path = Path(tmp) / f"{mb}-{layout[:3]}.wet{'.gz' if form == 'gzip' else ''}"
                    path.write_bytes(gzip.compress(data, mtime=0) if form == "gzip" else data)
                    pages, cpu = _read(path)
                    seconds[layout] = cpu
                    ratio = f"{seconds['one record'] / cpu:10.2f}" if layout != "one record" else ""
                    speed = len(data) / 2**20 / cpu
                    print(
                        f"{mb:>5} {form:<5} {layout:<14} {pages:>6} {cpu:>7.2f} {speed:>6.0f} "
                        f"{_peak_mb(path):>8.0f} {ratio}",
                        flush=True,
                    )
                    path.unlink()


if __name__ == "__main__":
    main()
