"""Differential test: `c4clean run --variant multilingual --no-near-dedup` against TFDS c4 v3.1.0's mC4.

The reference is `tensorflow_datasets.text.c4_utils` wired in Beam as TFDS `c4.py` wires the
`multilingual` config (split_wet_file -> is_valid_length -> newest page per normalized URL ->
paragraph_filter -> remove_duplicate_text(min_num_sentences=0) -> detect_languages (cld3,
MC4_LANGUAGES) -> soft bad words 0.999 -> `<lang>` / `<lang>-validation` by md5(url) % 1000).
Both run on the bundled sample and TFDS's fake c4 pages: languages, texts and splits must be equal.
"""

from __future__ import annotations

import collections
import json
from pathlib import Path

import pyarrow as pa
import pytest
from click.testing import CliRunner

from c4clean.cleaning.cld3 import MC4_LANGUAGES
from c4clean.cli import main

pytest.importorskip("tensorflow_datasets")
pytest.importorskip("gcld3")
from c4clean.cleaning.tfds_reference import load_c4_utils, read_tfds_pages  # noqa: E402

BADWORDS = Path(__file__).resolve().parents[1] / "c4clean" / "cleaning" / "data" / "badwords"


def _tfds_badwords() -> dict:
    """c4.py: every 5faf2ba list (language suffix stripped), `en` from 25e679f, minus the allowlist."""
    from tensorflow_datasets.text import c4

    files = {lang: BADWORDS / "5faf2ba" / lang for lang in c4._BADWORDS_LANGS}
    files["en"] = BADWORDS / "25e679f" / "en"
    badwords = collections.defaultdict(set)
    for lang, path in files.items():
        with open(path, encoding="utf-8") as f:
            badwords[lang.split("-")[0]].update(line.strip() for line in f)
    for lang, allowlist in c4._BADWORDS_ALLOWLIST.items():
        badwords[lang] -= allowlist
    return badwords


def _reference_run(files: list[Path], tmp: Path) -> tuple[dict, dict]:
    """{url: row} and the language-filter counters of TFDS's multilingual pipeline."""
    import apache_beam as beam
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner
    from tensorflow_datasets.text import c4

    c4_utils = load_c4_utils()
    assert list(MC4_LANGUAGES) == c4.MC4_LANGUAGES
    is_validation = c4_utils.get_hashed_url_filter_fn(lambda x: x % 1000 == 0)
    out_prefix = str(tmp / "reference")

    def emit(page):
        split = f"{page.language}-validation" if is_validation(page) else page.language
        return json.dumps({"url": page.url, "text": page.text, "split": split, "language": page.language})

    p = beam.Pipeline(runner=FnApiRunner())
    pages = (
        p
        | beam.Create([str(f) for f in files])
        | beam.FlatMap(read_tfds_pages)
        | beam.Filter(c4_utils.is_valid_length)
        | "normalize_url" >> beam.Map(lambda page: (page.normalized_url, page))
        | "select_newest" >> beam.CombinePerKey(c4_utils.select_newest_page)
        | beam.Values()
        | beam.Filter(c4_utils.paragraph_filter)
    )
    pages = c4_utils.remove_duplicate_text(pages, min_num_sentences=0)
    pages = c4_utils.detect_languages(pages, valid_languages=c4.MC4_LANGUAGES)
    pages |= beam.Filter(c4_utils.get_badwords_filter_fn(_tfds_badwords(), filter_fraction=0.999))
    _ = pages | beam.Map(emit) | beam.io.WriteToText(out_prefix, num_shards=1, shard_name_template="")
    result = p.run()
    result.wait_until_finish()
    recorded = collections.Counter()
    for entry in result.metrics().query()["counters"]:
        if entry.key.metric.namespace == "language-filter":
            recorded[entry.key.metric.name] += entry.committed
    rows = [json.loads(line) for line in Path(out_prefix).read_text("utf-8").splitlines()]
    return {r["url"]: r for r in rows}, dict(recorded)


def _run_c4clean(files: list[Path], out: Path, *extra: str) -> tuple[dict, dict]:
    from c4clean.formats import parse_shard_name

    args = ["run", "--variant", "multilingual", "--no-near-dedup", "--workers", "1", "--output", str(out)]
    for f in files:
        args += ["--input", str(f)]
    result = CliRunner().invoke(main, args + list(extra), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = {}
    for shard in sorted(out.rglob("*.arrow")):
        split = parse_shard_name(shard.name)[0]
        with pa.memory_map(str(shard)) as source:
            for row in pa.ipc.open_file(source).read_all().to_pylist():
                assert row["url"] not in rows
                rows[row["url"]] = dict(row, split=split)
    stats = json.loads((out / "stats.json").read_text())
    return rows, stats["counters"].get("language-filter", {})


def _fake_files(shared_data: Path) -> list[Path]:
    fake = sorted((shared_data / "wet" / "synthetic" / "tfds_c4").glob("*.wet"))
    assert fake
    return fake


@pytest.fixture(scope="module")
def both(shared_data, sample_wet, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mc4_diff")
    files = sorted(sample_wet.glob("*.wet.gz")) + _fake_files(shared_data)
    reference, ref_counters = _reference_run(files, tmp)
    ours, our_counters = _run_c4clean(files, tmp / "c4clean")
    return reference, ref_counters, ours, our_counters


def test_same_languages_texts_and_splits_as_tfds_mc4(both):
    reference, _, ours, _ = both
    assert len(reference) > 20
    languages = {row["language"] for row in reference.values()}
    assert {"en", "und"} <= languages and len(languages) >= 4  # a comparison across languages
    assert sorted(ours) == sorted(reference)
    for url, ref in reference.items():
        assert ours[url]["language"] == ref["language"], url
        assert ours[url]["split"] == ref["split"], url
        assert ours[url]["text"] == ref["text"], url


def test_language_counters_match_tfds(both):
    _, ref_counters, _, our_counters = both
    assert ref_counters.get("filtered:no_predictions", 0) > 0
    assert our_counters == ref_counters


def test_tfds_builder_expectation_on_its_fake_files(shared_data, tmp_path):
    """TFDS c4_test.C4MultilingualTest: one page in each of en, de, und and their validation splits."""
    rows, _ = _run_c4clean(_fake_files(shared_data), tmp_path / "out")
    splits = collections.Counter(row["split"] for row in rows.values())
    expected = {"en": 1, "en-validation": 1, "de": 1, "de-validation": 1, "und": 1, "und-validation": 1}
    assert dict(splits) == expected
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["options"]["langid"] == "cld3"
    assert {k: v["pages"] for k, v in manifest["splits"].items() if v["pages"]} == expected


def test_langdetect_stays_available(shared_data, tmp_path):
    """`--langid langdetect`: langdetect labels (no cld3 `is_reliable`, nothing dropped)."""
    rows, counters = _run_c4clean(_fake_files(shared_data), tmp_path / "out", "--langid", "langdetect")
    assert {row["language"] for row in rows.values()} >= {"en", "de"}
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["options"]["langid"] == "langdetect"
    assert counters["passed"] == len(rows)
