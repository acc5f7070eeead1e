"""The per-file stage on its own: staging, the work file's round trip, resume and failures."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from c4clean import formats
from c4clean.cleaning import reasons
from c4clean.cleaning.page import Page
from c4clean.pipelines import perfile

GOOD = "\n".join(f"Line number {i} of this page is a whole sentence." for i in range(6))
LOREM = GOOD + "\nLorem ipsum dolor sit amet, it says here."


def _record(url: str, text: str, date: str = "2019-04-18T10:00:00Z") -> bytes:
    body = text.encode("utf-8")
    head = [
        "WARC/1.0",
        "WARC-Type: conversion",
        f"WARC-Target-URI: {url}",
        f"WARC-Date: {date}",
        "Content-Type: text/plain",
        f"Content-Length: {len(body)}",
    ]
    return "\r\n".join(head).encode() + b"\r\n\r\n" + body + b"\r\n\r\n"


def _wet(path: Path, *records: bytes) -> str:
    path.write_bytes(b"".join(gzip.compress(r, mtime=0) for r in records))
    return str(path)


def _rules(tmp_path: Path, resume: bool = False) -> perfile.PageRules:
    settings = perfile.PerFileSettings(
        files_dir=str(tmp_path / "work" / "files"),
        signature="sig",
        clean=True,
        paragraph_filter=False,
        domain_filter=None,
        resume=resume,
    )
    return perfile.PageRules(settings)


@pytest.fixture
def wet(tmp_path):
    return _wet(
        tmp_path / "a.wet.gz",
        _record("http://a.com/good", GOOD),
        _record("http://a.com/lorem", LOREM, "2019-04-18T11:00:00Z"),
        _record("http://a.com/long", "x" * 190_001),
    )


def test_process_file_stages_pages_with_their_verdicts(tmp_path, wet):
    staged, summary = perfile.process_file("a.wet.gz", wet, _rules(tmp_path))
    # the length filter drops at read time; clean_page's verdict travels with the page
    assert [s.page.url for s in staged] == ["http://a.com/good", "http://a.com/lorem"]
    good, lorem = staged
    assert good.drop is None and good.page.text == GOOD and good.page.normalized_url == "a.com/good"
    assert lorem.drop == (reasons.NS_CLEAN, reasons.PAGE_LOREM_IPSUM)
    assert lorem.page.text == "" and lorem.page.timestamp == "2019-04-18T11:00:00Z"  # URL dedup needs it
    assert summary.pages == 2 and summary.issues == []
    assert summary.counters[reasons.NS_READ] == {reasons.PASSED: 3}
    assert summary.counters[reasons.NS_TOO_LONG] == {reasons.FILTERED: 1, reasons.PASSED: 2}
    assert summary.total(reasons.NS_TOO_LONG) == 3 and summary.total(reasons.NS_READ, "nothing") == 0


def test_staged_pages_round_trip_through_the_work_file():
    staged = [
        perfile.Staged(Page(url="u1", text="t1", timestamp="1", normalized_url="n1"), None, {"a": 1}),
        perfile.Staged(Page(url="u2", text="", language="de"), ("ns", "filtered:x"), {}),
    ]
    back = list(perfile.decode(perfile.encode(staged), file_position=3))
    assert [(s.page, s.drop, s.counts) for s in back] == [(s.page, s.drop, s.counts) for s in staged]
    assert [s.order for s in back] == [(3, 0), (3, 1)]  # reading order, for URL dedup's ties


def test_work_key_names_format_input_and_signature(monkeypatch):
    key = perfile.work_key("a.wet.gz", "sig")
    assert key == perfile.work_key("a.wet.gz", "sig") and len(key) == 40
    assert len({key, perfile.work_key("b.wet.gz", "sig"), perfile.work_key("a.wet.gz", "other")}) == 3
    arrow, json_path = perfile.work_paths("/w/files", "a.wet.gz", "sig")
    assert arrow == f"/w/files/{key}.arrow" and json_path == f"/w/files/{key}.json"
    # results of another work format are never found (so never misread): they are redone
    monkeypatch.setattr(formats, "WORK", formats.Format(formats.WORK.name, formats.WORK.version + 1))
    assert perfile.work_key("a.wet.gz", "sig") != key


def test_run_file_resumes_an_unchanged_file_and_redoes_a_changed_one(tmp_path, wet, monkeypatch):
    rules = _rules(tmp_path, resume=True)
    arrow_path = perfile.run_file("a.wet.gz", wet, rules)
    summary = perfile.load_summary(arrow_path)
    pages = list(perfile.decode(perfile.read_bytes(arrow_path), 5))
    assert summary.pages == 2 and summary.identity["size"] == Path(wet).stat().st_size
    assert [s.order for s in pages] == [(5, 0), (5, 1)]
    # a pass reads only the pages it asks for, with their ordinals
    assert [s.order for s in perfile.decode(perfile.read_bytes(arrow_path), 5, rows=[1])] == [(5, 1)]
    entries = perfile.url_entries(perfile.read_bytes(arrow_path), 5)
    assert [(url, e.timestamp, e.order) for url, e in entries] == [
        (s.page.normalized_url, s.page.timestamp, s.order) for s in pages
    ]

    calls = []
    real = perfile.process_file
    monkeypatch.setattr(perfile, "process_file", lambda *a: calls.append(a) or real(*a))
    assert perfile.run_file("a.wet.gz", wet, rules) == arrow_path and calls == []  # skipped
    _wet(Path(wet), _record("http://a.com/good", GOOD))  # the input changed: staged again
    perfile.run_file("a.wet.gz", wet, rules)
    assert len(calls) == 1 and perfile.load_summary(arrow_path).pages == 1


def test_a_failed_input_is_an_issue_and_is_retried_on_resume(tmp_path, wet, monkeypatch):
    rules = _rules(tmp_path, resume=True)
    code = reasons.DOWNLOAD_FAILED
    arrow_path = perfile.record_failure("a.wet.gz", rules.settings, code, "404")
    summary = perfile.load_summary(arrow_path)
    pages = list(perfile.decode(perfile.read_bytes(arrow_path)))
    assert pages == [] and summary.pages == 0 and summary.identity is None
    assert summary.counters == {reasons.NS_READ: {code: 1}}
    assert summary.issues == [{"file": "a.wet.gz", "code": code, "record_index": None, "detail": "404"}]
    perfile.run_file("a.wet.gz", wet, rules)  # no identity: not skipped
    assert perfile.load_summary(arrow_path).pages == 2


def test_missing_or_foreign_summaries_are_not_results(tmp_path):
    assert perfile.read_summary(str(tmp_path / "absent.json")) is None
    (tmp_path / "other.json").write_text('{"something": "else"}')
    assert perfile.read_summary(str(tmp_path / "other.json")) is None
    (tmp_path / "k.arrow").write_bytes(perfile.encode([]))
    with pytest.raises(FileNotFoundError, match="k.json"):
        perfile.load_summary(str(tmp_path / "k.arrow"))
