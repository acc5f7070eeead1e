"""Every variant once on the sample WET files, each checked against what defines it."""

from __future__ import annotations

import heapq
import json
from pathlib import Path

import pyarrow as pa
import pytest

from c4clean.cleaning import reasons
from c4clean.cleaning.badwords import BadwordsFilter
from c4clean.cleaning.page import Page
from c4clean.pipelines import pipeline
from c4clean.pipelines.options import RunOptions


def _run(sample_wet: Path, out: Path, variant: str, **extra) -> dict:
    options = RunOptions(
        output=str(out), inputs=(str(sample_wet),), variant=variant, near_dedup=False, workers=1, **extra
    )
    outcome = pipeline.run(options, echo=lambda _: None)
    assert outcome.exit_code == 0
    rows = {}
    for shard in sorted((out / "data").glob("*.arrow")):
        split = shard.name.rsplit("-", 3)[0]
        with pa.memory_map(str(shard)) as source:
            for row in pa.ipc.open_file(source).read_all().to_pylist():
                rows[row["url"]] = dict(row, split=split)
    return rows


@pytest.fixture(scope="module")
def tmp(tmp_path_factory):
    return tmp_path_factory.mktemp("variants")


@pytest.fixture(scope="module")
def en(sample_wet, tmp):
    return _run(sample_wet, tmp / "en", "en")


def _page(row) -> Page:
    return Page(
        url=row["url"], text=row["text"], normalized_url=row["normalized_url"], language=row["language"]
    )


def test_noblocklist_is_en_plus_exactly_the_pages_with_bad_words(sample_wet, tmp, en):
    rows = _run(sample_wet, tmp / "noblocklist", "en.noblocklist")
    assert set(en) < set(rows)
    badwords = BadwordsFilter(1.0)
    extra = set(rows) - set(en)
    assert extra == {url for url, row in rows.items() if not badwords(_page(row)).keep}
    for url in en:
        assert rows[url]["text"] == en[url]["text"]
    stats = json.loads((tmp / "noblocklist" / "stats.json").read_text())
    assert "badwords-filter" not in stats["counters"]


def test_noclean_keeps_raw_text_of_english_pages(sample_wet, tmp, en):
    rows = _run(sample_wet, tmp / "noclean", "en.noclean")
    stats = json.loads((tmp / "noclean" / "stats.json").read_text())
    assert not {"clean-page", "dedupe-lines", "badwords-filter"} & set(stats["counters"])
    assert stats["counters"]["english-filter"]["passed"] == len(rows) > len(en)
    # Uncleaned: lines without an end mark survive.
    assert any(
        not line.endswith((".", "?", "!", '"')) for row in rows.values() for line in row["text"].split("\n")
    )
    assert all(row["language"] == "en" for row in rows.values())


def test_realnewslike_keeps_only_listed_news_domains(sample_wet, tmp, en):
    from c4clean.cleaning.url import DomainFilter

    rows = _run(sample_wet, tmp / "realnews", "realnewslike")
    assert rows and len(rows) < len(en)
    realnews = DomainFilter.realnews()
    assert all(realnews(_page(row)).keep for row in rows.values())
    stats = json.loads((tmp / "realnews" / "stats.json").read_text())
    counters = stats["counters"]
    assert counters[reasons.NS_REALNEWS]["passed"] < counters[reasons.NS_TOO_LONG]["passed"]


def test_custom_domain_list(sample_wet, tmp, en):
    domain = sorted(Path(url.split("/")[2]).name for url in en)[0].removeprefix("www.")
    listing = tmp / "domains.txt"
    listing.write_text(f"# one domain\n{domain}\n")
    rows = _run(sample_wet, tmp / "domains", "en", domains=str(listing))
    assert rows
    assert all(url.split("/")[2].removeprefix("www.").endswith(domain) for url in rows)
    manifest = json.loads((tmp / "domains" / "manifest.json").read_text())
    assert manifest["options"]["domains"] == str(listing)


def test_webtextlike_is_an_inner_join_on_the_url_list(sample_wet, tmp, en):
    wanted = sorted(en)[::3]
    listing = tmp / "urls.txt"
    # Listed in another spelling (https, www., trailing slash): the join is on normalized URLs.
    spelled = [u.replace("http://", "https://www.", 1) + "/" if "://www." not in u else u for u in wanted]
    listing.write_text("\n".join(spelled + ["http://not-in-the-input.example/page"]) + "\n")
    rows = _run(sample_wet, tmp / "webtext", "webtextlike", webtext_urls=(str(listing),))
    # Joining before clean_page changes line-dedup owners, so compare URLs, not text.
    assert set(rows) <= set(wanted) and len(rows) >= len(wanted) // 2
    stats = json.loads((tmp / "webtext" / "stats.json").read_text())
    assert stats["counters"]["webtextlike-filter"]["filtered"] > 0


def test_multilingual_splits_by_language_with_paragraph_filter(sample_wet, tmp):
    rows = _run(sample_wet, tmp / "multi", "multilingual")
    languages = {row["language"] for row in rows.values()}
    assert "en" in languages and len(languages) >= 2
    for row in rows.values():
        assert row["split"] in (row["language"], f"{row['language']}-validation")
    # The paragraph filter judges the raw page, before line dedup: check its verdicts there.
    from c4clean.cleaning.wet import iter_records

    raw = {
        p.url: p for f in sorted(sample_wet.glob("*.wet.gz")) for p in iter_records(f) if isinstance(p, Page)
    }
    for url in rows:
        lines = raw[url].text.split("\n")
        assert len(lines) >= 3 and min(heapq.nlargest(3, map(len, lines))) >= 200
    stats = json.loads((tmp / "multi" / "stats.json").read_text())
    paragraph = stats["counters"]["paragraph-filter"]
    assert paragraph["filtered"] > 0
    assert paragraph["passed"] == sum(
        v for k, v in stats["counters"]["dedupe-lines"].items() if not k.startswith("line-")
    )
    manifest = json.loads((tmp / "multi" / "manifest.json").read_text())
    assert set(manifest["splits"]) >= {row["split"] for row in rows.values()}


def test_webtextlike_requires_a_url_list(tmp):
    with pytest.raises(ValueError, match="webtext-urls"):
        RunOptions(output=str(tmp / "x"), inputs=("a",), variant="webtextlike")


def test_rerun_with_fewer_shards_replaces_the_old_shard_set(sample_wet, tmp, en):
    out = tmp / "en"  # the `en` fixture's output, 8 train shards
    assert len(list((out / "data").glob("train-*-of-00008.arrow"))) == 8
    rows = _run(sample_wet, out, "en", num_shards=2)
    assert sorted(p.name for p in (out / "data").glob("*.arrow")) == [
        "train-00000-of-00002.arrow",
        "train-00001-of-00002.arrow",
        "validation-00000-of-00001.arrow",
    ]
    assert rows.keys() == en.keys()
    manifest = json.loads((out / "manifest.json").read_text())
    assert [s["file"] for s in manifest["shards"]] == sorted(p.name for p in (out / "data").glob("*.arrow"))
