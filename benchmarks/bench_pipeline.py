"""Throughput of `c4clean run --variant en`: pages/s per core with and without near-dedup, CPU time
per stage, 1 vs 2 workers, peak memory; and with `--memory`, peak memory per process on the bench
corpus and on a corpus K times larger.

Each configuration runs as its own `c4clean run` process (fresh interpreter, as a user runs it),
under a fresh helper process (`--measure`) that waits for it: CPU time and the largest resident set
come from `getrusage(RUSAGE_CHILDREN)` of that helper. The helper also polls the run's process tree
(Linux `/proc`) every `POLL_S` seconds and keeps each process's `VmHWM` (the kernel's peak resident
set of that process, exact up to the last poll before the process exits), so the driver and each
worker process get their own peak.

`--memory` builds the K-times corpus with `scale_corpus.py` (copy k: the same pages under new URLs
with the words of each line reordered, so that neither URL, line nor near-dedup removes copies;
about K times the output) and runs `MEMORY_CONFIGS` on 1x and on Kx. Memory that does not grow with
the corpus means each process's Kx/1x ratio of peak RSS stays small (issue 9: within 1.5x at 10x).

    python benchmarks/bench_pipeline.py [--input ../shared/data/wet/bench] [--out bench-out] [--repeat N]
    python benchmarks/bench_pipeline.py --only 1 2 --repeat 5    # 1 against 2 workers, five pairs
    python benchmarks/bench_pipeline.py --memory [--scale 10] [--memory-workers 2 1] --out bench-mem

`--repeat N` runs the configurations in turn N times: each pair of 1 and 2 workers runs back to back,
and the worker-scaling table gives each pair's speed-up, CPU change and whether the shards are the
same (the machine's speed drifts over minutes: compare the median of pairs).

Figures (the 2-core machine, idle; the README's "Benchmarks and figures" explains them, and
benchmarks/results/pipeline_scaling.md keeps every run):
- 1 against 2 workers, every benchmark run since the early stager (56eebfa to 33ec6bd, 2026-11-26 10:35
  to 2026-11-27 01:36 UTC): 33 runs, 163 pairs, median of the runs' medians 1.76x (1.62x to 1.94x); 8 runs
  with a median >= 1.8x, 69 pairs >= 1.8x. Pairs whose 2-worker run used at most 4% more CPU: group
  medians 1.83x to 1.97x; above: 1.55x to 1.70x. The latest, 33ec6bd (2026-11-27): 1.62x (CPU +16%),
  1.72x (+8%), 1.71x (+10%).
- One round on 33ec6bd (2026-11-27 01:23 UTC): en without near-dedup 19.9 s, en + near-dedup 26.8 s with
  1 worker and 15.6 s with 2 (CPU 20, 27 and 29 s).
- Peak RSS per process, 1x -> 10x (33ec6bd, --workers 2): driver 319 -> 404 MiB (1.27), workers 274 ->
  334 (1.22) and 273 -> 311 (1.14), the early stager (listed as a third worker) 130 -> 132 (1.02), whole
  tree 904 -> 1,062 (1.17): every process within the 1.5x of issue 9.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parents[1]
DEFAULT_INPUT = REPO.parent / "shared" / "data" / "wet" / "bench"
SCALER = Path(__file__).resolve().parent / "scale_corpus.py"

CONFIGS = [
    ("en, no near-dedup, 1 worker", ["--no-near-dedup"], 1),
    ("en + near-dedup, 1 worker", [], 1),
    ("en + near-dedup, 2 workers", [], 2),
]
MEMORY_FLAGS: list[str] = []  # en + near-dedup, as the second and third rows above
POLL_S = 0.25
_STATUS_KEYS = ("VmHWM", "VmRSS", "RssAnon", "RssFile")
_MIB = 1024  # /proc and ru_maxrss give KiB


# --- measuring one run (in a fresh helper process: `bench_pipeline.py --measure -- COMMAND`) ---------


def _children_by_parent() -> dict[int, list[int]]:
    found: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        found.setdefault(ppid, []).append(int(entry.name))
    return found


def _tree(root: int) -> list[int]:
    children, pids, todo = _children_by_parent(), [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo += children.get(pid, [])
    return pids


def _status_kib(pid: int) -> dict[str, int]:
    """VmHWM, VmRSS, RssAnon and RssFile of a process in KiB ({} if it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            lines = f.read().splitlines()
    except OSError:
        return {}
    return {k: int(v.split()[0]) for k, _, v in (line.partition(":") for line in lines) if k in _STATUS_KEYS}


def _argv(pid: int) -> Optional[list[str]]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().decode("utf-8", "replace").split("\0")
    except OSError:
        return None


def _role(pid: int, root: int) -> str:
    if pid == root:
        return "driver"
    argv = _argv(pid)
    if argv is None:
        return "?"
    if argv == _argv(root):
        return "worker"  # a local worker forked from the run (`pool`): the run's own command line
    return "other: " + " ".join(argv[1:]).strip()[:60]  # e.g. the run's watchdog (`process_group`)


def measure(command: list[str]) -> dict:
    """Runs `command`, polling its process tree; the peak RSS of every process it started, and a
    timeline of each one's RSS (one sample per second) to see which step makes it grow."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    seen: dict[int, dict] = {}
    tree_peak_kib = 0
    timeline: list = []
    while proc.poll() is None:
        total = 0
        now = time.perf_counter() - start
        sample = [] if not timeline or now - timeline[-1][0] >= 1.0 else None
        for pid in _tree(proc.pid):
            status = _status_kib(pid)
            if not status:
                continue
            entry = seen.get(pid)
            if entry is None:
                entry = seen[pid] = {"pid": pid, "role": _role(pid, proc.pid), "peak_kib": 0, "anon_kib": 0}
            entry["peak_kib"] = max(entry["peak_kib"], status.get("VmHWM", 0))
            entry["anon_kib"] = max(entry["anon_kib"], status.get("RssAnon", 0))
            total += status.get("VmRSS", 0)
            if sample is not None:
                sample.append((pid, round(status.get("VmRSS", 0) / _MIB)))
        tree_peak_kib = max(tree_peak_kib, total)
        if sample is not None:
            timeline.append((round(now, 1), sample))
        time.sleep(POLL_S)
    wall = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    processes = [
        # anon: the largest RssAnon seen (sampled): the process's own memory, without the pages of
        # files it maps (shared libraries, memory-mapped Arrow files), which the kernel can drop.
        {
            "pid": e["pid"],
            "role": e["role"],
            "peak_rss_mib": e["peak_kib"] / _MIB,
            "anon_mib": e["anon_kib"] / _MIB,
        }
        for e in seen.values()
    ]
    return {
        "exit": proc.returncode,
        "wall_s": wall,
        "max_rss_mib": usage.ru_maxrss / _MIB,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "processes": processes,
        "tree_peak_rss_mib": tree_peak_kib / _MIB,  # sum over the tree, sampled every POLL_S
        "timeline": timeline,  # [seconds, [(pid, RSS MiB), ...]]
    }


# --- the configurations ------------------------------------------------------------------------------


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
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.parent / f"{out.name}.log", "w") as log:  # the run's own messages, for a look later
        measured = subprocess.run(
            [sys.executable, __file__, "--measure", "--", *command],
            check=True,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
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
    lines += scaling_markdown(results)
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


def shard_digests(out: Path) -> dict[str, str]:
    """sha256 of each shard file of a run's output folder."""
    import hashlib

    return {
        str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out.rglob("*"))
        if p.suffix in (".arrow", ".parquet") and ".work" not in p.parts
    }


