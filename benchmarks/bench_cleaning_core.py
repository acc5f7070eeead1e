"""The C4 cleaning core, c4clean against the TFDS c4 v3.1.0 reference functions, side by side.

Both sides run in this one process, single-threaded, on the same pages, stage by stage:

  read        WET .gz -> pages   (TFDS split_wet_file | c4clean.cleaning.wet.iter_records)
  length      normalize_url + is_valid_length
  url-dedup   select_newest_page per normalized URL
  clean       clean_page (line rules + Punkt sentence count)
  line-dedup  remove_duplicate_text as plain Python: emit (line hash, url), keep the url with the
              smallest md5 per line, remove the other lines (min 3 sentences)
  english     detect_english (langdetect, seed 0)
  badwords    bad-words filter (en list, fraction 1.0)

After every stage the two outputs are asserted identical (same pages, same text, same verdicts),
so each stage of both sides gets the same input. Times are CPU seconds of this process
(`time.process_time`), so "pages/s" is per core even on a busy machine; wall time is shown too.
The core (clean .. badwords, i.e. without reading) is summarised as pages/s and the speed-up.
Then the langdetect analysis: where langdetect's time goes and how much of it c4clean avoids
without changing a single output.

    python benchmarks/bench_cleaning_core.py [--limit N] [--data DIR]
"""

from __future__ import annotations

import argparse
import collections
import gc
import time
from pathlib import Path

from c4clean.cleaning import langid, recipe
from c4clean.cleaning.dedup_lines import keep_keys_by_url, remove_lines
from c4clean.cleaning.tfds_reference import counters, load_c4_utils
from c4clean.cleaning.url import select_newest_page
from c4clean.cleaning.wet import ReadIssue, iter_records
from c4clean.pipelines.options import VARIANTS

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "wet" / "bench"
PACKAGED_BADWORDS = REPO / "c4clean" / "cleaning" / "data" / "badwords"


class Clock:
    def __init__(self):
        self.cpu = collections.defaultdict(float)
        self.wall = collections.defaultdict(float)

    def run(self, key, fn, *args):
        gc.collect()
        w, c = time.perf_counter(), time.process_time()
        out = fn(*args)
        self.cpu[key] += time.process_time() - c
        self.wall[key] += time.perf_counter() - w
        return out


FIELDS = ("url", "text", "timestamp", "content_type", "content_length")


def same(ours: list, theirs: list, what: str, fields=FIELDS) -> None:
    """Assert page lists identical, page by page, on `fields`."""
    a = [tuple(getattr(p, f) for f in fields) for p in ours]
    b = [tuple(getattr(p, f) for f in fields) for p in theirs]
    if a != b:
        diff = next(i for i, (x, y) in enumerate(zip(a, b)) if x != y) if len(a) == len(b) else None
        raise AssertionError(f"{what}: outputs differ ({len(a)} vs {len(b)} pages, first diff {diff})")


# --- the reference side ---------------------------------------------------------------------------


def ref_read(c4u, files, limit):
    pages = []
    for path in files:
        for p in c4u.split_wet_file(str(path), counter_inc_fn=lambda *a: None):
            pages.append(p)
            if len(pages) >= limit:
                return pages
    return pages


def ref_length(c4u, pages):
    out = []
    for p in pages:
        p.normalized_url = c4u.normalize_url(p.url)  # split_wet_file already did; TFDS does it again
        if c4u.is_valid_length(p):
            out.append(p)
    return out


def ref_url_dedup(c4u, pages):
    groups = collections.defaultdict(list)
    for p in pages:
        groups[p.normalized_url].append(p)
    return [c4u.select_newest_page(g) for g in groups.values()]


def ref_clean(c4u, pages):
    clean = c4u.get_clean_page_fn()
    return [q for p in pages for q in clean(p)]


def ref_line_dedup(c4u, pages):
    best = {}  # line hash -> (md5(url), url): Top.PerKey(1, key=_hash_text, reverse=True)
    for p in pages:
        for line_hash, url in c4u._emit_url_to_lines(p):
            rank = c4u._hash_text(url)
            kept = best.get(line_hash)
            if kept is None or rank < kept[0]:
                best[line_hash] = (rank, url)
    lines_of = collections.defaultdict(list)
    for line_hash, (_, url) in best.items():
        lines_of[url].append(line_hash)
    inc = c4u.get_counter_inc_fn("dedupe-lines")
    out = []
    for p in pages:
        el = (p.url, {"pages": [p], "lines": lines_of.get(p.url, [])})
        out.extend(c4u._remove_lines_from_text(el, counter_inc_fn=inc, min_num_sentences=3))
    return out


