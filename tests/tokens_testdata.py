"""Test data for the tokenizer/loader tests: small text shards in `c4clean run`'s format, from the sample WET.

Written here with pyarrow (not by the pipeline) so these tests do not depend on it.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import pyarrow as pa

SCHEMA = pa.schema(
    [
        ("url", pa.string()),
        ("text", pa.string()),
        ("timestamp", pa.string()),
        ("content_length", pa.string()),
        ("language", pa.string()),
    ]
)


def wet_documents(wet_dir: Path) -> list[tuple[str, str]]:
    """(url, text) of every conversion record in the sample WET files, in file order."""
    docs = []
    for path in sorted(Path(wet_dir).glob("*.wet.gz")):
        raw = gzip.decompress(path.read_bytes()).decode("utf-8", errors="replace")
        for record in raw.split("WARC/1.0\r\n")[1:]:
            header, _, body = record.partition("\r\n\r\n")
            if "WARC-Type: conversion" not in header:
                continue
            url = next(
                line.split(": ", 1)[1] for line in header.split("\r\n") if line.startswith("WARC-Target-URI")
            )
            text = body.strip()
            if text:
                docs.append((url, text))
    return docs


def write_text_shards(
    out_dir: Path,
    docs: list[tuple[str, str]],
    *,
    splits=(("train", 3), ("validation", 1)),
    validation_every: int = 10,
    rows_per_batch: int = 17,
) -> Path:
    """Write docs as `{split}-{i:05d}-of-{n:05d}.arrow` shards (several record batches each)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    by_split = {
        "train": [d for i, d in enumerate(docs) if i % validation_every],
        "validation": [d for i, d in enumerate(docs) if i % validation_every == 0],
    }
    for split, count in splits:
        part = by_split[split]
        for index in range(count):
            rows = part[index::count]
            table = pa.table(
                {
                    "url": [u for u, _ in rows],
                    "text": [t for _, t in rows],
                    "timestamp": ["2019-03-18T01:54:40Z"] * len(rows),
                    "content_length": [str(len(t)) for _, t in rows],
                    "language": ["en"] * len(rows),
                },
                schema=SCHEMA,
            )
            path = out_dir / f"{split}-{index:05d}-of-{count:05d}.arrow"
            with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, SCHEMA) as writer:
                writer.write_table(table, max_chunksize=rows_per_batch)
    (out_dir / "manifest.json").write_text('{"format": "test shards"}\n')
    return out_dir


# --- shared fixtures (imported by the test modules; session-scoped so the vocabulary is trained once) ---
import pytest  # noqa: E402

TEST_VOCAB_SIZE = 800


@pytest.fixture(scope="session")
def sample_docs(sample_wet) -> list[tuple[str, str]]:
    docs = wet_documents(sample_wet)
    assert len(docs) > 200
    return docs


@pytest.fixture(scope="session")
def text_shards(tmp_path_factory, sample_docs) -> Path:
    return write_text_shards(tmp_path_factory.mktemp("text"), sample_docs)


@pytest.fixture(scope="session")
def vocab_dir(tmp_path_factory, text_shards) -> Path:
    from c4clean.tokenize.vocab import train_vocab

    out = tmp_path_factory.mktemp("vocab")
    train_vocab(text_shards, out, vocab_size=TEST_VOCAB_SIZE, sample_bytes=1 << 30)
    return out


@pytest.fixture(scope="session")
def token_dir(tmp_path_factory, text_shards, vocab_dir) -> Path:
    from c4clean.tokenize.encode import encode_corpus

    out = tmp_path_factory.mktemp("tokens")
    encode_corpus(text_shards, vocab_dir, out, workers=1)
    return out
