"""Encode text shards into token shards: one `list<uint16>` (or `uint32`) row per document, Arrow IPC, "
"uncompressed.

Row i of `train-00003-of-00008.arrow` in the token directory is document i of the text shard of the same
name. Shards are encoded in parallel processes; each is written to a temporary file and renamed, and the
manifest is rewritten after every finished shard, so an interrupted run resumes by skipping the shards
whose output still matches the manifest (file sha256) and whose input is unchanged (input sha256).
"""

from __future__ import annotations

import json
import logging
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from itertools import chain
from pathlib import Path

import numpy as np
import pyarrow as pa

from c4clean import __version__, atomic, formats
from c4clean.formats import MANIFEST, TOKENS_COLUMN, list_shards, sha256_file, token_shard_name
from c4clean.tokenize.shards import text_batches
from c4clean.tokenize.vocab import VocabInfo, Vocabulary

log = logging.getLogger(__name__)

DOC_SEPARATORS = ("none", "eos")
ENCODE_CHUNK_DOCS = 512  # documents per SentencePiece batch call
BATCH_TOKENS = (
    1 << 25
)  # tokens per Arrow record batch (64 MiB of uint16): keeps int32 list offsets far from overflow


def token_schema(info: VocabInfo) -> pa.Schema:
    return formats.token_schema(info.token_dtype, info.sha256)


