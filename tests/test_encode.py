import json
import os

import numpy as np
import pyarrow as pa
import pytest
import sentencepiece as spm
from click.testing import CliRunner

from c4clean.cli import main
from c4clean.formats import sha256_file
from c4clean.tokenize import encode as encode_module
from c4clean.tokenize.encode import encode_corpus, read_manifest
from c4clean.tokenize.vocab import train_vocab

# session fixtures (text shards, vocabulary, token shards) built once for all tokenizer/loader test modules


def _rows(path):
    with pa.memory_map(str(path), "r") as source:
        return pa.ipc.open_file(source).read_all().column("tokens").to_pylist()


def _texts(path):
    with pa.memory_map(str(path), "r") as source:
        return pa.ipc.open_file(source).read_all().column("text").to_pylist()


def test_rows_are_sentencepiece_ids_of_each_document(token_dir, text_shards, vocab_dir):
    sp = spm.SentencePieceProcessor(model_file=str(vocab_dir / "spiece.model"))
    manifest = read_manifest(token_dir)
    assert manifest["complete"] and manifest["doc_separator"] == "none"
    assert manifest["vocab"]["sha256"] == sha256_file(vocab_dir / "spiece.model")
    assert sorted(manifest["splits"]) == ["train", "validation"]
    for entry in manifest["shards"]:
        rows, texts = _rows(token_dir / entry["file"]), _texts(text_shards / entry["input_file"])
        assert rows == [sp.encode(t) for t in texts]
        assert entry["documents"] == len(rows) and entry["tokens"] == sum(map(len, rows))
        assert entry["sha256"] == sha256_file(token_dir / entry["file"])
    for split, total in manifest["splits"].items():
        entries = [e for e in manifest["shards"] if e["split"] == split]
        assert total["tokens"] == sum(e["tokens"] for e in entries) and total["shards"] == len(entries)


def test_shards_are_uncompressed_uint16_and_memory_map_without_copy(token_dir):
    path = token_dir / "train-00000-of-00003.arrow"
    before = pa.total_allocated_bytes()
    with pa.memory_map(str(path), "r") as source:
        table = pa.ipc.open_file(source).read_all()
        assert table.schema.field("tokens").type == pa.list_(pa.field("item", pa.uint16(), nullable=False))
        values = table.column("tokens").chunk(0).values.to_numpy(zero_copy_only=True)
        assert values.dtype == np.uint16 and not values.flags.owndata
        assert (
            pa.total_allocated_bytes() == before
        )  # compressed buffers would have to be decompressed into memory


def test_deterministic_across_worker_counts(text_shards, vocab_dir, token_dir, tmp_path):
    encode_corpus(text_shards, vocab_dir, tmp_path, workers=2)
    for entry in read_manifest(token_dir)["shards"]:
        assert sha256_file(tmp_path / entry["file"]) == entry["sha256"]
    assert (tmp_path / "manifest.json").read_bytes() == (token_dir / "manifest.json").read_bytes()


def test_resume_skips_finished_shards_and_redoes_damaged_ones(text_shards, vocab_dir, token_dir, tmp_path):
    out = tmp_path / "tok"
    encode_corpus(text_shards, vocab_dir, out)
    kept, damaged, missing = (out / f"train-0000{i}-of-00003.arrow" for i in range(3))
    os.utime(kept, ns=(1, 1))
    damaged.write_bytes(damaged.read_bytes()[:-10])
    missing.unlink()
    encode_corpus(text_shards, vocab_dir, out)
    assert kept.stat().st_mtime_ns == 1  # not rewritten
    assert (out / "manifest.json").read_bytes() == (token_dir / "manifest.json").read_bytes()
    for path in (damaged, missing):
        assert sha256_file(path) == sha256_file(token_dir / path.name)


