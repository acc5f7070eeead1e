"""MinHash near-dedup: quality against exact all-pairs ground truth, and cost per page.

    python benchmarks/bench_near_dedup.py [--data DIR] [--limit N] [--workers 1 2] [--repeat 3]
                                           [--normalize nfkc|none] [--truth-shingles nfkc|none]

The pages are those the pipeline hands to near-dedup: the WET pages of `--data` (default
../shared/data/wet/bench) after the length filter, newest page per normalized URL and clean_page.

1. Ground truth: every pair with exact 5-gram Jaccard >= 0.8, found by prefix filtering (All-Pairs:
   shingles ordered rarest first, a pair with Jaccard >= t must share one of the first
   |x| - ceil(t|x|) + 1 shingles of each page; candidates are then verified exactly), on the
   shingling of `--truth-shingles` (default: none, the raw lower-cased words of the issue's figures).
2. The pure functions per page (normalisation + shingles + signature + band keys), CPU seconds.
3. Near-dedup as `c4clean run` does it, on the Python FnApiRunner: the pages staged in 10 work
   files, signed in the per-file pass, `NearDuplicates` on their band keys with the candidates'
   texts read back from the files. CPU seconds of this process (1 worker, the runner runs here)
   minus a baseline that reads the same files in the same pass without near-dedup, as a multiple
   of step 2; wall time for more workers. Steps 2 and 3 run `--repeat` times back to back and the
   medians are reported (on a shared machine the load changes from minute to minute). Exact
   verification's share comes from Beam's per-step times of the steps that exist for it (reading
   the candidates' texts, sending them to their component, shingling and comparing them: an upper
   bound, as the last step also clusters). Its audit rows give the clusters: a kept page and the
   pages it removed.
4. Quality: recall = share of true pairs whose two pages end in one cluster (and share with at most
   one page kept); precision = share of removed pages that truly have a partner at >= 0.8 (and
   whose kept page is one); the largest cluster and the lowest Jaccard removed-to-kept.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from c4clean.cleaning import minhash, rules, url, wet  # noqa: E402
from c4clean.cleaning.page import Page  # noqa: E402
from c4clean.pipelines.near_dedup_audit import read_rows, summarize  # noqa: E402

THRESHOLD = 0.8


def read_pages(data: Path, limit: int | None = None) -> list[Page]:
    """Pages in the pipeline's order up to near-dedup: length filter, newest per URL, clean_page."""
    newest: dict[str, Page] = {}
    for path in sorted(data.glob("*.wet.gz")):
        for record in wet.iter_records(path):
            if not isinstance(record, Page) or not rules.is_valid_length(record).keep:
                continue
            key = url.normalize_url(record.url)
            page = record.replace(normalized_url=key)
            if key in newest:
                page = url.select_newest_page([newest[key], page])
            newest[key] = page
    out = []
    for page in newest.values():
        cleaned = rules.clean_page(page).page
        if cleaned is not None:
            out.append(cleaned)
        if limit and len(out) >= limit:
            break
    return out


def true_pairs(texts: list[str], normalization: str, t: float = THRESHOLD) -> dict[tuple[int, int], float]:
    """{(i, j): Jaccard} of every pair with exact 5-gram Jaccard >= t (prefix filtering)."""
    sets = [set(minhash.shingles(x, normalization=normalization)) for x in texts]
    freq = collections.Counter(s for shingle_set in sets for s in shingle_set)
    rank = {s: (n, s) for s, n in freq.items()}
    ordered = [sorted(s, key=rank.__getitem__) for s in sets]
    index: dict[bytes, list[int]] = collections.defaultdict(list)
    found = {}
    for x in sorted(range(len(texts)), key=lambda i: (len(sets[i]), i)):
        size = len(sets[x])
        if not size:
            continue
        prefix = ordered[x][: size - math.ceil(t * size) + 1]
        candidates = {y for s in prefix for y in index[s] if len(sets[y]) >= t * size}
        for y in candidates:
            j = minhash.exact_jaccard(sets[x], sets[y])
            if j >= t:
                found[(min(x, y), max(x, y))] = j
        for s in prefix:
            index[s].append(x)
    return found


def pure_cost(texts: list[str], normalization: str) -> float:
    """CPU seconds of the per-page functions near-dedup runs on every page."""
    hasher = minhash.MinHasher(normalization=normalization)
    b, r = minhash.recall_bands()
    minhash.normalize("warm up the punctuation table")
    start = time.process_time()
    for text in texts:
        sig = hasher.signature(text)
        if sig is not None:
            minhash.band_keys(sig, b, r)
    return time.process_time() - start


