"""Tokens/s per core of `c4clean tokenize encode` against SentencePiece's own batch encode (the limit).

    python benchmarks/bench_encode.py [--text DIR] [--vocab DIR] [--repeat 8]

Without --text, it writes text shards from sample_data/wet repeated `--repeat` times; without --vocab it
trains an 8,000-piece vocabulary on them. One process, one SentencePiece thread: a per-core figure.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pyarrow as pa


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--text", type=Path)
    parser.add_argument("--vocab", type=Path)
    parser.add_argument("--repeat", type=int, default=8)
    parser.add_argument("--vocab-size", type=int, default=8000)
    args = parser.parse_args()

    from c4clean.formats import list_shards
    from c4clean.tokenize.encode import encode_shard
    from c4clean.tokenize.vocab import Vocabulary, train_vocab

    work = Path(tempfile.mkdtemp(prefix="bench_encode_"))
    text_dir = args.text
    if text_dir is None:
        from sample_text import write_sample_shards

        text_dir = write_sample_shards(work / "text", repeat=args.repeat)
    vocab_dir = args.vocab
    if vocab_dir is None:
        vocab_dir = work / "vocab"
        train_vocab(text_dir, vocab_dir, vocab_size=args.vocab_size, sample_bytes=20 << 20, num_threads=2)
    shard = list_shards(text_dir)[0].path
    with pa.memory_map(str(shard), "r") as source:
        texts = pa.ipc.open_file(source).read_all().column("text").to_pylist()
    text_bytes = sum(len(t.encode()) for t in texts)

    vocab = Vocabulary(vocab_dir)
    t0 = time.perf_counter()
    ids = vocab.processor.encode(texts, out_type=int, num_threads=1)
    limit_s = time.perf_counter() - t0
    tokens = sum(map(len, ids))

    out = work / "tokens"
    out.mkdir()
    t0 = time.perf_counter()
    entry = encode_shard(str(shard), str(out / shard.name), str(vocab_dir))
    ours_s = time.perf_counter() - t0
    assert entry["tokens"] == tokens

    print(
        f"shard: {len(texts)} documents, {text_bytes / 1e6:.1f} MB of text, {tokens} tokens, "
        f"vocab {vocab.info.sp_pieces} pieces"
    )
    print(
        f"sentencepiece batch encode (1 thread): {tokens / limit_s / 1e6:.2f} M tokens/s, "
        f"{text_bytes / limit_s / 1e6:.1f} MB/s"
    )
    print(
        f"c4clean encode_shard (1 process):      {tokens / ours_s / 1e6:.2f} M tokens/s, "
        f"{text_bytes / ours_s / 1e6:.1f} MB/s"
        f" ({ours_s / limit_s:.2f}x the limit's time; includes Arrow write and two sha256)"
    )


if __name__ == "__main__":
    main()
