import hashlib
import json
import random
import re
import unicodedata
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions

from c4clean.cleaning import minhash, reasons
from c4clean.cleaning.page import Page
from c4clean.pipelines.near_dedup import RemoveNearDuplicates
from c4clean.pipelines.near_dedup_audit import audit_lines


def run_near_dedup(pages, tmp_path: Path, workers: int = 1, **kwargs):
    """Runs the transform on the offline Python runner; returns (kept urls sorted, counters,
    audit file bytes)."""
    mode = "multi_processing" if workers > 1 else "in_memory"
    options = PipelineOptions(
        ["--runner=FnApiRunner", f"--direct_num_workers={workers}", f"--direct_running_mode={mode}"]
    )
    tag = f"{workers}-{random.random()}"
    prefix = tmp_path / f"kept-{tag}"
    audit = tmp_path / f"audit-{tag}.jsonl"
    with beam.Pipeline(options=options) as p:
        _ = (
            p
            | beam.Create(list(pages), reshuffle=False)
            | RemoveNearDuplicates(audit_path=str(audit), **kwargs)
            | beam.Map(lambda page: page.url)
            | beam.io.WriteToText(str(prefix))
        )
    result = p.result
    urls = sorted(line for f in tmp_path.glob(prefix.name + "*") for line in f.read_text().splitlines())
    counters = {
        r.key.metric.name: r.committed
        for r in result.metrics().query(MetricsFilter().with_namespace(reasons.NS_NEAR_DEDUP))["counters"]
    }
    return urls, counters, audit.read_bytes()


def rows_of(audit: bytes) -> list[dict]:
    return [json.loads(line) for line in audit.decode().splitlines()]


def random_words(rng: random.Random, n: int) -> list[str]:
    # A large vocabulary of letters only (digit runs are normalised away): two unrelated documents
    # share (almost) no 5-gram.
    return ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(6)) for _ in range(n)]


def edit_words(words: list[str], positions, rng: random.Random) -> list[str]:
    out = list(words)
    for i in positions:
        out[i] = "edit" + "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(6))
    return out


def true_jaccard(a: str, b: str, normalization: str = minhash.DEFAULT_NORMALIZE) -> float:
    sa = set(minhash.shingles(a, normalization=normalization))
    sb = set(minhash.shingles(b, normalization=normalization))
    return len(sa & sb) / len(sa | sb)


def md5(url: str) -> str:
    return hashlib.md5(url.encode()).hexdigest()


def reference(pages, threshold: float = 0.8, normalization: str = minhash.DEFAULT_NORMALIZE):
    """Independent statement of the rule, all pairs by brute force: components of the pairs with
    exact Jaccard >= threshold; in each, the page with the most such partners left (ties: smallest
    md5(url)) is kept and removes them; the others repeat. Returns (kept urls, {url: kept_url})."""
    n = len(pages)
    sim = {
        (i, j): true_jaccard(pages[i].text, pages[j].text, normalization)
        for i in range(n)
        for j in range(n)
        if i != j and pages[i].text.strip() and pages[j].text.strip()
    }
    parent = list(range(n))

    def find(i):
        while parent[i] != i:
            i = parent[i]
        return i

    for (i, j), s in sim.items():
        if s >= threshold:
            parent[find(i)] = find(j)
    removed = {}
    for root in {find(i) for i in range(n)}:
        left = {i for i in range(n) if find(i) == root}
        while left:
            near = {i: {j for j in left if j != i and sim[(i, j)] >= threshold} for i in left}
            keeper = min(left, key=lambda i: (-len(near[i]), md5(pages[i].url)))
            for i in near[keeper]:
                removed[pages[i].url] = pages[keeper].url
            left -= near[keeper] | {keeper}
    return sorted(p.url for p in pages if p.url not in removed), removed


def check_audit(pages, audit: bytes, threshold: float, removed: dict, **kwargs) -> None:
    """The audit rows are the removed pages, each with its kept page and their exact Jaccard."""
    text = {p.url: p.text for p in pages}
    rows = rows_of(audit)
    assert {r["url"]: r["kept_url"] for r in rows} == removed
    for r in rows:
        assert r["jaccard"] == round(true_jaccard(text[r["url"]], text[r["kept_url"]], **kwargs), 4)
        assert r["jaccard"] >= threshold
    assert audit == audit_lines(rows)  # sorted, canonical


@pytest.fixture(scope="module")
def corpus():
    """20 distinct pages, 5 of them with a planted near-duplicate (2 words of 600 edited: Jaccard
    ~0.97, an LSH candidate with probability > 0.9999 at the defaults)."""
    rng = random.Random(42)
    originals = [random_words(rng, 600) for _ in range(20)]
    pages = [Page(url=f"http://site{i}.example/page", text=" ".join(w)) for i, w in enumerate(originals)]
    for i in range(5):
        copy = edit_words(originals[i], [150, 450], rng)
        dup = Page(url=f"http://copy{i}.example/page", text=" ".join(copy))
        assert true_jaccard(dup.text, pages[i].text) > 0.96
        pages.append(dup)
    return pages


