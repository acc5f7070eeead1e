import json

import pytest
import sentencepiece as spm
from click.testing import CliRunner

from c4clean.cli import main
from c4clean.tokenize.vocab import (
    Vocabulary,
    corpus_text_bytes,
    load_hf_tokenizer,
    load_vocab_info,
    sample_lines,
    train_vocab,
)

# session fixtures (text shards, vocabulary, token shards) built once for all tokenizer/loader test modules


def test_t5_special_ids_and_sentinels(vocab_dir):
    from tokens_testdata import TEST_VOCAB_SIZE  # the size the fixture asked for

    sp = spm.SentencePieceProcessor(model_file=str(vocab_dir / "spiece.model"))
    assert (sp.pad_id(), sp.eos_id(), sp.unk_id(), sp.bos_id()) == (0, 1, 2, -1)
    assert [sp.id_to_piece(i) for i in range(3)] == ["<pad>", "</s>", "<unk>"]
    assert sp.get_piece_size() == TEST_VOCAB_SIZE
    info = load_vocab_info(vocab_dir)
    assert info.vocab_size == TEST_VOCAB_SIZE + 100
    assert info.sentinel_id(0) == info.first_sentinel_id == TEST_VOCAB_SIZE + 99
    assert info.sentinel_id(99) == TEST_VOCAB_SIZE
    assert not info.byte_fallback and info.token_dtype == "uint16"
    vocab = Vocabulary(vocab_dir)
    assert vocab.info == info
    assert (
        vocab.decode([info.sentinel_id(0), *sp.encode("hello"), info.sentinel_id(1)])
        == "<extra_id_0>hello<extra_id_1>"
    )


def test_sample_is_deterministic_bounded_and_seeded(text_shards):
    total = corpus_text_bytes(text_shards)
    budget = total // 4
    stats: dict = {}
    first = list(sample_lines(text_shards, budget, seed=1, stats=stats))
    assert first == list(sample_lines(text_shards, budget, seed=1))
    assert first != list(sample_lines(text_shards, budget, seed=2))
    sampled = sum(len(line.encode()) for line in first)
    assert sampled == stats["sampled_bytes"]
    # about a quarter of the documents, never much past the budget (it stops after the document that crosses
    # it)
    assert budget * 0.5 < sampled < budget + 100_000
    assert stats["corpus_bytes"] == total


def test_training_is_deterministic(text_shards, tmp_path):
    a = train_vocab(text_shards, tmp_path / "a", vocab_size=400, sample_bytes=400_000, num_threads=2)
    b = train_vocab(text_shards, tmp_path / "b", vocab_size=400, sample_bytes=400_000, num_threads=2)
    assert a.sha256 == b.sha256
    assert (tmp_path / "a" / "spiece.model").read_bytes() == (tmp_path / "b" / "spiece.model").read_bytes()


def test_byte_fallback_option(text_shards, tmp_path):
    info = train_vocab(text_shards, tmp_path, vocab_size=600, sample_bytes=400_000, byte_fallback=True)
    assert info.byte_fallback
    sp = spm.SentencePieceProcessor(model_file=str(tmp_path / "spiece.model"))
    text = "braces { } and 鿰"  # characters the sample does not cover
    ids = sp.encode(text)
    assert 2 not in ids  # no <unk>: unknown characters become byte pieces
    assert any(sp.is_byte(i) for i in ids)
    assert sp.decode(ids) == text


def _hf_tokenizer(cls, vocab_dir):
    load_hf_tokenizer(vocab_dir)  # tokenizer.json: neither sentencepiece nor protobuf needed
    return cls.from_pretrained(str(vocab_dir))


def test_hugging_face_t5_tokenizer_agrees(vocab_dir, sample_docs):
    transformers = pytest.importorskip("transformers")
    # in transformers 5.x T5TokenizerFast is T5Tokenizer (the Rust `tokenizers` backend); in 4.x both exist
    for cls in {transformers.T5Tokenizer, transformers.T5TokenizerFast}:
        _check_hf_agreement(_hf_tokenizer(cls, vocab_dir), vocab_dir, sample_docs)


def _check_hf_agreement(tok, vocab_dir, sample_docs):
    info = load_vocab_info(vocab_dir)
    assert len(tok) == info.vocab_size
    assert tok.convert_tokens_to_ids(["<pad>", "</s>", "<unk>"]) == [0, 1, 2]
    assert tok.convert_tokens_to_ids([f"<extra_id_{i}>" for i in range(100)]) == [
        info.sentinel_id(i) for i in range(100)
    ]
    assert (
        tok("a b")["input_ids"][-1] == 1
    )  # HF appends </s> by default; c4clean adds no EOS inside documents
    vocab = Vocabulary(vocab_dir)
    lines = [line for _, text in sample_docs for line in text.split("\n") if line.strip()]
    ours, theirs = vocab.encode(lines), tok(lines, add_special_tokens=False)["input_ids"]
    sp = vocab.processor

    def score(ids):
        return sum(sp.get_score(i) for i in ids)

    differing = [(line, a, b) for line, a, b in zip(lines, ours, theirs) if a != b]
    for line, a, b in differing:
        if "\x85" in line:
            # the one normalisation difference: HF maps U+0085 (NEL) to a space, SentencePiece does not
            continue
        # otherwise only exact ties ("66|6" vs "6|66"), which the two Viterbi implementations break
        # differently
        assert sp.decode(a) == sp.decode(b) and score(a) == pytest.approx(score(b), abs=1e-6)
    assert len(differing) <= 0.001 * len(lines)
    # Whole documents: SentencePiece sums Viterbi path scores in float32, so in a long document (a running
    # score of
    # ~1e5) near-ties between segmentations such as "0|36" and "03|6" fall to rounding, where the Rust Unigram
    # (float64) keeps the best path. c4clean encodes with SentencePiece, as seqio/T5 did.
    texts = [text for _, text in sample_docs]
    same_docs = sum(
        a == b for a, b in zip(vocab.encode(texts), tok(texts, add_special_tokens=False)["input_ids"])
    )
    assert same_docs >= 0.97 * len(texts)


def test_cli_train_vocab(text_shards, tmp_path):
    result = CliRunner().invoke(
        main,
        [
            "tokenize",
            "train-vocab",
            "--input",
            str(text_shards),
            "--output",
            str(tmp_path),
            "--vocab-size",
            "400",
            "--sample-bytes",
            "300000",
        ],
    )
    assert result.exit_code == 0, result.output
    info = json.loads((tmp_path / "vocab.json").read_text())
    assert (
        info["sp_pieces"] == 400 and info["vocab_size"] == 500 and info["training"]["sample_bytes"] == 300000
    )
    assert "<extra_id_0> = 499" in result.output