def scaling_markdown(results: dict) -> list[str]:
    """1 against 2 workers (en + near-dedup), pair by pair (a pair: the two runs of one repeat):
    issue 9 asks a speed-up >= 1.8 for <= 10% more CPU, with the same shards."""
    one, two = (results.get(CONFIGS[i][0]) for i in (1, 2))
    if not one or not two:
        return []
    lines = [
        "",
        "Worker scaling (en + near-dedup; each pair: 1 worker, then 2 workers, back to back):",
        "",
        "| pair | 1 worker s | 2 workers s | speed-up | 1 worker CPU s | 2 workers CPU s | CPU change "
        "| same shards |",
        "|---|---|---|---|---|---|---|---|",
    ]
    speedups, changes = [], []
    for i, (a, b) in enumerate(zip(one.get("repeats", [one]), two.get("repeats", [two]))):
        speedups.append(a["wall_s"] / b["wall_s"])
        changes.append(b["cpu_s"] / a["cpu_s"] - 1)
        digests = a.get("shards_sha256"), b.get("shards_sha256")
        same = "?" if None in digests else "yes" if digests[0] and digests[0] == digests[1] else "NO"
        lines.append(
            f"| {i + 1} | {a['wall_s']:.1f} | {b['wall_s']:.1f} | {speedups[-1]:.2f}x | {a['cpu_s']:.1f} "
            f"| {b['cpu_s']:.1f} | {changes[-1]:+.0%} | {same} |"
        )
    lines.append(
        f"| median | | | {statistics.median(speedups):.2f}x | | | {statistics.median(changes):+.0%} | |"
    )
    return lines


