"""`c4clean explain`: per-page verdicts checked against the sample corpus generator's ground truth."""

import json
import lzma

import pytest
from click.testing import CliRunner

from c4clean.cleaning import reasons
from c4clean.cleaning.rules import END_MARKS, MIN_WORDS_PER_LINE
from c4clean.cli import main

SAMPLE_FILE = "CC-MAIN-20190418004422-20190418020336-00000.warc.wet.gz"


@pytest.fixture(scope="module")
def verdicts(sample_wet):
    result = CliRunner().invoke(main, ["explain", str(sample_wet / SAMPLE_FILE)])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.output.splitlines()]


@pytest.fixture(scope="module")
def truth(shared_data):
    """The generator's per-page record (kind, flags) for every page of the sample file."""
    with lzma.open(shared_data / "wet/small/pages.jsonl.xz", "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    return {row["url"]: row for row in rows if row["file"] == SAMPLE_FILE}


def by_url(verdicts):
    return {v["url"]: v for v in verdicts if v["url"] is not None}


def test_every_record_is_accounted_for(verdicts, truth):
    pages = by_url(verdicts)
    # every generated page with a body appears (empty bodies are reader skips: no_content)
    with_body = {u for u, row in truth.items() if row["kind"] != "empty_body"}
    assert with_body <= set(pages)
    skipped = [v for v in verdicts if v["url"] is None]
    assert {v["reason"] for v in skipped} >= {reasons.NO_URL}  # the warcinfo record


def test_kept_text_obeys_the_line_rules(verdicts):
    kept = [v for v in verdicts if v["kept"]]
    assert kept
    for v in kept:
        for line in v["text"].split("\n"):
            assert line.endswith(END_MARKS) and not line.endswith("...")
            assert len(line.split()) >= MIN_WORDS_PER_LINE
            assert "javascript" not in line.lower() and "{" not in line


def test_planted_defects_are_dropped_at_the_right_stage(verdicts, truth):
    pages = by_url(verdicts)
    seen = set()
    for url, row in truth.items():
        v = pages.get(url)
        if v is None:
            continue
        if row["kind"] == "long_page":
            assert v["stage"] == reasons.NS_TOO_LONG
            seen.add("long")
        if row["kind"] == "lorem" and "lorem_full" in row["flags"]:
            assert v["reason"] == reasons.PAGE_LOREM_IPSUM
            seen.add("lorem")
        if row["kind"] == "non_english":
            assert not v["kept"]
            seen.add("non_english")
    assert {"long", "non_english"} <= seen


def test_injected_badwords_never_survive(verdicts, truth, shared_data):
    manifest = json.loads((shared_data / "wet/small/manifest.json").read_text())
    injected = {p["url"] for p in manifest["injected_badword_pages"]}
    pages = by_url(verdicts)
    hits = [pages[u] for u in injected if u in pages and "badword_dropped_line" not in truth[u]["flags"]]
    assert hits
    assert not any(v["kept"] for v in hits)
    assert any(v["stage"] == reasons.NS_BADWORDS for v in hits)


def test_dropped_lines_carry_reason_codes(verdicts):
    codes = {d["reason"] for v in verdicts for d in v["dropped_lines"]}
    assert reasons.LINE_NO_ENDMARK in codes and reasons.LINE_TOO_SHORT in codes
    assert all(code.startswith(("line-filtered:", "filtered:")) for code in codes)


def test_url_option_restricts_to_one_page(sample_wet, verdicts):
    url = next(v["url"] for v in verdicts if v["kept"])
    result = CliRunner().invoke(main, ["explain", str(sample_wet / SAMPLE_FILE), "--url", url])
    assert result.exit_code == 0
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert [v["url"] for v in lines] == [url] and lines[0]["kept"]

    missing = CliRunner().invoke(main, ["explain", str(sample_wet / SAMPLE_FILE), "--url", "http://nope/"])
    assert missing.exit_code != 0 and "no page" in missing.output


def test_variant_option_applies_that_variants_steps(sample_wet):
    from c4clean.cleaning.page import Page
    from c4clean.cleaning.url import DomainFilter

    result = CliRunner().invoke(main, ["explain", str(sample_wet / SAMPLE_FILE), "--variant", "realnewslike"])
    assert result.exit_code == 0, result.output
    verdicts = [json.loads(line) for line in result.output.splitlines()]
    realnews = DomainFilter.realnews()
    dropped = [v for v in verdicts if v["stage"] == reasons.NS_REALNEWS]
    assert dropped and all(not realnews(Page(url=v["url"], text="")).keep for v in dropped)
    assert all(realnews(Page(url=v["url"], text="")).keep for v in verdicts if v["kept"])
