"""`c4clean run --cc-dump` against a Common Crawl look-alike served on 127.0.0.1."""

from __future__ import annotations

import functools
import gzip
import http.server
import json
import shutil
import threading

import pytest

from c4clean.cleaning import reasons
from c4clean.pipelines import pipeline
from c4clean.pipelines.options import RunOptions

DUMP = "2019-18"


@pytest.fixture(scope="module")
def server(sample_wet, tmp_path_factory):
    root = tmp_path_factory.mktemp("cc")
    listing = []
    for source in sorted(sample_wet.glob("*.wet.gz")):
        rel = f"crawl-data/CC-MAIN-{DUMP}/segments/1/wet/{source.name}"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, root / rel)
        listing.append(rel)
    listing.append(f"crawl-data/CC-MAIN-{DUMP}/segments/1/wet/missing.warc.wet.gz")  # a 404
    with gzip.open(root / f"crawl-data/CC-MAIN-{DUMP}/wet.paths.gz", "wt") as f:
        f.write("\n".join(listing) + "\n")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_cc_dump_downloads_cleans_and_names_the_missing_file(server, sample_wet, tmp_path):
    cache = tmp_path / "cache"
    options = RunOptions(
        output=str(tmp_path / "out"),
        cc_dump=DUMP,
        cc_base_url=server,
        cache_dir=str(cache),
        near_dedup=False,
        workers=1,
    )
    outcome = pipeline.run(options, echo=lambda _: None)
    assert outcome.exit_code == 0
    cached = sorted(p.name for p in cache.rglob("*.wet.gz"))
    assert cached == sorted(p.name for p in sample_wet.glob("*.wet.gz"))
    manifest = outcome.manifest
    assert [i["file"].rsplit("/", 1)[1] for i in manifest["inputs"]] == sorted(
        [p.name for p in sample_wet.glob("*.wet.gz")] + ["missing.warc.wet.gz"]
    )
    assert manifest["splits"]["train"]["pages"] > 100
    missing = f"{server}/crawl-data/CC-MAIN-{DUMP}/segments/1/wet/missing.warc.wet.gz"
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert stats["files_with_errors"] == [missing]
    assert [i["code"] for i in stats["read_issues"][missing]] == [reasons.DOWNLOAD_FAILED]


def test_max_files_limits_the_dump(server, tmp_path):
    options = RunOptions(
        output=str(tmp_path / "out"),
        cc_dump=DUMP,
        cc_base_url=server,
        max_files=1,
        cache_dir=str(tmp_path / "cache"),
        near_dedup=False,
        workers=1,
    )
    planned, cache = pipeline.plan_inputs(options)
    assert len(planned) == 1 and cache == str(tmp_path / "cache")
    assert planned[0][0].startswith(server) and planned[0][0].endswith(".wet.gz")
