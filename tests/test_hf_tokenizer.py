"""Hugging Face tokenizer files: tokenizer.json built with `tokenizers` (no sentencepiece, no protobuf)
for vocab/ and for `c4clean export`, and a complete exported folder that transformers loads and runs."""

import json
import subprocess
import sys

import pytest
import torch

from c4clean.tokenize.hf_tokenizer import TOKENIZER_FILES, build_tokenizer, read_spiece
from c4clean.tokenize.vocab import Vocabulary, load_vocab_info

# transformers without sentencepiece and protobuf: the fast tokenizer must come from tokenizer.json alone
ISOLATED = """
import json, sys
for name in ("sentencepiece", "google", "google.protobuf"):
    sys.modules[name] = None
from transformers import AutoTokenizer
tok = AutoTokenizer.from_pretrained(sys.argv[1])
lines = json.loads(sys.stdin.read())
print(json.dumps([type(tok).__name__, tok(lines)["input_ids"]]))
"""


def _lines(sample_docs, n=3000):
    return [line for _, text in sample_docs for line in text.split("\n") if line.strip()][:n]


def test_pieces_scores_and_ids_match_sentencepiece(vocab_dir, sample_docs):
    vocab = Vocabulary(vocab_dir)
    sp, info = vocab.processor, vocab.info
    pieces, charsmap, byte_fallback = read_spiece((vocab_dir / "spiece.model").read_bytes())
    assert [p for p, _ in pieces] == [sp.id_to_piece(i) for i in range(sp.get_piece_size())]
    assert [s for _, s in pieces] == pytest.approx([sp.get_score(i) for i in range(len(pieces))])
    assert charsmap and byte_fallback is False
    tok = build_tokenizer((vocab_dir / "spiece.model").read_bytes(), info.extra_ids)
    assert tok.get_vocab_size() == info.vocab_size
    assert [tok.token_to_id(f"<extra_id_{i}>") for i in (0, 99)] == [
        info.sentinel_id(0),
        info.sentinel_id(99),
    ]
    lines = _lines(sample_docs)
    same = sum(tok.encode(line).ids == ids + [info.eos_id] for line, ids in zip(lines, vocab.encode(lines)))
    assert same >= 0.999 * len(lines)  # near-ties aside (see test_vocab)


def test_vocab_dir_loads_in_transformers_without_sentencepiece_or_protobuf(vocab_dir, sample_docs):
    pytest.importorskip("transformers")
    assert all((vocab_dir / name).is_file() for name in TOKENIZER_FILES)
    lines = _lines(sample_docs, 1000)
    out = subprocess.run(
        [sys.executable, "-c", ISOLATED, str(vocab_dir)],
        input=json.dumps(lines),
        capture_output=True,
        text=True,
        check=True,
    )
    name, ids = json.loads(out.stdout)
    assert name == "T5Tokenizer"  # transformers 5: the tokenizers-backed class
    expected = [x + [1] for x in Vocabulary(vocab_dir).encode(lines)]
    assert sum(a == b for a, b in zip(ids, expected)) >= 0.999 * len(lines)


def test_export_is_a_complete_hugging_face_folder(vocab_dir, tmp_path):
    transformers = pytest.importorskip("transformers")
    from click.testing import CliRunner

    from c4clean.cli import main
    from c4clean.train.checkpoint import save_model_dir
    from c4clean.train.model import T5, preset

    info = load_vocab_info(vocab_dir)
    torch.manual_seed(0)
    model = T5(preset("t5-v1_1-tiny", vocab_size=1024))
    save_model_dir(model, tmp_path / "run" / "final", {"vocab": info.to_json()})
    runner = CliRunner()
    args = ["export", "--input", str(tmp_path / "run"), "--output", str(tmp_path / "hf")]
    missing = runner.invoke(main, args)
    assert missing.exit_code == 2 and "--vocab" in missing.output
    result = runner.invoke(main, [*args, "--vocab", str(vocab_dir)])
    assert result.exit_code == 0, result.output
    names = {p.name for p in (tmp_path / "hf").iterdir()}
    assert {"config.json", "model.safetensors", "spiece.model", *TOKENIZER_FILES} <= names
    tok = transformers.AutoTokenizer.from_pretrained(str(tmp_path / "hf"))
    text = "The quick brown fox jumps over the lazy dog."
    assert tok(text).input_ids == Vocabulary(vocab_dir).encode([text])[0] + [1]
    hf = transformers.T5ForConditionalGeneration.from_pretrained(str(tmp_path / "hf")).eval()
    generated = hf.generate(**tok([text], return_tensors="pt"), max_new_tokens=5, do_sample=False)
    assert generated.shape[0] == 1 and 1 < generated.shape[1] <= 6
    # a vocabulary other than the run's is refused
    other = tmp_path / "other_vocab"
    other.mkdir()
    for f in vocab_dir.iterdir():
        (other / f.name).write_bytes(f.read_bytes())
    (other / "spiece.model").write_bytes((vocab_dir / "spiece.model").read_bytes() + b"\0")
    wrong = runner.invoke(main, [*args[:-1], str(tmp_path / "hf2"), "--vocab", str(other)])
    assert wrong.exit_code == 1 and "sha256" in wrong.output
