"""A K-times larger WET corpus from a small one, for memory benchmarks (`bench_pipeline.py --memory`).

Copy 0 is the input, byte for byte. Copy k >= 1 of each file holds the same records with:

* a new URL: `copy{k}.` is put in front of the host (after `http(s)://` and a leading `www.`), so
  `normalize_url(new) == "copy{k}." + normalize_url(old)`: copies never meet in URL dedup, and URLs
  that normalise alike in the input (the corpus's planted URL duplicates) still do within a copy;
* the words of every text line reordered by a fixed permutation of word positions, chosen by
  (k, number of words) and keeping the last word (the end mark) last. Exact line dedup (md5 of the
  lower-cased line) and MinHash near-dedup (word 5-grams) then see no copy of the input's lines or
  shingles in other copies, while inside one copy equal lines stay equal and a near-duplicate pair
  (some words changed in place) keeps nearly its shingle overlap. C4's line rules (end mark, word
  count, bad words, "javascript") and bag-of-n-gram language id see the same words as before; lines
  holding a multi-word phrase a rule looks for (policy phrases, "lorem ipsum") stay as they are, as
  do lines a reader would take for WARC metadata.

So each copy keeps about as many pages as the input through the `en` recipe with near-dedup, and
the output grows ~K times: the check is `c4clean run` on a file and on its scaled version.

    python benchmarks/scale_corpus.py --input ../shared/data/wet/bench --output /tmp/bench10x --copies 10
"""

from __future__ import annotations

import argparse
import base64
import functools
import gzip
import hashlib
import os
import random
import re
import shutil
import sys
import uuid
from pathlib import Path

from c4clean import atomic
from c4clean.cleaning.rules import POLICY_SUBSTRINGS

WET_SUFFIXES = (".wet", ".wet.gz")
_HOST_START = re.compile(r"(https?://(www\.)?)?")
# Phrases some rule matches across words: a line holding one keeps its word order.
_PHRASES = tuple(p for p in POLICY_SUBSTRINGS if " " in p) + ("lorem ipsum",)
_METADATA_PREFIXES = ("WARC", "CONTENT-", "Content-")  # lines the WET reader takes for headers
# str.splitlines() breaks (other than \n, which separates lines already): clean_page splits on them.
_SUBLINE_BREAKS = re.compile("([\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029])")
_TOKEN = re.compile(r"\[citation needed\]|[^ ]+")  # a citation mark C4 removes stays one token
_SEED = "c4clean-scale-corpus"


def copy_url(url: str, k: int) -> str:
    """The URL of copy k: `copy{k}.` in front of the host (k == 0: the URL itself)."""
    if k == 0:
        return url
    at = _HOST_START.match(url).end()
    return f"{url[:at]}copy{k}.{url[at:]}"


@functools.lru_cache(maxsize=None)
def _permutation(k: int, m: int) -> tuple[int, ...]:
    """Positions of the first m words in copy k: not the identity (m >= 2) and, while m! allows,
    different for every k, since copies drawn in order k = 1, 2, ... skip orders already taken."""
    if m < 2:
        return tuple(range(m))
    taken = {tuple(range(m))}
    rng = random.Random(f"{_SEED}:{m}")
    order = list(range(m))
    chosen = tuple(order)
    for _ in range(k):
        for _attempt in range(100):  # bounded: with m = 2 or 3 there are fewer orders than copies
            rng.shuffle(order)
            chosen = tuple(order)
            if chosen not in taken:
                break
        taken.add(chosen)
    return chosen


def _reorder(piece: str, k: int) -> str:
    tokens = _TOKEN.findall(piece)
    if len(tokens) < 3:
        return piece
    head = tokens[:-1]
    new = [head[i] for i in _permutation(k, len(head))]
    if new[0].startswith(_METADATA_PREFIXES):
        return piece
    return " ".join(new + tokens[-1:])


def copy_line(line: str, k: int) -> str:
    """A text line of copy k (see the module docstring)."""
    if k == 0:
        return line
    lower = line.lower()
    if line.lstrip().startswith(_METADATA_PREFIXES) or any(p in lower for p in _PHRASES):
        return line
    parts = _SUBLINE_BREAKS.split(line)
    parts[::2] = [_reorder(p, k) for p in parts[::2]]
    return "".join(parts)


def copy_body(body: bytes, k: int) -> bytes:
    text = body.decode("utf-8", "surrogateescape")  # bad UTF-8 goes through as it came
    return "\n".join(copy_line(line, k) for line in text.split("\n")).encode("utf-8", "surrogateescape")