def _stage_pages(pages: list[Page], directory: Path, files: int) -> list[tuple[int, str, int]]:
    """The pages as per-file results (`perfile` work files): (file position, path, pages)."""
    from c4clean import atomic
    from c4clean.pipelines import perfile

    staged = []
    for i in range(files):
        path = str(directory / f"{i}.arrow")
        part = pages[i::files]
        atomic.write_bytes_fs(path, perfile.encode([perfile.Staged(p, None, {}) for p in part]))
        staged.append((i, path, len(part)))
    return staged


def run_pipeline(pages: list[Page], workers: int, normalization: str, baseline: bool = False):
    """(CPU seconds of this process, wall seconds, audit rows) of near-dedup as `c4clean run` does
    it: each file's pages read and signed in a per-file pass, then `NearDuplicates` on the band
    keys, with the candidates' texts read back from their files. The baseline reads the same
    files in the same pass and emits nothing."""
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from c4clean.pipelines import passes, pool, runner
    from c4clean.pipelines.near_dedup import NearDuplicates

    class ReadOnly(passes.FilePass):
        def _band_entries(self, file_position, pages):
            return iter(())

    b, r = minhash.recall_bands()
    work_files = 10
    plan = passes.PassPlan(
        emit=passes.BANDS,
        minhash=(minhash.DEFAULT_NUM_PERM, minhash.DEFAULT_SEED, minhash.DEFAULT_NGRAM, normalization, b, r),
        key_shards=passes.KEY_SHARDS_PER_FILE * work_files,  # as `c4clean run` shards the band keys
    )
    options = PipelineOptions(runner.beam_flags("direct"))
    with tempfile.TemporaryDirectory() as tmp:
        staged = _stage_pages(pages, Path(tmp), work_files)
        # As `c4clean run`: keys, messages and candidate texts in work files, references shuffled.
        keys = f"{tmp}/keys"
        plan = dataclasses.replace(plan, keys_dir=keys)
        audit = Path(tmp) / "near_duplicates.jsonl"
        start, cpu = time.perf_counter(), time.process_time()
        p = beam.Pipeline(options=options)
        files = p | "Files" >> beam.Create([(i, path) for i, path, _ in staged])
        winners = p | "Winners" >> beam.Create([(i, passes.pack_ordinals(range(n))) for i, _, n in staged])
        bands = (
            {"path": files, "winner": winners}
            | beam.CoGroupByKey()
            | beam.ParDo((ReadOnly if baseline else passes.FilePass)(plan)).with_outputs(
                passes.BANDS, main="none"
            )
        )[passes.BANDS]
        if not baseline:
            removed = bands | NearDuplicates(
                passes.TextsOfPages(files, keys),
                normalization=normalization,
                audit_path=str(audit),
                node_shards=work_files,
                spill_dir=keys,
            )
            _ = removed | beam.Map(passes.page_ref) | beam.io.WriteToText(f"{tmp}/removed")
        # More workers: the local pool of `c4clean run --workers N`, under the in-process runner.
        with (
            pool.local_pool(workers)
            if runner.uses_local_pool("direct", workers)
            else contextlib.nullcontext()
        ):
            result = p.run()
            result.wait_until_finish()
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        rows = [] if baseline else read_rows(audit.read_bytes())
    return cpu, wall, rows, _verification_share(result)


# The steps that exist for exact verification: reading the candidates' texts (spilling them beside the keys)
# and sending each (a reference) to its component, batching the components, and the step that reads the texts
# back, shingles them and compares their sets (`KeepOrRemove`, which also clusters: so the share is an upper
# bound).
VERIFICATION_STEPS = ("CandidateTexts", "ToRoot", "GroupComponents", "Batches", "KeepOrRemove")


def _verification_share(result) -> tuple[float, float]:
    """(seconds in the verification steps, seconds in all of near-dedup's steps), from Beam's
    per-transform execution times (what its state sampler attributes to each step)."""
    from apache_beam.metrics import monitoring_infos

    verification = total = 0.0
    for info in result.monitoring_infos():
        name = info.labels.get("PTRANSFORM", "")
        if info.urn != monitoring_infos.TOTAL_MSECS_URN or "NearDuplicates" not in name:
            continue
        seconds = monitoring_infos.extract_counter_value(info) / 1000
        total += seconds
        if any(f"/{step}" in name for step in VERIFICATION_STEPS):
            verification += seconds
    return verification, total