def ref_english(c4u, pages):
    return [q for p in pages for q in c4u.detect_english(p)]


def tfds_badwords():
    """The en entry of TFDS's word dict: c4.py reads the 25e679f file, strips lines, makes a set."""
    with open(PACKAGED_BADWORDS / "25e679f" / "en") as f:
        return {"en": {line.strip() for line in f}}


def ref_badwords(c4u, pages):
    keep = c4u.get_badwords_filter_fn(tfds_badwords(), filter_fraction=1.0)
    return [p for p in pages if keep(p)]


# --- the c4clean side: the per-page steps of the `en` recipe (`cleaning.recipe`) -------------------

EN_STEPS = recipe.page_steps(VARIANTS["en"])


def _kept(step_name: str, pages):
    step = recipe.step_named(EN_STEPS, step_name)
    return [v.page for v in map(step.apply, pages) if v.keep]


def our_read(files, limit):
    pages, issues = [], 0
    for path in files:
        for r in iter_records(path):
            if isinstance(r, ReadIssue):
                issues += 1
                continue
            pages.append(r)
            if len(pages) >= limit:
                return pages
    return pages


def our_length(pages):
    return _kept("length", map(recipe.prepare, pages))


def our_url_dedup(pages):
    groups = collections.defaultdict(list)
    for p in pages:
        groups[p.normalized_url].append(p)
    return [select_newest_page(g) for g in groups.values()]


def our_clean(pages):
    return _kept("clean", pages)


def our_line_dedup(pages):
    keys_of = keep_keys_by_url(pages)
    results = (remove_lines(p, keys_of.get(p.url, ()), 3) for p in pages)
    return [r.page for r in results if r.page is not None]


def our_english(pages):
    # The batched form (what the Beam pipeline calls on batches of pages); `apply` per page gives
    # the same verdicts, its cost is in the langdetect analysis below.
    step = recipe.step_named(EN_STEPS, "english")
    return [v.page for v in step.apply_many(pages) if v.keep]


def our_badwords(pages):
    return _kept("badwords", pages)


# --- langdetect analysis --------------------------------------------------------------------------


def langdetect_breakdown(texts):
    """CPU seconds of langdetect's own steps, and of c4clean's equivalents, on the same texts."""
    from langdetect import detector_factory

    detector_factory.init_factory()
    factory = detector_factory._factory
    ref = collections.Counter()
    ours = collections.Counter()
    cut = 0
    clock = time.process_time
    for text in texts:
        t0 = clock()
        d = factory.create()
        d.seed = 0
        d.append(text)
        t1 = clock()
        d.cleaning_text()
        t2 = clock()
        ngrams = d._extract_ngrams()
        t3 = clock()
        ref["append (URL/mail regexes, 10k cut, char loop)"] += t1 - t0
        ref["cleaning_text (Latin count)"] += t2 - t1
        ref["_extract_ngrams (per char NGram)"] += t3 - t2
        if ngrams:
            d.cleaning_text = lambda: None  # already done
            d._extract_ngrams = lambda g=ngrams: g  # already done
            t4 = clock()
            d._detect_block()
            ref["_detect_block (7-trial random walk)"] += clock() - t4
        cut += len(text) > 10000

        profiles = langid._get_profiles()
        t0 = clock()
        prepared = langid.prepare_text(text)
        t1 = clock()
        rows = langid._ngram_rows(profiles, prepared)
        t2 = clock()
        if rows:
            langid._random_walk(profiles, rows)
        t3 = clock()
        ours["prepare_text (regexes, numpy counts)"] += t1 - t0
        ours["n-grams (per distinct word, cached)"] += t2 - t1
        ours["random walk (numpy rows, inline draws)"] += t3 - t2
    texts_with_rows = [r for r in (langid._ngram_rows(profiles, langid.prepare_text(t)) for t in texts) if r]
    t0 = clock()
    langid._random_walks(profiles, texts_with_rows)
    batched_walk = clock() - t0
    return ref, ours, cut, batched_walk


# --- main -----------------------------------------------------------------------------------------