# --- memory against corpus size ----------------------------------------------------------------------


def scaled_corpus(input_dir: Path, target: Path, copies: int) -> Path:
    """`input_dir` scaled `copies` times into `target` (reused when it holds the expected files)."""
    wet = [p for p in input_dir.iterdir() if p.name.endswith((".wet", ".wet.gz"))]
    if (
        target.is_dir()
        and len([p for p in target.iterdir() if p.name.endswith((".wet", ".wet.gz"))]) == len(wet) * copies
    ):
        return target
    subprocess.run(
        [
            sys.executable,
            str(SCALER),
            "--input",
            str(input_dir),
            "--output",
            str(target),
            "--copies",
            str(copies),
        ],
        check=True,
    )
    return target


def _peaks(result: dict) -> tuple[dict, list[dict], float]:
    """(the driver, the workers largest first, largest peak MiB of any other process); a process is
    {"peak_rss_mib", "anon_mib", ...} as `measure` gives it."""
    by_peak = sorted(result["processes"], key=lambda p: -p["peak_rss_mib"])
    driver = next((p for p in by_peak if p["role"] == "driver"), {"peak_rss_mib": 0.0})
    workers = [p for p in by_peak if p["role"] == "worker"]
    others = [p for p in by_peak if p["role"] not in ("driver", "worker")]
    return driver, workers, max((p["peak_rss_mib"] for p in others), default=0.0)


def _ratio(a: float, b: float) -> str:
    return f"{b / a:.2f}" if a else ""


