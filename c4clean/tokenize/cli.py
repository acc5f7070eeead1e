"""`c4clean tokenize train-vocab` and `c4clean tokenize encode`."""

from __future__ import annotations

import os

import click

from c4clean.tokenize.vocab import DEFAULT_SAMPLE_BYTES, DEFAULT_THREADS, train_vocab

text_shards_input = click.option(
    "--input",
    "input_dir",
    required=True,
    type=click.Path(exists=True, file_okay=False),
    help="Directory of text shards written by `c4clean run`.",
)


@click.group()
def tokenize() -> None:
    """SentencePiece vocabulary (T5-style) and token shards for training."""


@tokenize.command("train-vocab")
@text_shards_input
@click.option(
    "--output",
    "output_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Directory for spiece.model, vocab.json and the Hugging Face tokenizer config.",
)
@click.option(
    "--vocab-size", default=32000, show_default=True, help="SentencePiece pieces (100 sentinels come on top)."
)
@click.option(
    "--sample-bytes",
    default=DEFAULT_SAMPLE_BYTES,
    show_default=True,
    help="Bytes of text sampled for training (SentencePiece needs ~20x this in RAM).",
)
@click.option(
    "--byte-fallback/--no-byte-fallback",
    default=False,
    show_default=True,
    help="Byte pieces for unknown characters (T5's own vocabulary has none).",
)
@click.option("--split", default="train", show_default=True, help="Split to sample from.")
@click.option("--seed", default=0, show_default=True)
@click.option(
    "--threads",
    default=DEFAULT_THREADS,
    show_default=True,
    help="SentencePiece training threads; the result is deterministic for a given thread count.",
)
@click.option("--character-coverage", default=0.9995, show_default=True)
def train_vocab_command(
    input_dir, output_dir, vocab_size, sample_bytes, byte_fallback, split, seed, threads, character_coverage
) -> None:
    """Train a T5-style unigram SentencePiece vocabulary on a deterministic sample of the text shards."""
    try:
        info = train_vocab(
            input_dir,
            output_dir,
            vocab_size=vocab_size,
            sample_bytes=sample_bytes,
            byte_fallback=byte_fallback,
            split=split,
            seed=seed,
            num_threads=threads,
            character_coverage=character_coverage,
        )
    except (FileNotFoundError, ValueError) as error:
        raise click.ClickException(str(error)) from error
    click.echo(
        f"{output_dir}: {info.sp_pieces} pieces + {info.extra_ids} sentinels = {info.vocab_size} ids "
        f"(<extra_id_0> = {info.first_sentinel_id}), sha256 {info.sha256[:12]}"
    )


@tokenize.command("encode")
@text_shards_input
@click.option(
    "--vocab",
    "vocab_dir",
    required=True,
    type=click.Path(exists=True, file_okay=False),
    help="Directory written by `c4clean tokenize train-vocab`.",
)
@click.option("--output", "output_dir", required=True, type=click.Path(file_okay=False))
@click.option("--workers", default=os.cpu_count() or 1, show_default="all cores", help="Parallel processes.")
@click.option(
    "--doc-separator",
    type=click.Choice(["none", "eos"]),
    default="none",
    show_default=True,
    help="Append EOS to every document (HF/nanoT5 style); T5 itself used none.",
)
def encode_command(input_dir, vocab_dir, output_dir, workers, doc_separator) -> None:
    """Encode every text shard into a token shard (resumable: finished shards are skipped)."""
    from c4clean.tokenize.encode import encode_corpus

    try:
        manifest = encode_corpus(
            input_dir, vocab_dir, output_dir, workers=workers, doc_separator=doc_separator
        )
    except (FileNotFoundError, ValueError, RuntimeError) as error:
        raise click.ClickException(str(error)) from error
    for split, total in sorted(manifest["splits"].items()):
        click.echo(
            f"{split}: {total['shards']} shards, {total['documents']} documents, {total['tokens']} tokens"
        )
