"""Throughput of `c4clean run --variant en`: pages/s per core with and without near-dedup, CPU time
per stage, 1 vs 2 workers, peak memory.

Each configuration runs as its own `c4clean run` process (fresh interpreter, as a user runs it);
peak memory is the largest resident set among that process and the worker processes it waited for
(`getrusage(RUSAGE_CHILDREN)` of a fresh helper process per run).

    python benchmarks/bench_pipeline.py [--input ../shared/data/wet/bench] [--out bench-out]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_INPUT = REPO.parent / "shared" / "data" / "wet" / "bench"

CONFIGS = [
    ("en, no near-dedup, 1 worker", ["--no-near-dedup"], 1),
    ("en + near-dedup, 1 worker", [], 1),
    ("en + near-dedup, 2 workers", [], 2),
]

# Measures one child run: its wall time and the peak RSS of the processes it waited for.
_MEASURE = """
import json, resource, subprocess, sys, time
start = time.perf_counter()
code = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL)
wall = time.perf_counter() - start
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"exit": code, "wall_s": wall, "max_rss_mib": usage.ru_maxrss / 1024,
                  "cpu_s": usage.ru_utime + usage.ru_stime}))
"""


def run_config(input_dir: Path, out: Path, flags: list[str], workers: int) -> dict:
    command = [
        sys.executable,
        "-m",
        "c4clean.cli",
        "run",
        "--input",
        str(input_dir),
        "--output",
        str(out),
        "--workers",
        str(workers),
        *flags,
    ]
    measured = subprocess.run(
        [sys.executable, "-c", _MEASURE, *command], check=True, capture_output=True, text=True
    )
    result = json.loads(measured.stdout.strip().splitlines()[-1])
    if result["exit"] != 0:
        raise SystemExit(f"run failed: {' '.join(command)}")
    stats = json.loads((out / "stats.json").read_text())
    manifest = json.loads((out / "manifest.json").read_text())
    pages_in = stats["stages"][0]["pages_in"]
    result.update(
        workers=workers,
        pages_in=pages_in,
        pages_out=sum(s["pages"] for s in manifest["splits"].values()),
        pages_per_s=pages_in / result["wall_s"],
        pages_per_s_per_core=pages_in / result["wall_s"] / workers,
        stages=stats["stages"],
    )
    return result


def markdown(results: dict) -> str:
    # pages per CPU second (user+sys of all processes of the run) is per-core throughput that
    # holds up on a machine shared with other work; wall-clock rates do not.
    lines = [
        "| configuration | pages in | pages out | wall s | pages/s | pages/s per worker "
        "| CPU s | pages per CPU s | peak RSS MiB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {r['pages_in']} | {r['pages_out']} | {r['wall_s']:.1f} | "
            f"{r['pages_per_s']:.0f} | {r['pages_per_s_per_core']:.0f} | {r['cpu_s']:.0f} | "
            f"{r['pages_in'] / r['cpu_s']:.0f} | {r['max_rss_mib']:.0f} |"
        )
    first = results[CONFIGS[1][0]] if CONFIGS[1][0] in results else next(iter(results.values()))
    lines += [
        "",
        "CPU seconds per stage (en + near-dedup, 1 worker; near dedup is not timed per "
        "stage, see the difference of the first two rows):",
        "",
        "| stage | pages in | pages out | CPU s in stage | pages per CPU s of stage |",
        "|---|---|---|---|---|",
    ]
    for s in first["stages"]:
        rate = f"{s['pages_in'] / s['seconds']:.0f}" if s.get("seconds") else ""
        lines.append(
            f"| {s['stage']} | {s['pages_in']} | {s['pages_out']} | "
            f"{'' if s['seconds'] is None else s['seconds']} | {rate} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", type=Path, default=DEFAULT_INPUT)
    parser.add_argument("--out", type=Path, default=None, help="keep outputs and results.json here")
    parser.add_argument("--only", type=int, nargs="*", help="indices of CONFIGS to run")
    parser.add_argument("--report", type=Path, help="only print the tables of a results.json")
    args = parser.parse_args()
    if args.report:
        print(markdown(json.loads(args.report.read_text())))
        return
    base = args.out or Path(tempfile.mkdtemp(prefix="c4clean-bench-"))
    base.mkdir(parents=True, exist_ok=True)
    results = {}
    for index, (name, flags, workers) in enumerate(CONFIGS):
        if args.only is not None and index not in args.only:
            continue
        print(f"running: {name} ...", flush=True)
        results[name] = run_config(args.input, base / f"run{index}", flags, workers)
        print(
            f"  {results[name]['wall_s']:.1f} s, {results[name]['pages_per_s']:.0f} pages/s, "
            f"peak {results[name]['max_rss_mib']:.0f} MiB",
            flush=True,
        )
    (base / "results.json").write_text(json.dumps(results, indent=1))
    print(markdown(results))
    print(
        f"\nresults: {base / 'results.json'}  (cores: {os.cpu_count()}, "
        f"load avg {os.getloadavg()[0]:.1f} at the end)"
    )


if __name__ == "__main__":
    main()