def memory_markdown(results: dict, scale: int) -> str:
    lines = [
        "| corpus | workers | pages in | pages out | wall s | CPU s | driver peak RSS MiB "
        "| peak RSS per worker MiB | other processes MiB | whole tree MiB (sampled sum) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results.values():
        driver, workers, other = _peaks(r)
        per_worker = " / ".join(f"{w['peak_rss_mib']:.0f}" for w in workers) or "(in driver)"
        lines.append(
            f"| {r['scale']}x | {r['workers']} | {r['pages_in']} | {r['pages_out']} | {r['wall_s']:.0f} | "
            f"{r['cpu_s']:.0f} | {driver['peak_rss_mib']:.0f} | {per_worker} | "
            f"{other:.0f} | {r['tree_peak_rss_mib']:.0f} |"
        )
    lines += [
        "",
        f"| workers | process | 1x peak RSS MiB | {scale}x peak RSS MiB | {scale}x / 1x "
        f"| 1x anon MiB | {scale}x anon MiB | {scale}x / 1x anon |",
        "|---|---|---|---|---|---|---|---|",
    ]
    by_workers: dict[int, dict[int, dict]] = {}
    for r in results.values():
        by_workers.setdefault(r["workers"], {})[r["scale"]] = r
    for workers, pair in sorted(by_workers.items()):
        if 1 not in pair or scale not in pair:
            continue
        (d1, w1, _), (dk, wk, _) = _peaks(pair[1]), _peaks(pair[scale])
        rows = [("driver (the runner; all the work with 1 worker)", d1, dk)]
        # Workers are alike: the i-th largest at 1x against the i-th largest at Kx.
        rows += [(f"worker {i + 1} (by size)", a, b) for i, (a, b) in enumerate(zip(w1, wk))]
        for name, a, b in rows:
            pa, pb, aa, ab = a["peak_rss_mib"], b["peak_rss_mib"], a.get("anon_mib", 0), b.get("anon_mib", 0)
            lines.append(
                f"| {workers} | {name} | {pa:.0f} | {pb:.0f} | {_ratio(pa, pb)} "
                f"| {aa:.0f} | {ab:.0f} | {_ratio(aa, ab)} |"
            )
        t1, tk = pair[1]["tree_peak_rss_mib"], pair[scale]["tree_peak_rss_mib"]
        lines.append(
            f"| {workers} | whole tree (sampled sum) | {t1:.0f} | {tk:.0f} | {_ratio(t1, tk)} | | | |"
        )
    return "\n".join(lines)


def run_memory(args, base: Path) -> None:
    big = scaled_corpus(args.input, args.scaled or base / f"corpus-{args.scale}x", args.scale)
    results = {}
    for workers in args.memory_workers:
        for scale, corpus in ((1, args.input), (args.scale, big)):
            name = f"{scale}x, {workers} workers"
            print(f"running: {name} ...", flush=True)
            out = base / f"mem-{scale}x-w{workers}"
            r = results[name] = run_config(corpus, out, MEMORY_FLAGS, workers)
            r["scale"] = scale
            driver, processes, _ = _peaks(r)
            peaks = [round(w["peak_rss_mib"]) for w in processes]
            print(
                f"  {r['wall_s']:.0f} s, {r['pages_out']} pages out, "
                f"driver {driver['peak_rss_mib']:.0f} MiB, workers {peaks} MiB",
                flush=True,
            )
            (base / "memory.json").write_text(json.dumps(results, indent=1))
    print(memory_markdown(results, args.scale))
    print(
        f"\nresults: {base / 'memory.json'}  (cores: {os.cpu_count()}, "
        f"load avg {os.getloadavg()[0]:.1f} at the end)"
    )


def main() -> None:
    if sys.argv[1:2] == ["--measure"]:
        command = sys.argv[3:] if sys.argv[2:3] == ["--"] else sys.argv[2:]
        print(json.dumps(measure(command)))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", type=Path, default=DEFAULT_INPUT)
    parser.add_argument("--out", type=Path, default=None, help="keep outputs and results.json here")
    parser.add_argument("--only", type=int, nargs="*", help="indices of CONFIGS to run")
    parser.add_argument("--report", type=Path, help="only print the tables of a results.json / memory.json")
    parser.add_argument("--memory", action="store_true", help="peak RSS per process on 1x and --scale x")
    parser.add_argument("--scale", type=int, default=10, help="copies of --input for --memory")
    parser.add_argument("--scaled", type=Path, help="where the scaled corpus is (made if missing)")
    parser.add_argument("--memory-workers", type=int, nargs="+", default=[2, 1])
    parser.add_argument("--repeat", type=int, default=1, help="runs of each configuration, in turn")
    args = parser.parse_args()
    if args.report:
        results = json.loads(args.report.read_text())
        memory = all("scale" in r for r in results.values())
        print(memory_markdown(results, args.scale) if memory else markdown(results))
        return
    base = args.out or Path(tempfile.mkdtemp(prefix="c4clean-bench-"))
    base.mkdir(parents=True, exist_ok=True)
    if args.memory:
        run_memory(args, base)
        return
    results: dict = {}
    # Repeats go round the configurations, so that 1 and 2 workers run back to back each time: the
    # machine's speed drifts over minutes, and a pair run close together compares like with like.
    for repeat in range(args.repeat):
        for index, (name, flags, workers) in enumerate(CONFIGS):
            if args.only is not None and index not in args.only:
                continue
            print(f"running: {name} ({repeat + 1}/{args.repeat}) ...", flush=True)
            out = base / (f"run{index}" if args.repeat == 1 else f"run{index}-{repeat}")
            r = run_config(args.input, out, flags, workers)
            r["shards_sha256"] = shard_digests(out)
            first = results.setdefault(name, r)
            first.setdefault("repeats", []).append(
                {"wall_s": r["wall_s"], "cpu_s": r["cpu_s"], "shards_sha256": r["shards_sha256"]}
            )
            print(
                f"  {r['wall_s']:.1f} s, {r['pages_per_s']:.0f} pages/s, peak {r['max_rss_mib']:.0f} MiB",
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
