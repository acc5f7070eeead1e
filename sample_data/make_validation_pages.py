"""Write sample_data/wet/c4clean-validation-pages.warc.wet.gz: pages in C4's validation split.

C4 puts a page in validation iff md5(normalized URL) % 1000 == 0, so the two sample files (300 pages)
have none. This script takes English pages of the shared bench corpus (`shared/data/wet/bench`, made by
the same generator as the sample) and gives each a URL that hashes into validation:

* only pages of kind `en_normal` (no planted defect, no duplicate) whose text comes from the sample's
  own sources with the same licences (movie_reviews, state_union), from source documents the sample does
  not use;
* only pages that C4's `en` recipe keeps on their own (clean_page, English langdetect, bad words) and
  that share no cleaned line with the sample, so line dedup keeps them whole;
* the URL is the bench URL plus `/<n>`, with the smallest n >= 0 that hashes into validation;
* each record is the bench record's gzip member with only its `WARC-Target-URI` line rewritten (the
  body, Content-Length and block digest are unchanged), after the bench file's warcinfo record.

Deterministic: same bench corpus -> same bytes. Run from the repository root:

    python sample_data/make_validation_pages.py [--shared-data ../shared/data] [--pages 40]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import lzma
import zlib
from pathlib import Path

from c4clean.cleaning.badwords import BadwordsFilter
from c4clean.cleaning.langid import detect_english
from c4clean.cleaning.page import Page
from c4clean.cleaning.rules import clean_page
from c4clean.cleaning.url import VALIDATION, normalize_url, split_for_url

HERE = Path(__file__).resolve().parent
OUTPUT = HERE / "wet" / "c4clean-validation-pages.warc.wet.gz"
SOURCES = ("movie_reviews:", "state_union:")  # the sample's licences: CC-BY-4.0, public domain


def _members(path: Path):
    """The raw gzip members of a file (Common Crawl writes one per record)."""
    data = path.read_bytes()
    while data:
        inflate = zlib.decompressobj(wbits=31)
        body = inflate.decompress(data)
        member, data = data[: len(data) - len(inflate.unused_data)], inflate.unused_data
        yield member, body


def _header(record: bytes, name: bytes):
    for line in record.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line.startswith(name + b": "):
            return line[len(name) + 2 :].decode()
    return None


def _line_key(line: str) -> str:
    return hashlib.md5(line.strip().lower().encode("utf-8")).hexdigest()


def validation_url(url: str) -> str:
    n = 0
    while split_for_url(normalize_url(f"{url}/{n}")) != VALIDATION:
        n += 1
    return f"{url}/{n}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shared-data", default=str(HERE.parent.parent / "shared" / "data"))
    parser.add_argument("--pages", type=int, default=40)
    args = parser.parse_args()
    shared = Path(args.shared_data)

    def pages_of(corpus: str) -> list[dict]:
        with lzma.open(shared / "wet" / corpus / "pages.jsonl.xz", "rt", encoding="utf-8") as f:
            return [json.loads(line) for line in f]

    used_docs = {s for p in pages_of("small") for s in (p["source"] or "").split("+")}
    sample_lines: set[str] = set()
    for path in sorted((HERE / "wet").glob("CC-MAIN-*.warc.wet.gz")):
        for _, record in _members(path):
            body = record.split(b"\r\n\r\n", 1)[-1].decode("utf-8", "replace")
            sample_lines.update(_line_key(line) for line in body.split("\n"))
    wanted = {
        p["url"]: p
        for p in pages_of("bench")
        if p["kind"] == "en_normal"
        and not p["flags"]
        and p["dup_of"] is None
        and (p["source"] or "").startswith(SOURCES)
        and p["source"] not in used_docs
    }
    badwords = BadwordsFilter(1.0)
    chosen: list[bytes] = []
    warcinfo = None
    docs: set[str] = set()
    for path in sorted((shared / "wet" / "bench").glob("*.warc.wet.gz")):
        for member, record in _members(path):
            if warcinfo is None and _header(record, b"WARC-Type") == "warcinfo":
                warcinfo = member
            url = _header(record, b"WARC-Target-URI")
            info = wanted.get(url)
            if info is None or info["source"] in docs or len(chosen) >= args.pages:
                continue
            text = record.split(b"\r\n\r\n", 1)[1].decode("utf-8")
            lines = [line.strip() for line in text.split("\n") if line.strip()]
            page = Page(url=url, text="\n".join(lines), normalized_url=normalize_url(url))
            cleaned = clean_page(page).page
            english = detect_english(cleaned)[0] if cleaned is not None else None
            if english is None or not badwords(english).keep:
                continue
            keys = [_line_key(line) for line in cleaned.text.split("\n")]
            if sample_lines.intersection(keys) or len(set(keys)) < len(keys):
                continue
            old_uri = f"WARC-Target-URI: {url}\r\n".encode()
            new = record.replace(old_uri, f"WARC-Target-URI: {validation_url(url)}\r\n".encode(), 1)
            chosen.append(new)
            docs.add(info["source"])
            sample_lines.update(keys)
    if len(chosen) < args.pages:
        raise SystemExit(f"only {len(chosen)} pages qualify, {args.pages} wanted")
    name = OUTPUT.name.encode()
    warcinfo_record = zlib.decompress(warcinfo, wbits=31)
    old_name = _header(warcinfo_record, b"WARC-Filename").encode()
    records = [warcinfo_record.replace(b"WARC-Filename: " + old_name, b"WARC-Filename: " + name, 1)]
    with open(OUTPUT, "wb") as out:
        for record in records + chosen:
            out.write(gzip.compress(record, mtime=0))  # one member per record, no timestamp
    print(f"wrote {OUTPUT} ({len(chosen)} pages)")


if __name__ == "__main__":
    main()
