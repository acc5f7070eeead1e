import json
import random
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions

from c4clean.cleaning import minhash, reasons
from c4clean.cleaning.page import Page
from c4clean.pipelines.near_dedup import RemoveNearDuplicates


def run_near_dedup(pages, tmp_path: Path, workers: int = 1, **kwargs):
    """Runs the transform on the offline Python runner; returns (kept urls sorted, counters)."""
    mode = "multi_processing" if workers > 1 else "in_memory"
    options = PipelineOptions(
        ["--runner=FnApiRunner", f"--direct_num_workers={workers}", f"--direct_running_mode={mode}"]
    )
    prefix = tmp_path / f"kept-{workers}-{random.random()}"
    with beam.Pipeline(options=options) as p:
        _ = (
            p
            | beam.Create(list(pages), reshuffle=False)
            | RemoveNearDuplicates(**kwargs)
            | beam.Map(lambda page: page.url)
            | beam.io.WriteToText(str(prefix))
        )
    result = p.result
    urls = sorted(line for f in tmp_path.glob(prefix.name + "*") for line in f.read_text().splitlines())
    counters = {
        r.key.metric.name: r.committed
        for r in result.metrics().query(MetricsFilter().with_namespace(reasons.NS_NEAR_DEDUP))["counters"]
    }
    return urls, counters


def random_words(rng: random.Random, n: int) -> list[str]:
    # A large vocabulary: two unrelated documents share (almost) no 5-gram.
    return [f"w{rng.randrange(1_000_000)}" for _ in range(n)]


def edit_words(words: list[str], positions, rng: random.Random) -> list[str]:
    out = list(words)
    for i in positions:
        out[i] = f"edit{rng.randrange(1_000_000)}"
    return out


def true_jaccard(a: str, b: str) -> float:
    sa, sb = set(minhash.shingles(a)), set(minhash.shingles(b))
    return len(sa & sb) / len(sa | sb)


@pytest.fixture(scope="module")
def corpus():
    """20 distinct pages, 5 of them with a planted near-duplicate (2 words of 600 edited: Jaccard
    ~0.97, an LSH candidate with probability > 0.9999 at the defaults)."""
    rng = random.Random(42)
    originals = [random_words(rng, 600) for _ in range(20)]
    pages = [Page(url=f"http://site{i}.example/page", text=" ".join(w)) for i, w in enumerate(originals)]
    planted = {}
    for i in range(5):
        copy = edit_words(originals[i], [150, 450], rng)
        dup = Page(url=f"http://copy{i}.example/page", text=" ".join(copy))
        assert true_jaccard(dup.text, pages[i].text) > 0.96
        pages.append(dup)
        planted[frozenset({dup.url, pages[i].url})] = None
    return pages, list(planted)


def expected_survivors(pages, clusters):
    """Independent statement of the keep rule: per cluster, the page whose md5(url) is smallest."""
    import hashlib

    md5 = lambda u: hashlib.md5(u.encode()).hexdigest()  # noqa: E731
    dropped = set()
    for cluster in clusters:
        dropped |= set(cluster) - {min(cluster, key=md5)}
    return sorted(p.url for p in pages if p.url not in dropped)


def test_planted_near_duplicates_removed_distinct_kept(corpus, tmp_path):
    pages, clusters = corpus
    kept, counters = run_near_dedup(pages, tmp_path)
    assert kept == expected_survivors(pages, clusters)
    assert counters[reasons.NEAR_DUPLICATE] == 5
    assert counters[reasons.PASSED] == 20
    assert counters[reasons.NEAR_DEDUP_CLUSTERS] == 5
    assert counters[reasons.NEAR_DEDUP_VERIFIED_PAIRS] == 5
    assert counters.get(reasons.NEAR_DEDUP_UNCONVERGED, 0) == 0


# Windows of 300 words of one stream, shifted by 75: Jaccard ~0.60 to the next window, ~0.33 to
# the one after. At threshold 0.46 with 256 permutations the estimate is > 4 standard deviations
# from the threshold either way, and recall-weighted banding makes each link a candidate with
# probability > 0.999; so these tests exercise clustering, not luck.
WINDOW, SHIFT, WINDOW_THRESHOLD = 300, 75, 0.46
WINDOW_ARGS = dict(threshold=WINDOW_THRESHOLD, num_perm=256, false_negative_weight=0.9)


def windows(seed: int, count: int) -> list[str]:
    stream = random_words(random.Random(seed), WINDOW + (count - 1) * SHIFT)
    texts = [" ".join(stream[SHIFT * i : SHIFT * i + WINDOW]) for i in range(count)]
    assert min(true_jaccard(x, y) for x, y in zip(texts, texts[1:])) > 0.58
    assert max(true_jaccard(x, y) for x, y in zip(texts, texts[2:])) < 0.34
    return texts