def test_failure_leaves_no_partial_shard(text_shards, vocab_dir, tmp_path, monkeypatch):
    calls = {"n": 0}
    original = encode_module.Vocabulary.encode

    def failing(self, texts, num_threads=1):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("simulated crash")
        return original(self, texts, num_threads)

    monkeypatch.setattr(encode_module, "ENCODE_CHUNK_DOCS", 20)
    monkeypatch.setattr(encode_module.Vocabulary, "encode", failing)
    with pytest.raises(RuntimeError, match="simulated crash"):
        encode_corpus(text_shards, vocab_dir, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no shard, no temp file, no manifest yet


def test_eos_separator_and_vocabulary_check(text_shards, vocab_dir, token_dir, tmp_path):
    manifest = encode_corpus(text_shards, vocab_dir, tmp_path / "eos", doc_separator="eos")
    assert manifest["doc_separator"] == "eos"
    plain, with_eos = (
        _rows(token_dir / "validation-00000-of-00001.arrow"),
        _rows(tmp_path / "eos" / "validation-00000-of-00001.arrow"),
    )
    assert with_eos == [row + [1] for row in plain]
    other = tmp_path / "other_vocab"
    train_vocab(text_shards, other, vocab_size=300, sample_bytes=200_000)
    with pytest.raises(ValueError, match="another vocabulary"):
        encode_corpus(text_shards, other, tmp_path / "eos", doc_separator="eos")


def test_cli_encode(text_shards, vocab_dir, token_dir, tmp_path):
    result = CliRunner().invoke(
        main,
        [
            "tokenize",
            "encode",
            "--input",
            str(text_shards),
            "--vocab",
            str(vocab_dir),
            "--output",
            str(tmp_path),
            "--workers",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    totals = json.loads((token_dir / "manifest.json").read_text())["splits"]
    assert (
        f"train: 3 shards, {totals['train']['documents']} documents, {totals['train']['tokens']} tokens"
        in result.output
    )


def test_bad_shard_is_reported_and_the_others_are_kept(text_shards, vocab_dir, tmp_path):
    import shutil

    text = tmp_path / "text"
    shutil.copytree(text_shards, text)
    (text / "train-00001-of-00003.arrow").write_bytes(b"not an arrow file")
    out = tmp_path / "tok"
    with pytest.raises(RuntimeError, match="1 of 4 shards could not be encoded.*train-00001-of-00003.arrow"):
        encode_corpus(text, vocab_dir, out, workers=2)
    manifest = read_manifest(out)
    assert not manifest["complete"]
    assert sorted(e["file"] for e in manifest["shards"]) == [
        "train-00000-of-00003.arrow",
        "train-00002-of-00003.arrow",
        "validation-00000-of-00001.arrow",
    ]
    no_text = tmp_path / "no_text"
    no_text.mkdir()
    table = pa.table({"url": ["u"]})
    with (
        pa.OSFile(str(no_text / "train-00000-of-00001.arrow"), "wb") as sink,
        pa.ipc.new_file(sink, table.schema) as w,
    ):
        w.write_table(table)
    with pytest.raises(RuntimeError, match="no 'text' column"):
        encode_corpus(no_text, vocab_dir, tmp_path / "tok2")


def test_missing_shard_of_a_split_is_an_error(text_shards, vocab_dir, tmp_path):
    import shutil

    text = tmp_path / "text"
    shutil.copytree(text_shards, text)
    (text / "train-00001-of-00003.arrow").unlink()
    with pytest.raises(ValueError, match="incomplete"):
        encode_corpus(text, vocab_dir, tmp_path / "tok")


def test_large_vocabularies_use_uint32():
    from c4clean.tokenize.encode import _record_batch, token_schema
    from c4clean.tokenize.vocab import VocabInfo

    info = VocabInfo(
        sp_pieces=70000,
        extra_ids=100,
        vocab_size=70100,
        pad_id=0,
        eos_id=1,
        unk_id=2,
        byte_fallback=True,
        sha256="0" * 64,
    )
    schema = token_schema(info)
    batch = _record_batch(schema, [2, 0, 1], [np.array([69999, 3], np.uint32), np.array([65536], np.uint32)])
    assert schema.field("tokens").type.value_type == pa.uint32()
    assert batch.column(0).to_pylist() == [[69999, 3], [], [65536]]


def test_empty_shard_and_empty_documents(vocab_dir, tmp_path):
    # `c4clean run` writes a validation shard with no rows when no page hashes into it
    from tokens_testdata import SCHEMA

    text = tmp_path / "text"
    text.mkdir()
    for name, texts in (
        ("train-00000-of-00001.arrow", ["Some words here.", "", "More words."]),
        ("validation-00000-of-00001.arrow", []),
    ):
        n = len(texts)
        table = pa.table(
            {
                "url": [f"u{i}" for i in range(n)],
                "text": texts,
                "timestamp": ["t"] * n,
                "content_length": ["0"] * n,
                "language": ["en"] * n,
            },
            schema=SCHEMA,
        )
        with pa.OSFile(str(text / name), "wb") as sink, pa.ipc.new_file(sink, SCHEMA) as writer:
            writer.write_table(table)
    manifest = encode_corpus(text, vocab_dir, tmp_path / "tok", workers=1)
    assert manifest["splits"]["validation"] == {"shards": 1, "documents": 0, "tokens": 0}
    assert _rows(tmp_path / "tok" / "validation-00000-of-00001.arrow") == []
    rows = _rows(tmp_path / "tok" / "train-00000-of-00001.arrow")
    assert len(rows) == 3 and rows[1] == [] and rows[0] and rows[2]  # the empty document keeps its row
    train_entry = next(e for e in manifest["shards"] if e["split"] == "train")
    assert train_entry["empty_documents"] == 1
    with pytest.raises(ValueError, match="cannot fill one global batch"):
        from c4clean.train.data import T5SpanCorruptionDataset

        T5SpanCorruptionDataset(tmp_path / "tok", "validation", batch_size=1)