CORE = ("clean", "line-dedup", "english", "badwords")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--limit", type=int, default=20000, help="pages to read (default: all 20,000)")
    ap.add_argument("--no-langdetect-analysis", action="store_true")
    args = ap.parse_args(argv)

    files = sorted(args.data.glob("*.wet.gz"))
    if not files:
        raise SystemExit(f"no .wet.gz files in {args.data}")
    c4u = load_c4_utils()
    langid.detect_langs("warm up: load the profiles once")  # one-time cost, both sides share it
    langid.detect_langs_reference("warm up")
    clock = Clock()
    n_in = {}

    with counters(c4u):  # the reference's Beam counters go to a Counter instead of Beam
        theirs = clock.run(("ref", "read"), ref_read, c4u, files, args.limit)
        ours = clock.run(("c4clean", "read"), our_read, files, args.limit)
        same(ours, theirs, "read")  # the reader sets `language` from the WET header; TFDS does not
        stages = [
            ("length", ref_length, our_length),
            ("url-dedup", ref_url_dedup, our_url_dedup),
            ("clean", ref_clean, our_clean),
            ("line-dedup", ref_line_dedup, our_line_dedup),
            ("english", ref_english, our_english),
            ("badwords", ref_badwords, our_badwords),
        ]
        for name, ref_fn, our_fn in stages:
            n_in[name] = len(ours)
            if name == "english":
                english_texts = [p.text for p in ours]
            theirs = clock.run(("ref", name), ref_fn, c4u, theirs)
            ours = clock.run(("c4clean", name), our_fn, ours)
            # From language id on, the language must agree too.
            after_langid = name in ("english", "badwords")
            same(ours, theirs, name, FIELDS + ("normalized_url",) + (("language",) if after_langid else ()))
            print(f"  {name:<11} in {n_in[name]:>6}  out {len(ours):>6}  identical", flush=True)

    n_read = n_in["length"]
    print(
        f"\n{n_read} pages read from {len(files)} files; {len(ours)} pages out; outputs identical "
        "at every stage.\n"
    )
    print(
        f"{'stage':<11} {'pages in':>8} | {'TFDS cpu s':>10} {'pages/s':>8} | "
        f"{'c4clean cpu s':>13} {'pages/s':>8} | {'speed-up':>8}"
    )
    for name in ("read",) + tuple(s[0] for s in stages):
        n = n_read if name == "read" else n_in[name]
        r, o = clock.cpu[("ref", name)], clock.cpu[("c4clean", name)]
        print(
            f"{name:<11} {n:>8} | {r:>10.2f} {n / r if r else 0:>8.0f} | "
            f"{o:>13.2f} {n / o if o else 0:>8.0f} | {r / o if o else 0:>7.1f}x"
        )
    r = sum(clock.cpu[("ref", s)] for s in CORE)
    o = sum(clock.cpu[("c4clean", s)] for s in CORE)
    rw = sum(clock.wall[("ref", s)] for s in CORE)
    ow = sum(clock.wall[("c4clean", s)] for s in CORE)
    n = n_in["clean"]
    print(f"\ncleaning core (clean + line dedup + english + badwords), {n} pages in:")
    print(f"  TFDS reference  {r:7.2f} cpu s  {n / r:7.0f} pages/s per core   (wall {rw:.2f} s)")
    print(f"  c4clean         {o:7.2f} cpu s  {n / o:7.0f} pages/s per core   (wall {ow:.2f} s)")
    print(f"  speed-up        {r / o:.2f}x")

    if not args.no_langdetect_analysis:
        ref, our, cut, batched_walk = langdetect_breakdown(english_texts)
        total_ref, total_ours = sum(ref.values()), sum(our.values())
        walk = "random walk (numpy rows, inline draws)"
        total_batched = total_ours - our[walk] + batched_walk
        print(
            f"\nlangdetect analysis on the {len(english_texts)} texts detect_english saw "
            f"({cut} longer than 10,000 characters), CPU seconds:"
        )
        for k, v in ref.items():
            print(f"  langdetect  {k:<46} {v:7.2f} s  {100 * v / total_ref:5.1f}%")
        for k, v in our.items():
            print(f"  c4clean     {k:<46} {v:7.2f} s  {100 * v / total_ref:5.1f}% of langdetect")
        print(
            f"  c4clean     {'random walk, batched (512 texts in lock-step)':<46} "
            f"{batched_walk:7.2f} s  {100 * batched_walk / total_ref:5.1f}% of langdetect"
        )
        for label, total in (
            ("per page (detect_english)", total_ours),
            ("batched (english_verdicts)", total_batched),
        ):
            print(
                f"  avoidable without changing any output, {label}: "
                f"{100 * (1 - total / total_ref):.0f}% of langdetect's time "
                f"({total_ref:.2f} s -> {total:.2f} s, {total_ref / total:.1f}x)"
            )


if __name__ == "__main__":
    main()
