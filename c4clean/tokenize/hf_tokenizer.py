"""Hugging Face tokenizer files for a c4clean vocabulary: `tokenizer.json` (the fast tokenizer, which
loads with neither sentencepiece nor protobuf), `tokenizer_config.json` and `special_tokens_map.json`.

`tokenizer.json` is built with the `tokenizers` library as transformers' own `T5Tokenizer` builds it
from a SentencePiece model: a Unigram model over the pieces and their scores (then the 100 sentinels
`<extra_id_99>` ... `<extra_id_0>`, so `<extra_id_0>` is the highest id), SentencePiece's precompiled
normalisation map, whitespace split + metaspace pre-tokenisation, and `</s>` appended to every
sequence. The pieces, scores and normalisation map are read from `spiece.model` directly (a few lines
of protobuf wire format), because sentencepiece's generated protobuf module needs a newer protobuf
than Apache Beam allows.
"""

from __future__ import annotations

import json
from pathlib import Path

from c4clean import atomic

SPECIAL_TOKENS = {"pad_token": "<pad>", "eos_token": "</s>", "unk_token": "<unk>"}
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
MODEL_MAX_LENGTH = 512


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _fields(buf: bytes):
    """(field number, wire type, value) of a protobuf message; length-delimited values as bytes."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos : pos + 8], pos + 8
        elif wire == 2:
            size, pos = _varint(buf, pos)
            value, pos = buf[pos : pos + size], pos + size
        elif wire == 5:
            value, pos = buf[pos : pos + 4], pos + 4
        else:
            raise ValueError(f"spiece.model: unsupported protobuf wire type {wire}")
        yield number, wire, value


def read_spiece(model: bytes) -> tuple[list[tuple[str, float]], bytes, bool]:
    """(pieces with scores in id order, precompiled normalisation map, byte fallback) of a
    SentencePiece ModelProto (sentencepiece_model.proto: pieces = 1, normalizer_spec = 3;
    SentencePiece: piece = 1, score = 2, type = 3 with BYTE = 6; NormalizerSpec:
    precompiled_charsmap = 2)."""
    import struct

    pieces, charsmap, byte_fallback = [], b"", False
    for number, wire, value in _fields(model):
        if number == 1 and wire == 2:
            piece, score, kind = "", 0.0, 1
            for n, w, v in _fields(value):
                if n == 1:
                    piece = v.decode("utf-8")
                elif n == 2 and w == 5:
                    score = struct.unpack("<f", v)[0]
                elif n == 3:
                    kind = v
            pieces.append((piece, float(score)))
            byte_fallback |= kind == 6
        elif number == 3 and wire == 2:
            charsmap = next((v for n, _, v in _fields(value) if n == 2), b"")
    if not pieces:
        raise ValueError("spiece.model holds no pieces: not a SentencePiece model")
    return pieces, charsmap, byte_fallback


def build_tokenizer(model: bytes, extra_ids: int):
    """A `tokenizers.Tokenizer` equivalent to transformers' T5Tokenizer for this SentencePiece model."""
    from tokenizers import AddedToken, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram

    pieces, charsmap, byte_fallback = read_spiece(model)
    sentinels = [f"<extra_id_{i}>" for i in range(extra_ids)]
    vocab = pieces + [(s, 0.0) for s in reversed(sentinels)]
    unk_id = next(i for i, (p, _) in enumerate(pieces) if p == SPECIAL_TOKENS["unk_token"])
    tok = Tokenizer(Unigram(vocab, unk_id=unk_id, byte_fallback=byte_fallback))
    if charsmap:
        tok.normalizer = normalizers.Precompiled(charsmap)
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.WhitespaceSplit(),
            pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True),
        ]
    )
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    specials = [*SPECIAL_TOKENS.values(), *sentinels]
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    eos = SPECIAL_TOKENS["eos_token"]
    tok.post_processor = processors.TemplateProcessing(
        single=["$A", eos], pair=["$A", eos, "$B", eos], special_tokens=[(eos, tok.token_to_id(eos))]
    )
    return tok


def tokenizer_config(extra_ids: int) -> dict:
    return {
        "tokenizer_class": "T5Tokenizer",
        "extra_ids": extra_ids,
        "additional_special_tokens": [f"<extra_id_{i}>" for i in range(extra_ids)],
        "model_max_length": MODEL_MAX_LENGTH,
        **SPECIAL_TOKENS,
    }


def write_tokenizer_files(model_path: str | Path, out_dir: str | Path, extra_ids: int) -> None:
    """Write TOKENIZER_FILES for `model_path` (spiece.model) into `out_dir` (atomically, each)."""
    out_dir = Path(out_dir)
    tok = build_tokenizer(Path(model_path).read_bytes(), extra_ids)
    atomic.write_text(out_dir / "tokenizer.json", tok.to_str(pretty=True) + "\n")
    config = tokenizer_config(extra_ids)
    atomic.write_text(out_dir / "tokenizer_config.json", json.dumps(config, indent=2) + "\n")
    specials = {**SPECIAL_TOKENS, "additional_special_tokens": config["additional_special_tokens"]}
    atomic.write_text(out_dir / "special_tokens_map.json", json.dumps(specials, indent=2) + "\n")
