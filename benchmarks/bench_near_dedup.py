"""MinHash near-dedup: signature throughput per core, the whole Beam transform, and quality.

    python benchmarks/bench_near_dedup.py [--data DIR] [--limit N] [--workers 1 2]
                                           [--quality SAMPLE_DIR | --no-quality]

1. Per-core pieces on the pages of `--data` (default ../shared/data/wet/bench, 20,000 pages), after
   clean_page, which is where the pipeline runs near-dedup: shingling, signatures
   (`MinHash.bulk`, CRC-32 shingle hashes) and band keys, in CPU seconds of this process.
2. The whole `RemoveNearDuplicates` transform on the Python FnApiRunner with each `--workers`
   count: wall time, pages/s and the transform's counters.
3. With `--quality` (default sample_data/wet): precision and recall against the near-duplicates the
   sample's generator planted (its manifest.json), for datasketch's default banding and a
   recall-weighted one, at the pipeline's position (after clean_page) and on raw page text.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from c4clean.cleaning import minhash, reasons, rules, wet  # noqa: E402
from c4clean.cleaning.page import Page  # noqa: E402


def read_pages(data: Path, limit: int | None, clean: bool = True) -> list[Page]:
    out = []
    for path in sorted(data.glob("*.wet.gz")):
        for record in wet.iter_records(path):
            if isinstance(record, Page):
                page = rules.clean_page(record).page if clean else record
                if page is not None:
                    out.append(page)
                if limit and len(out) >= limit:
                    return out
    return out


def per_core(pages: list[Page]) -> None:
    texts = [p.text for p in pages]
    hasher = minhash.MinHasher()
    b, r = minhash.optimal_bands()
    t0 = time.process_time()
    shingle_lists = [minhash.shingles(t) for t in texts]
    t1 = time.process_time()
    sigs = hasher.signatures(texts)  # shingles again + MinHash.bulk
    t2 = time.process_time()
    for s in sigs:
        if s is not None:
            minhash.band_keys(s, b, r)
    t3 = time.process_time()
    n = len(texts)
    mb = sum(len(t.encode()) for t in texts) / 1e6
    print(f"pages: {n}, {mb:.1f} MB of text, {sum(map(len, shingle_lists)) / n:.0f} shingles/page")
    print(f"  shingling            {n / (t1 - t0):8.0f} pages/s per core")
    print(f"  signature (incl. shingling) {n / (t2 - t1):8.0f} pages/s per core ({mb / (t2 - t1):.2f} MB/s)")
    print(f"  band keys ({b}x{r})     {n / (t3 - t2):8.0f} pages/s per core")


def whole_transform(pages: list[Page], workers: int, baseline: bool = False) -> None:
    import apache_beam as beam
    from apache_beam.metrics.metric import MetricsFilter
    from apache_beam.options.pipeline_options import PipelineOptions

    from c4clean.pipelines.near_dedup import RemoveNearDuplicates

    mode = "multi_processing" if workers > 1 else "in_memory"
    options = PipelineOptions(
        ["--runner=FnApiRunner", f"--direct_num_workers={workers}", f"--direct_running_mode={mode}"]
    )
    with tempfile.TemporaryDirectory() as tmp:
        start, cpu = time.perf_counter(), time.process_time()
        with beam.Pipeline(options=options) as p:
            pcoll = p | beam.Create(pages, reshuffle=False)
            if not baseline:
                pcoll |= RemoveNearDuplicates()
            _ = pcoll | beam.Map(lambda page: page.url) | beam.io.WriteToText(f"{tmp}/kept")
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    counters = {
        r.key.metric.name: r.committed
        for r in p.result.metrics().query(MetricsFilter().with_namespace(reasons.NS_NEAR_DEDUP))["counters"]
    }
    what = "baseline (Create -> Write, no near-dedup)" if baseline else f"workers={workers}"
    # CPU time of this process only counts the work when the runner runs in it (1 worker).
    cpu_note = f", {cpu:.1f} s CPU of this process" if workers == 1 else ""
    print(
        f"  {what}: {wall:.1f} s wall{cpu_note}, {len(pages) / wall:.0f} pages/s; "
        f"{json.dumps(counters, sort_keys=True)}"
    )


def quality(sample: Path) -> None:
    manifest = json.loads((sample / "manifest.json").read_text())
    planted = {frozenset((x["url"], x["of"])) for x in manifest["near_dups"]}
    # Every duplicate relation the generator planted counts as a true positive for precision.
    truth = set(planted)
    truth |= {frozenset((x["url"], x["of"])) for k in ("exact_dups", "url_near_misses") for x in manifest[k]}
    for group in manifest["url_dup_groups"].values():
        truth |= {frozenset(pair) for pair in itertools.combinations([m["url"] for m in group], 2)}
    hasher = minhash.MinHasher()
    for clean in (True, False):
        text = {}
        for p in read_pages(sample, None, clean=clean):
            text.setdefault(p.url, p.text)
        sigs = {u: hasher.signature(t) for u, t in text.items()}
        present = {p for p in planted if all(u in text for u in p)}
        for weight in (0.5, 0.9):
            b, r = minhash.optimal_bands(0.8, 128, weight)
            buckets: dict[bytes, list[str]] = {}
            for u, s in sigs.items():
                if s is not None:
                    for k in minhash.band_keys(s, b, r):
                        buckets.setdefault(k, []).append(u)
            candidates = {
                frozenset(pair)
                for members in buckets.values()
                for pair in itertools.combinations(sorted(set(members)), 2)
            }
            found = {
                pair for pair in candidates if minhash.estimated_jaccard(*(sigs[u] for u in pair)) >= 0.8
            }
            precision = len(found & truth) / len(found) if found else float("nan")
            print(
                f"  {'after clean_page' if clean else 'raw page text'}, bands {b}x{r} (fn weight {weight}): "
                f"{len(candidates)} candidate pairs, {len(found)} verified, precision {precision:.2f} "
                f"(vs all planted duplicates), "
                f"recall of planted near-dups {len(found & present)}/{len(present)}"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "wet" / "bench")
    ap.add_argument("--limit", type=int, default=None, help="at most this many pages")
    ap.add_argument("--workers", type=int, nargs="*", default=[1, 2])
    ap.add_argument("--quality", type=Path, default=REPO / "sample_data" / "wet")
    ap.add_argument("--no-quality", dest="quality", action="store_const", const=None)
    args = ap.parse_args()
    pages = read_pages(args.data, args.limit)
    print("== per core (after clean_page)")
    per_core(pages)
    print("== whole transform (RemoveNearDuplicates, FnApiRunner, defaults)")
    whole_transform(pages, 1, baseline=True)
    for w in args.workers:
        whole_transform(pages, w)
    if args.quality:
        print(f"== quality on {args.quality} (threshold 0.8, 128 permutations)")
        quality(args.quality)


if __name__ == "__main__":
    main()