def quality(pages: list[Page], truth: dict, rows: list[dict]) -> dict:
    index = {p.url: i for i, p in enumerate(pages)}
    cluster = {index[row["url"]]: index[row["kept_url"]] for row in rows}
    removed = set(cluster)
    partners = collections.defaultdict(set)
    for a, b in truth:
        partners[a].add(b)
        partners[b].add(a)
    in_one = sum(cluster.get(a, a) == cluster.get(b, b) for a, b in truth)
    deduped = sum(a in removed or b in removed for a, b in truth)
    return {
        "true_pairs": len(truth),
        "recall_one_cluster": in_one / len(truth) if truth else float("nan"),
        "recall_at_most_one_kept": deduped / len(truth) if truth else float("nan"),
        "removed": len(removed),
        "precision_has_partner": sum(bool(partners[r]) for r in removed) / len(removed) if removed else 1.0,
        "precision_kept_is_partner": sum(cluster[r] in partners[r] for r in removed) / len(removed)
        if removed
        else 1.0,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "wet" / "bench")
    ap.add_argument("--limit", type=int, default=None, help="at most this many pages")
    ap.add_argument("--workers", type=int, nargs="*", default=[1])
    ap.add_argument("--repeat", type=int, default=3, help="cost measurements (medians reported)")
    ap.add_argument("--normalize", choices=minhash.NORMALIZE_MODES, default=minhash.DEFAULT_NORMALIZE)
    ap.add_argument("--truth-shingles", choices=minhash.NORMALIZE_MODES, default=minhash.NORMALIZE_NONE)
    args = ap.parse_args()

    pages = read_pages(args.data, args.limit)
    texts = [p.text for p in pages]
    b, r = minhash.recall_bands()
    print(f"pages: {len(pages)} ({sum(len(t.encode()) for t in texts) / 1e6:.1f} MB of text)")
    curve = ", ".join(
        f"{s}: {float(minhash.candidate_probability(s, b, r)):.4f}" for s in (0.5, 0.7, 0.8, 0.85, 0.9)
    )
    print(f"bands {b} x {r} (threshold {THRESHOLD}, 128 permutations); S-curve {curve}")

    start = time.process_time()
    truth = true_pairs(texts, args.truth_shingles)
    print(
        f"== ground truth ({args.truth_shingles} shingles): {len(truth)} pairs at J >= {THRESHOLD}, "
        f"all pairs by prefix filtering in {time.process_time() - start:.1f} CPU s"
    )

    # The machine may be shared: each repetition measures the pure functions, the baseline and
    # near-dedup back to back, and the medians are reported.
    ratios, shares, rows = [], [], None
    for rep in range(args.repeat):
        pure = pure_cost(texts, args.normalize)
        base_cpu, _, _, _ = run_pipeline(pages, 1, args.normalize, baseline=True)
        cpu, wall, rows_rep, (verification, steps) = run_pipeline(pages, 1, args.normalize)
        if rows is not None and rows_rep != rows:
            raise SystemExit("the audit differs between repetitions")
        rows = rows_rep
        beam_cpu = cpu - base_cpu
        ratios.append(beam_cpu / pure)
        shares.append(verification / (beam_cpu - verification))
        print(
            f"== run {rep + 1}: pure functions ({args.normalize}) {pure:.2f} CPU s "
            f"({len(texts) / pure:.0f} pages per CPU-s); in Beam, 1 worker: {cpu:.1f} CPU s, baseline "
            f"(the same per-file pass, no near-dedup) {base_cpu:.1f}: near-dedup {beam_cpu:.1f} CPU s "
            f"({len(texts) / beam_cpu:.0f} pages per CPU-s), {beam_cpu / pure:.2f}x the pure functions; "
            f"{wall:.1f} s wall"
        )
        print(
            f"   exact verification (steps {', '.join(VERIFICATION_STEPS)}): {verification:.1f} s of the "
            f"{steps:.1f} s Beam times in near-dedup's graph; it adds {shares[-1]:.0%} to near-dedup "
            f"without it"
        )
    print(
        f"== median of {args.repeat}: near-dedup in Beam {statistics.median(ratios):.2f}x the pure "
        f"functions (runs {', '.join(f'{r:.2f}' for r in ratios)}); exact verification adds "
        f"{statistics.median(shares):.0%}"
    )
    for workers in args.workers:
        if workers > 1:
            _, wall_n, rows_n, _ = run_pipeline(pages, workers, args.normalize)
            print(f"   {workers} workers: {wall_n:.1f} s wall, audit identical to 1 worker: {rows_n == rows}")

    q = quality(pages, truth, rows)
    s = summarize(rows)
    print(
        f"== quality vs {args.truth_shingles}-shingle truth: "
        f"recall (pair in one cluster) {q['recall_one_cluster']:.3f}, "
        f"(at most one page of the pair kept) {q['recall_at_most_one_kept']:.3f}; "
        f"removed {q['removed']}, of which with a true partner {q['precision_has_partner']:.3f}, "
        f"kept page a true partner {q['precision_kept_is_partner']:.3f}"
    )
    largest = s["largest_cluster"]["pages"] if s["largest_cluster"] else 0
    print(
        f"   clusters {s['clusters']}, largest {largest} pages, lowest Jaccard removed-to-kept "
        f"{s['min_jaccard']}; sizes {s['cluster_sizes']}; Jaccard {s['jaccard']}"
    )


if __name__ == "__main__":
    main()