def _record_batch(schema: pa.Schema, lengths: list[int], pieces: list[np.ndarray]) -> pa.RecordBatch:
    offsets = np.zeros(len(lengths) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    value_type = schema.field(TOKENS_COLUMN).type.value_type
    values = (
        np.concatenate(pieces)
        if pieces
        else np.zeros(0, dtype=np.uint16 if value_type == pa.uint16() else np.uint32)
    )
    array = pa.ListArray.from_arrays(
        pa.array(offsets), pa.array(values, type=value_type), type=schema.field(TOKENS_COLUMN).type
    )
    return pa.RecordBatch.from_arrays([array], schema=schema)


def encode_shard(input_path: str, output_path: str, vocab_dir: str, doc_separator: str = "none") -> dict:
    """Encode one text shard; returns its manifest entry. Same input and vocabulary give the same bytes."""
    vocab = Vocabulary(vocab_dir)
    info = vocab.info
    schema = token_schema(info)
    dtype = np.uint16 if info.token_dtype == "uint16" else np.uint32
    documents = tokens = empty = 0
    with (
        atomic.replacing(output_path) as tmp,
        pa.OSFile(str(tmp), "wb") as sink,
        pa.ipc.new_file(sink, schema) as writer,
    ):
        lengths: list[int] = []
        pieces: list[np.ndarray] = []
        pending = 0
        for column in text_batches(input_path):
            for start in range(0, len(column), ENCODE_CHUNK_DOCS):
                texts = column.slice(start, ENCODE_CHUNK_DOCS).to_pylist()
                # a null text is an empty document: it keeps its row so rows stay aligned with the text
                # shard
                encoded = vocab.encode([t or "" for t in texts])
                sizes = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
                flat = np.fromiter(chain.from_iterable(encoded), dtype=dtype, count=int(sizes.sum()))
                if doc_separator == "eos":  # one EOS after each document
                    flat = np.insert(flat, np.cumsum(sizes), info.eos_id)
                    sizes = sizes + 1
                empty += int(np.count_nonzero(sizes == (1 if doc_separator == "eos" else 0)))
                lengths.extend(sizes.tolist())
                pieces.append(flat)
                pending += len(flat)
                documents += len(sizes)
                tokens += len(flat)
                if pending >= BATCH_TOKENS:
                    writer.write_batch(_record_batch(schema, lengths, pieces))
                    lengths, pieces, pending = [], [], 0
        if lengths or documents == 0:
            writer.write_batch(_record_batch(schema, lengths, pieces))
    return {
        "file": os.path.basename(output_path),
        "documents": documents,
        "tokens": tokens,
        "empty_documents": empty,
        "bytes": os.path.getsize(output_path),
        "sha256": sha256_file(output_path),
        "input_file": os.path.basename(input_path),
        "input_sha256": sha256_file(input_path),
    }


def read_manifest(token_dir: str | Path) -> dict:
    path = Path(token_dir) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(
            f"no {MANIFEST} in {token_dir}: not a token directory (run `c4clean tokenize encode`)"
        )
    return dict(formats.TOKENS.check(json.loads(path.read_text()), path))


def _manifest(
    info: VocabInfo, doc_separator: str, entries: dict[str, dict], splits_of: dict[str, str]
) -> dict:
    """The manifest of the shards finished so far; `complete` only once every input shard is encoded."""
    shards = [{"split": splits_of[name], **entries[name]} for name in sorted(entries)]
    splits: dict[str, dict] = {}
    for entry in shards:
        total = splits.setdefault(entry["split"], {"shards": 0, "documents": 0, "tokens": 0})
        total["shards"] += 1
        total["documents"] += entry["documents"]
        total["tokens"] += entry["tokens"]
    return {
        **formats.TOKENS.stamp(),
        "c4clean_version": __version__,
        "column": TOKENS_COLUMN,
        "token_dtype": info.token_dtype,
        "doc_separator": doc_separator,
        "complete": len(entries) == len(splits_of),
        "vocab": info.to_json(),
        "splits": splits,
        "shards": shards,
    }


def encode_corpus(
    input_dir: str | Path,
    vocab_dir: str | Path,
    output_dir: str | Path,
    *,
    workers: int = 1,
    doc_separator: str = "none",
) -> dict:
    """Encode every text shard of every split; resumable. Returns the manifest."""
    if doc_separator not in DOC_SEPARATORS:
        raise ValueError(f"doc_separator must be one of {DOC_SEPARATORS}, got {doc_separator!r}")
    info = Vocabulary(vocab_dir).info
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    shards = list_shards(input_dir)
    if not shards:
        raise FileNotFoundError(f"no text shards in {input_dir}")
    text_paths = {s.path.name: s.path for s in shards}
    splits_of = {token_shard_name(s.path): s.split for s in shards}

    done: dict[str, dict] = {}
    manifest_path = output_dir / MANIFEST
    if manifest_path.is_file():
        old = read_manifest(output_dir)
        if old["vocab"]["sha256"] != info.sha256 or old["doc_separator"] != doc_separator:
            raise ValueError(
                f"{output_dir} holds tokens from another vocabulary or separator setting; "
                "use an empty output directory"
            )
        for entry in old["shards"]:
            name = entry["file"]
            out, src = output_dir / name, text_paths.get(entry["input_file"])
            if (
                name in splits_of
                and out.is_file()
                and src is not None
                and src.is_file()
                and sha256_file(out) == entry["sha256"]
                and sha256_file(src) == entry["input_sha256"]
            ):
                done[name] = {k: v for k, v in entry.items() if k != "split"}
        log.info("resuming: %d of %d shards already encoded", len(done), len(shards))

    todo = [s for s in shards if token_shard_name(s.path) not in done]
    jobs = [
        (str(s.path), str(output_dir / token_shard_name(s.path)), str(vocab_dir), doc_separator) for s in todo
    ]
    failures: list[str] = []

    def finished(job, entry=None, error=None):
        if error is not None:  # keep going: the other shards' work is kept and a rerun retries only this one
            log.error("encoding %s failed: %s", job[0], error)
            failures.append(f"{os.path.basename(job[0])}: {error}")
            return
        done[entry["file"]] = entry
        atomic.write_json(manifest_path, _manifest(info, doc_separator, done, splits_of))

    if workers <= 1:
        for job in jobs:
            try:
                entry = encode_shard(*job)
            except (OSError, ValueError, pa.ArrowException) as error:
                finished(job, error=error)
            else:
                finished(job, entry)
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = {pool.submit(encode_shard, *job): job for job in jobs}
            for future in as_completed(futures):
                error = future.exception()
                if error is not None and not isinstance(error, (OSError, ValueError, pa.ArrowException)):
                    raise error
                finished(futures[future], future.result() if error is None else None, error)
    if failures:
        raise RuntimeError(
            f"{len(failures)} of {len(shards)} shards could not be encoded (the others are "
            f"written and recorded; rerun to retry): " + "; ".join(failures)
        )
    manifest = _manifest(info, doc_separator, done, splits_of)
    atomic.write_json(manifest_path, manifest)
    return manifest