def _records(data: bytes, name: str):
    """(header lines, body) of each record, walked by Content-Length (well-formed WET only)."""
    pos = data.find(b"WARC/1.0")
    if pos < 0:
        raise SystemExit(f"{name}: not a WET file (no WARC/1.0 line)")
    while pos < len(data):
        head_end = data.find(b"\r\n\r\n", pos)
        if head_end < 0:
            raise SystemExit(f"{name}: WARC headers without an end at byte {pos}")
        header = data[pos:head_end].decode("utf-8").split("\r\n")
        lengths = [h for h in header if h.startswith("Content-Length:")]
        if header[0] != "WARC/1.0" or len(lengths) != 1:
            raise SystemExit(f"{name}: record at byte {pos} is not a well-formed WARC record")
        start = head_end + 4
        end = start + int(lengths[0].split(":", 1)[1])
        yield header, data[start:end]
        pos = end
        while data.startswith(b"\r\n", pos):
            pos += 2
        if pos < len(data) and not data.startswith(b"WARC/1.0", pos):
            raise SystemExit(f"{name}: data after the record ending at byte {end} is not a record")


def _set(header: list[str], key: str, value: str) -> None:
    for i, line in enumerate(header):
        if line.startswith(key + ":"):
            header[i] = f"{key}: {value}"


def copy_record(header: list[str], body: bytes, k: int, filename: str) -> bytes:
    header = list(header)
    kind = next((h.split(":", 1)[1].strip() for h in header if h.startswith("WARC-Type:")), "")
    if kind == "warcinfo":
        _set(header, "WARC-Filename", filename)
    else:
        body = copy_body(body, k)
        for h in header:
            if h.startswith("WARC-Target-URI:"):
                _set(header, "WARC-Target-URI", copy_url(h.split(":", 1)[1].strip(), k))
                break
    for h in header:
        if h.startswith("WARC-Record-ID:"):
            old = h.split(":", 1)[1].strip()
            _set(header, "WARC-Record-ID", f"<urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'{old}#{k}')}>")
            break
    _set(header, "Content-Length", str(len(body)))
    digest = base64.b32encode(hashlib.sha1(body).digest()).decode("ascii")
    _set(header, "WARC-Block-Digest", f"sha1:{digest}")
    return "\r\n".join(header).encode("utf-8") + b"\r\n\r\n" + body + b"\r\n\r\n"


def copy_name(name: str, k: int) -> str:
    """`x.warc.wet.gz` -> `x-copy{k:03d}.warc.wet.gz` (k == 0: the name itself)."""
    if k == 0:
        return name
    suffix = next(s for s in (".warc.wet.gz", ".warc.wet", ".wet.gz", ".wet") if name.endswith(s))
    return f"{name[: -len(suffix)]}-copy{k:03d}{suffix}"


def scale_file(path: Path, output: Path, copies: int) -> None:
    atomic_copy = output / path.name
    with atomic.replacing(atomic_copy) as tmp:
        shutil.copyfile(path, tmp)
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    records = list(_records(data, path.name))
    del data
    for k in range(1, copies):
        name = copy_name(path.name, k)
        with atomic.replacing(output / name) as tmp, open(tmp, "wb") as out:
            for header, body in records:
                record = copy_record(header, body, k, name)
                # One gzip member per record, as Common Crawl writes them.
                out.write(
                    gzip.compress(record, compresslevel=6, mtime=0) if path.name.endswith(".gz") else record
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", type=Path, required=True, help="WET file or folder of WET files")
    parser.add_argument("--output", type=Path, required=True, help="folder for the K copies")
    parser.add_argument("--copies", type=int, default=10, help="K (copy 0 is the input itself)")
    args = parser.parse_args()
    if args.copies < 1:
        parser.error("--copies must be at least 1")
    if args.input.is_dir():
        files = sorted(p for p in args.input.iterdir() if p.name.endswith(WET_SUFFIXES))
    else:
        files = [args.input]
    if not files:
        parser.error(f"--input {args.input}: no WET files")
    args.output.mkdir(parents=True, exist_ok=True)
    for path in files:
        print(f"{path.name}: {args.copies} copies", file=sys.stderr, flush=True)
        scale_file(path, args.output, args.copies)
    total = sum(
        os.path.getsize(args.output / copy_name(p.name, k)) for p in files for k in range(args.copies)
    )
    print(f"{len(files) * args.copies} files, {total / 1e6:.0f} MB in {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