def test_planted_near_duplicates_removed_distinct_kept(corpus, tmp_path):
    kept, counters, audit = run_near_dedup(corpus, tmp_path)
    expected, removed = reference(corpus)
    assert len(removed) == 5
    assert kept == expected
    check_audit(corpus, audit, 0.8, removed)
    assert counters[reasons.NEAR_DUPLICATE] == 5
    assert counters[reasons.PASSED] == 20
    assert counters[reasons.NEAR_DEDUP_CLUSTERS] == 5
    assert counters[reasons.NEAR_DEDUP_VERIFIED_PAIRS] == 5
    assert counters.get(reasons.NEAR_DEDUP_UNCONVERGED, 0) == 0


def test_exact_jaccard_decides_at_the_threshold(tmp_path):
    # Pairs just above and just below 0.8 (exact): the MinHash estimate (sd ~0.035 at 128
    # permutations) could not tell them apart, the exact Jaccard does. Candidate recall 0.9999
    # makes the pair above the threshold a candidate for sure.
    rng = random.Random(5)
    pages = []
    for k, edits in enumerate([20, 23] * 3):
        words = random_words(rng, 1000)
        copy = edit_words(words, range(7, 1000, 1000 // edits)[:edits], rng)
        pages += [
            Page(url=f"http://orig{k}.example/", text=" ".join(words)),
            Page(url=f"http://edit{k}.example/", text=" ".join(copy)),
        ]
        j = true_jaccard(pages[-1].text, pages[-2].text)
        assert (0.80 < j < 0.83) if edits == 20 else (0.77 < j < 0.80), j
    kept, counters, audit = run_near_dedup(pages, tmp_path, min_candidate_recall=0.9999)
    expected, removed = reference(pages)
    assert len(removed) == 3
    assert kept == expected
    check_audit(pages, audit, 0.8, removed)


# Windows of 300 words of one stream, shifted by 75: Jaccard ~0.60 to the next window, ~0.33 to
# the one after. At threshold 0.46, recall bands make each link a candidate with probability
# > 0.999; so these tests exercise clustering, not luck.
WINDOW, SHIFT, WINDOW_THRESHOLD = 300, 75, 0.46
WINDOW_ARGS = dict(threshold=WINDOW_THRESHOLD, num_perm=256, min_candidate_recall=0.999)


def windows(seed: int, count: int) -> list[str]:
    stream = random_words(random.Random(seed), WINDOW + (count - 1) * SHIFT)
    texts = [" ".join(stream[SHIFT * i : SHIFT * i + WINDOW]) for i in range(count)]
    assert min(true_jaccard(x, y) for x, y in zip(texts, texts[1:])) > 0.58
    assert max(true_jaccard(x, y) for x, y in zip(texts, texts[2:])) < 0.34
    return texts


def test_chains_do_not_remove_dissimilar_pages(tmp_path):
    a, b, c = windows(7, 3)  # A~B and B~C are above the threshold, A~C is far below
    loner = " ".join(random_words(random.Random(8), 300))
    pages = [
        Page(url=u, text=t)
        for u, t in [
            ("http://a.example/", a),
            ("http://b.example/", b),
            ("http://c.example/", c),
            ("http://d.example/", loner),
        ]
    ]
    kept, counters, audit = run_near_dedup(pages, tmp_path, **WINDOW_ARGS)
    expected, removed = reference(pages, WINDOW_THRESHOLD)
    assert kept == expected
    check_audit(pages, audit, WINDOW_THRESHOLD, removed)
    # b has two near-duplicates, a and c one each: b is kept and removes both (each ~0.6 to b).
    assert removed == {"http://a.example/": "http://b.example/", "http://c.example/": "http://b.example/"}
    assert counters[reasons.NEAR_DEDUP_CLUSTERS] == 1


def test_long_chain_keeps_a_page_each_stretch(tmp_path):
    # A path of 12 pages, each a near-duplicate of its neighbours (J ~0.95) but the ends far
    # apart, in an order where ids do not follow the chain: needs several hash-to-min rounds to
    # form one component, and then no page is removed unless it is close to the page kept.
    stream = random_words(random.Random(9), 300 + 11 * 10)
    texts = [" ".join(stream[10 * i : 10 * i + 300]) for i in range(12)]
    assert min(true_jaccard(x, y) for x, y in zip(texts, texts[1:])) > 0.9
    assert true_jaccard(texts[0], texts[-1]) < 0.6
    pages = [Page(url=f"http://chain{i}.example/", text=t) for i, t in enumerate(texts)]
    kept, counters, audit = run_near_dedup(pages, tmp_path, threshold=0.8, num_perm=128)
    expected, removed = reference(pages)
    assert kept == expected and len(kept) > 1
    check_audit(pages, audit, 0.8, removed)
    assert counters.get(reasons.NEAR_DEDUP_UNCONVERGED, 0) == 0


def test_unconverged_rounds_are_counted_and_only_under_remove(tmp_path):
    # A path graph: each window is a near-duplicate of its neighbours only.
    texts = windows(11, 10)
    pages = [Page(url=f"http://path{i}.example/", text=t) for i, t in enumerate(texts)]
    kept, counters, audit = run_near_dedup(pages, tmp_path, **WINDOW_ARGS)
    expected, removed = reference(pages, WINDOW_THRESHOLD)
    assert kept == expected
    assert counters.get(reasons.NEAR_DEDUP_UNCONVERGED, 0) == 0
    # Cut short, the rounds have not converged: the counter says so, and every page removed still
    # has a kept page it was compared with.
    kept_short, counters_short, audit_short = run_near_dedup(pages, tmp_path, max_rounds=1, **WINDOW_ARGS)
    assert counters_short[reasons.NEAR_DEDUP_UNCONVERGED] > 0
    rows = rows_of(audit_short)
    assert {r["kept_url"] for r in rows} <= set(kept_short)
    check_audit(pages, audit_short, WINDOW_THRESHOLD, {r["url"]: r["kept_url"] for r in rows})


def test_empty_and_short_pages(tmp_path):
    pages = [
        Page(url="http://empty1/", text=""),
        Page(url="http://empty2/", text="   "),
        Page(url="http://x/", text="the same short text"),
        Page(url="http://y/", text="The same  short TEXT"),
    ]
    kept, counters, audit = run_near_dedup(pages, tmp_path)
    # Empty pages have no shingles and are never near-duplicates of each other.
    expected, removed = reference(pages)
    assert len(removed) == 1 and kept == expected
    check_audit(pages, audit, 0.8, removed)


def test_normalised_shingles_catch_unicode_forms_and_quotes(tmp_path):
    rng = random.Random(12)
    vietnamese = " ".join(
        rng.choice(["Tiếng", "Việt", "được", "người", "những", "trường", "nước", "của", "mười", "hỏi"])
        + rng.choice("abcdefgh")
        for _ in range(300)
    )
    english = " ".join(random_words(rng, 300))
    smart = english.replace("a", "don’t “x” — ", 30)
    straight = english.replace("a", 'don\'t "x" - ', 30)
    pages = [
        Page(url="http://nfc.example/", text=unicodedata.normalize("NFC", vietnamese)),
        Page(url="http://nfd.example/", text=unicodedata.normalize("NFD", vietnamese)),
        Page(url="http://smart.example/", text=smart),
        Page(url="http://straight.example/", text=straight),
    ]
    assert pages[0].text != pages[1].text
    assert true_jaccard(pages[0].text, pages[1].text, minhash.NORMALIZE_NONE) < 0.5
    assert true_jaccard(pages[2].text, pages[3].text, minhash.NORMALIZE_NONE) < 0.8
    kept, _, audit = run_near_dedup(pages, tmp_path)
    assert len(kept) == 2
    assert {r["jaccard"] for r in rows_of(audit)} == {1.0}
    kept_raw, _, audit_raw = run_near_dedup(pages, tmp_path, normalization=minhash.NORMALIZE_NONE)
    assert len(kept_raw) == 4 and audit_raw == b""


def test_result_and_audit_independent_of_input_order_and_workers(corpus, tmp_path):
    shuffled = list(corpus)
    random.Random(3).shuffle(shuffled)
    kept_1, _, audit_1 = run_near_dedup(corpus, tmp_path, workers=1)
    kept_2, counters, audit_2 = run_near_dedup(shuffled, tmp_path, workers=2)
    assert kept_1 == kept_2 == reference(corpus)[0]
    assert audit_1 == audit_2 and audit_1
    assert counters[reasons.NEAR_DUPLICATE] == 5


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(threshold=0.0), "--near-dedup-threshold must be in (0, 1]"),
        (dict(threshold=1.5), "--near-dedup-threshold must be in (0, 1]"),
        (dict(num_perm=8), "--num-perm must be >= 16"),
        (dict(ngram=0), "--ngram must be >= 1"),
        (dict(normalization="nfd"), "--near-dedup-normalize must be one of"),
    ],
)
def test_bad_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        RemoveNearDuplicates(**kwargs)