def test_clusters_are_transitive(tmp_path):
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
    kept, counters = run_near_dedup(pages, tmp_path, **WINDOW_ARGS)
    assert kept == expected_survivors(
        pages, [{"http://a.example/", "http://b.example/", "http://c.example/"}]
    )
    assert counters[reasons.NEAR_DUPLICATE] == 2
    assert counters[reasons.NEAR_DEDUP_CLUSTERS] == 1


def test_long_chain_converges_and_keeps_one(tmp_path):
    # A path of 12 near-duplicates, in an order where ids do not follow the chain: needs several
    # hash-to-min rounds; every page but one must go.
    stream = random_words(random.Random(9), 300 + 11 * 5)
    texts = [" ".join(stream[5 * i : 5 * i + 300]) for i in range(12)]
    assert min(true_jaccard(x, y) for x, y in zip(texts, texts[1:])) > 0.95  # LSH finds each link
    assert true_jaccard(texts[0], texts[-1]) < 0.8
    pages = [Page(url=f"http://chain{i}.example/", text=t) for i, t in enumerate(texts)]
    kept, counters = run_near_dedup(pages, tmp_path, threshold=0.8, num_perm=128)
    assert len(kept) == 1
    assert kept == expected_survivors(pages, [{p.url for p in pages}])
    assert counters.get(reasons.NEAR_DEDUP_UNCONVERGED, 0) == 0


def test_unconverged_rounds_are_counted_and_only_under_remove(tmp_path):
    # A path graph: each window is a near-duplicate of its neighbours only.
    texts = windows(11, 10)
    pages = [Page(url=f"http://path{i}.example/", text=t) for i, t in enumerate(texts)]
    kept, counters = run_near_dedup(pages, tmp_path, **WINDOW_ARGS)
    assert kept == expected_survivors(pages, [{p.url for p in pages}])
    assert counters.get(reasons.NEAR_DEDUP_UNCONVERGED, 0) == 0
    # Cut short, the rounds have not converged: the counter says so, and the run removes too
    # little, never the page its cluster keeps.
    kept_short, counters_short = run_near_dedup(pages, tmp_path, max_rounds=1, **WINDOW_ARGS)
    assert counters_short[reasons.NEAR_DEDUP_UNCONVERGED] > 0
    assert len(kept_short) > 1 and set(kept) <= set(kept_short)


def test_unverified_mode_and_empty_pages(tmp_path):
    pages = [
        Page(url="http://empty1/", text=""),
        Page(url="http://empty2/", text="   "),
        Page(url="http://x/", text="the same short text"),
        Page(url="http://y/", text="The same  short TEXT"),
    ]
    kept, counters = run_near_dedup(pages, tmp_path, verify=False)
    # Empty pages have no shingles and are never near-duplicates of each other.
    assert kept == expected_survivors(pages, [{"http://x/", "http://y/"}])
    assert reasons.NEAR_DEDUP_VERIFIED_PAIRS not in counters


def test_result_independent_of_input_order_and_workers(corpus, tmp_path):
    pages, clusters = corpus
    shuffled = list(pages)
    random.Random(3).shuffle(shuffled)
    kept_1, _ = run_near_dedup(pages, tmp_path, workers=1)
    kept_2, counters = run_near_dedup(shuffled, tmp_path, workers=2)
    assert kept_1 == kept_2 == expected_survivors(pages, clusters)
    assert counters[reasons.NEAR_DUPLICATE] == 5


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
    # Recall-weighted banding (14 bands of 9): a pair with Jaccard 0.9 is a candidate with
    # probability 0.999; verification keeps the threshold at 0.8.
    kept, counters = run_near_dedup(pages, tmp_path, false_negative_weight=0.9)
    dropped = {p.url for p in pages} - set(kept)
    assert dropped, "nothing removed"
    # Precision: every removed page has a planted duplicate that is kept.
    kept_groups = {groups.get(u) for u in kept}
    for url in dropped:
        assert url in groups and groups[url] in kept_groups, url
    # Recall where it is expected: planted near-duplicates whose cleaned texts are clearly above
    # the threshold (true 5-gram Jaccard >= 0.9) are all found.
    clear = [
        (x["url"], x["of"])
        for x in manifest["near_dups"]
        if x["url"] in text and x["of"] in text and true_jaccard(text[x["url"]], text[x["of"]]) >= 0.9
    ]
    assert clear
    for a, b in clear:
        assert a in dropped or b in dropped, (a, b)