def ground_truth_duplicate_groups(manifest) -> dict[str, int]:
    """url -> group number, for every duplicate relation the sample's generator planted."""
    parent: dict[str, str] = {}

    def find(u):
        while parent.setdefault(u, u) != u:
            u = parent[u]
        return u

    pairs = [
        (x["url"], x["of"]) for key in ("near_dups", "exact_dups", "url_near_misses") for x in manifest[key]
    ]
    for group in manifest["url_dup_groups"].values():
        pairs += [(group[0]["url"], member["url"]) for member in group[1:]]
    for a, b in pairs:
        parent[find(a)] = find(b)
    roots = sorted({find(u) for u in parent})
    return {u: roots.index(find(u)) for u in parent}


def test_sample_wet_planted_near_duplicates(sample_wet, tmp_path):
    from c4clean.cleaning import rules, wet

    manifest = json.loads((sample_wet / "manifest.json").read_text())
    groups = ground_truth_duplicate_groups(manifest)
    # Near-dedup sees pages after clean_page (boilerplate lines gone), as in the pipeline.
    pages = []
    for path in sorted(sample_wet.glob("*.wet.gz")):
        for record in wet.iter_records(path):
            if isinstance(record, Page):
                cleaned = rules.clean_page(record).page
                if cleaned is not None:
                    pages.append(cleaned)
    text = {p.url: p.text for p in pages}
    # The generator planted its duplicates by editing raw words, so precision against its list is
    # measured on raw shingles; normalised shingles (digits mapped) also find templated pages that
    # differ only in numbers, which it did not plant.
    kept, counters, audit = run_near_dedup(pages, tmp_path, normalization=minhash.NORMALIZE_NONE)
    dropped = {p.url for p in pages} - set(kept)
    assert dropped, "nothing removed"
    # Precision: every removed page has a planted duplicate, the page kept in its place.
    for row in rows_of(audit):
        assert row["url"] in groups and groups[row["url"]] == groups.get(row["kept_url"]), row
        raw = true_jaccard(text[row["url"]], text[row["kept_url"]], minhash.NORMALIZE_NONE)
        assert row["jaccard"] == round(raw, 4) >= 0.8
    assert {row["url"] for row in rows_of(audit)} == dropped
    # Recall where it is expected: planted near-duplicates whose cleaned texts are clearly above
    # the threshold (true 5-gram Jaccard >= 0.9) are all found, with either shingling.
    kept_norm, _, audit_norm = run_near_dedup(pages, tmp_path)
    dropped_norm = {p.url for p in pages} - set(kept_norm)
    for row in rows_of(audit_norm):
        assert row["jaccard"] == round(true_jaccard(text[row["url"]], text[row["kept_url"]]), 4) >= 0.8
    clear = [
        (x["url"], x["of"])
        for x in manifest["near_dups"]
        if x["url"] in text
        and x["of"] in text
        and true_jaccard(text[x["url"]], text[x["of"]], minhash.NORMALIZE_NONE) >= 0.9
    ]
    assert clear
    for a, b in clear:
        assert a in dropped or b in dropped, (a, b)
        assert a in dropped_norm or b in dropped_norm, (a, b)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--near-dedup-threshold", "0"], "--near-dedup-threshold must be in (0, 1], got 0.0"),
        (["--near-dedup-threshold", "1.2"], "--near-dedup-threshold must be in (0, 1], got 1.2"),
        (["--num-perm", "8"], "--num-perm must be >= 16, got 8"),
        (["--ngram", "0"], "--ngram must be >= 1, got 0"),
        (["--near-dedup-normalize", "nfd"], "--near-dedup-normalize must be one of nfkc, none"),
    ],
)
def test_bad_settings_are_one_line_cli_errors(args, message, sample_wet, tmp_path):
    from click.testing import CliRunner

    from c4clean.cli import main

    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["run", "--input", str(sample_wet), "--output", str(out), *args])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output
    assert not out.exists()  # refused before the pipeline starts


def test_audit_summary():
    from c4clean.pipelines.near_dedup_audit import audit_row, read_rows, summarize, summary_text

    rows = [audit_row(f"http://r{i}/", "http://k1/", 0.9 + i / 100) for i in range(4)]
    rows += [audit_row("http://s/", "http://k2/", 0.812345), audit_row("http://t/", "http://k3/", 1.0)]
    assert read_rows(audit_lines(reversed(rows))) == sorted(rows, key=lambda r: r["url"])
    summary = summarize(rows)
    assert summary["removed_pages"] == 6 and summary["clusters"] == 3
    assert summary["largest_cluster"] == {"kept_url": "http://k1/", "pages": 5}
    assert summary["min_jaccard"] == 0.8123
    assert summary["cluster_sizes"] == {"2": 2, "5-9": 1}
    assert summary["jaccard"] == {"0.80-0.85": 1, "0.90-0.95": 4, "1.00": 1}
    assert "6 pages removed in 3 clusters" in summary_text(summary)
    assert summarize([])["clusters"] == 0 and "0 pages removed" in summary_text(summarize([]))
