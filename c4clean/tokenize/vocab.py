"""A T5-style SentencePiece vocabulary: unigram model, pad=0 / eos=1 / unk=2, no BOS, 100 sentinels on top.

The sentinels are not SentencePiece pieces: like seqio's `SentencePieceVocabulary(extra_ids=100)` and
Hugging Face's `T5Tokenizer(extra_ids=100)`, they are ids appended after the model's pieces, with
`<extra_id_0>` the highest id (32099 for a 32,000-piece model) counting down to `<extra_id_99>` (32000).
"""

from __future__ import annotations

import io
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from c4clean import atomic, formats
from c4clean.formats import VOCAB_INFO_FILE as INFO_FILE
from c4clean.formats import VOCAB_MODEL_FILE as MODEL_FILE
from c4clean.formats import list_shards, sha256_file
from c4clean.hashing import splitmix64
from c4clean.tokenize.shards import text_batches

log = logging.getLogger(__name__)

PAD_ID, EOS_ID, UNK_ID = 0, 1, 2
NUM_SENTINELS = 100
# SentencePiece silently skips longer "sentences"; we cut lines to this many characters instead of losing
# them.
MAX_LINE_CHARS = 4096
# SentencePiece holds the sample in memory (~20 bytes of RAM per byte of text) and trains at ~0.7 MB/s on 2
# threads: 100 MB is ~2 GB and a few minutes, and plenty for 32k pieces.
DEFAULT_SAMPLE_BYTES = 100_000_000
# A constant, not the machine's core count: the unigram EM sums per-thread statistics, so another thread count
# gives (slightly) another vocabulary.
DEFAULT_THREADS = 4


@dataclass(frozen=True)
class VocabInfo:
    """Everything a consumer needs without loading SentencePiece (stored as vocab.json, copied into token
    manifests)."""

    sp_pieces: int  # pieces in spiece.model (incl. pad/eos/unk)
    extra_ids: int  # sentinels appended on top
    vocab_size: int  # sp_pieces + extra_ids: the first sentinel is vocab_size - 1
    pad_id: int
    eos_id: int
    unk_id: int
    byte_fallback: bool
    sha256: str  # of spiece.model

    @property
    def first_sentinel_id(self) -> int:
        return self.vocab_size - 1

    def sentinel_id(self, i: int) -> int:
        """Id of `<extra_id_i>`."""
        if not 0 <= i < self.extra_ids:
            raise ValueError(f"sentinel index {i} out of range [0, {self.extra_ids})")
        return self.vocab_size - 1 - i

    @property
    def token_dtype(self) -> str:
        return "uint16" if self.vocab_size <= 1 << 16 else "uint32"

    def to_json(self) -> dict:
        return {**asdict(self), "first_sentinel_id": self.first_sentinel_id, "token_dtype": self.token_dtype}

    @classmethod
    def from_json(cls, obj: dict) -> "VocabInfo":
        return cls(**{k: obj[k] for k in cls.__dataclass_fields__})


class Vocabulary:
    """spiece.model + its sentinels. Encoding never produces sentinel ids: text `<extra_id_0>` stays text."""

    def __init__(self, directory: str | Path):
        import sentencepiece as spm

        directory = Path(directory)
        self.path = directory / MODEL_FILE
        if not self.path.is_file():
            raise FileNotFoundError(
                f"no {MODEL_FILE} in {directory} (train one with `c4clean tokenize train-vocab`)"
            )
        self.processor = spm.SentencePieceProcessor(model_file=str(self.path))
        info_path = directory / INFO_FILE
        extra_ids = json.loads(info_path.read_text())["extra_ids"] if info_path.is_file() else NUM_SENTINELS
        self.info = info_from_processor(self.processor, extra_ids, sha256_file(self.path))

    def encode(self, texts: list[str], num_threads: int = 1) -> list[list[int]]:
        return self.processor.encode(texts, out_type=int, num_threads=num_threads)

    def decode(self, ids) -> str:
        """Decode ids, writing sentinels as `<extra_id_i>` (as Hugging Face does)."""
        out, run = [], []
        for i in map(int, ids):
            if i >= self.info.sp_pieces:
                out.append(self.processor.decode(run))
                out.append(f"<extra_id_{self.info.vocab_size - 1 - i}>")
                run = []
            else:
                run.append(i)
        out.append(self.processor.decode(run))
        return "".join(out)


def info_from_processor(processor, extra_ids: int, sha256: str) -> VocabInfo:
    sp_pieces = processor.get_piece_size()
    byte_fallback = any(processor.is_byte(i) for i in range(sp_pieces))
    ids = (processor.pad_id(), processor.eos_id(), processor.unk_id(), processor.bos_id())
    if ids != (PAD_ID, EOS_ID, UNK_ID, -1):
        raise ValueError(f"not a T5-style model: pad/eos/unk/bos ids are {ids}, expected (0, 1, 2, -1)")
    return VocabInfo(
        sp_pieces, extra_ids, sp_pieces + extra_ids, PAD_ID, EOS_ID, UNK_ID, byte_fallback, sha256
    )


def corpus_text_bytes(input_dir: str | Path, split: str | None = "train") -> int:
    """UTF-8 bytes of text in the split, from the Arrow offsets alone (no text is read)."""
    total = 0
    for shard in list_shards(input_dir, split):
        for text in text_batches(shard.path):
            total += int(pc.sum(pc.binary_length(text)).as_py() or 0)
    return total


def sample_lines(
    input_dir: str | Path,
    sample_bytes: int,
    *,
    split: str | None = "train",
    seed: int = 0,
    stats: dict | None = None,
) -> Iterator[str]:
    """Lines of a deterministic random sample of documents, about `sample_bytes` of text, streamed.

    Each document is kept with probability sample_bytes / corpus bytes, decided by a hash of
    (seed, shard index in listing order, row), so the sample does not depend on batch boundaries or
    on how much was read before; it stops once `sample_bytes` have been yielded. Only one record
    batch is materialised at a time (shards are memory-mapped).
    """
    shards = list_shards(input_dir, split)
    if not shards:
        raise FileNotFoundError(
            f"no text shards{'' if split is None else f' of split {split!r}'} in {input_dir}"
        )
    total = corpus_text_bytes(input_dir, split)
    keep_probability = 1.0 if total <= sample_bytes else sample_bytes / total
    threshold = np.uint64(min(int(keep_probability * 2.0**64), 2**64 - 1))
    emitted = documents = 0
    for ordinal, shard in enumerate(shards):
        row0 = 0
        for text in text_batches(shard.path):
            rows = np.arange(row0, row0 + len(text), dtype=np.uint64)
            row0 += len(text)
            key = splitmix64(splitmix64(np.uint64(seed) ^ (np.uint64(ordinal) << np.uint64(40))) ^ rows)
            chosen = np.flatnonzero(key < threshold) if keep_probability < 1.0 else np.arange(len(text))
            if len(chosen) == 0:
                continue
            for doc in text.take(pa.array(chosen)).to_pylist():
                if not doc:
                    continue
                documents += 1
                for line in doc.split("\n"):
                    line = line.strip()
                    for start in range(0, len(line), MAX_LINE_CHARS):
                        piece = line[start : start + MAX_LINE_CHARS]
                        emitted += len(piece.encode("utf-8"))
                        yield piece
                if emitted >= sample_bytes:
                    break
            if emitted >= sample_bytes:
                break
        if emitted >= sample_bytes:
            break
    if stats is not None:
        stats.update(corpus_bytes=total, sampled_bytes=emitted, sampled_documents=documents)


def train_vocab(
    input_dir: str | Path,
    output_dir: str | Path,
    *,
    vocab_size: int = 32000,
    sample_bytes: int = DEFAULT_SAMPLE_BYTES,
    byte_fallback: bool = False,
    split: str | None = "train",
    seed: int = 0,
    num_threads: int = DEFAULT_THREADS,
    character_coverage: float = 0.9995,
) -> VocabInfo:
    """Train spiece.model the T5 way and write it with vocab.json and Hugging Face tokenizer files.

    Determinism: the sample is a pure function of (shards, sample_bytes, seed); SentencePiece gets it in
    order with its own sentence sampling/shuffling off (`input_sentence_size=0`) and its random generator
    seeded; the unigram EM merges per-thread statistics in thread order, so the result is the same bytes
    for any fixed `num_threads` (a different thread count changes the float sums, hence a few pieces).
    """
    import sentencepiece as spm

    if list_shards(input_dir, split) and corpus_text_bytes(input_dir, split) == 0:
        raise ValueError(
            f"{input_dir}: split {split!r} holds no text (0 pages, or only empty ones): "
            "nothing to train a vocabulary on"
        )
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    stats: dict = {}
    model = io.BytesIO()
    spm.set_random_generator_seed(seed)
    spm.SentencePieceTrainer.train(
        sentence_iterator=sample_lines(input_dir, sample_bytes, split=split, seed=seed, stats=stats),
        model_writer=model,
        model_type="unigram",
        vocab_size=vocab_size,
        pad_id=PAD_ID,
        eos_id=EOS_ID,
        unk_id=UNK_ID,
        bos_id=-1,
        pad_piece="<pad>",
        eos_piece="</s>",
        unk_piece="<unk>",
        byte_fallback=byte_fallback,
        character_coverage=character_coverage,
        input_sentence_size=0,  # we sampled already; SentencePiece's own sampling would need its seed too
        shuffle_input_sentence=False,
        max_sentence_length=4 * MAX_LINE_CHARS + 16,  # bytes; our lines are at most MAX_LINE_CHARS characters
        num_threads=num_threads,
        minloglevel=2,
    )
    atomic.write_bytes(output_dir / MODEL_FILE, model.getvalue())
    processor = spm.SentencePieceProcessor(model_proto=model.getvalue())
    info = info_from_processor(processor, NUM_SENTINELS, sha256_file(output_dir / MODEL_FILE))
    atomic.write_json(
        output_dir / INFO_FILE,
        {
            **info.to_json(),
            **formats.VOCAB.stamp(),
            "training": {
                "model_type": "unigram",
                "requested_vocab_size": vocab_size,
                "sample_bytes": sample_bytes,
                "split": split,
                "seed": seed,
                "num_threads": num_threads,
                "character_coverage": character_coverage,
                **stats,
            },
        },
    )
    # tokenizer.json (+ config, special tokens): AutoTokenizer.from_pretrained(output_dir) loads the
    # fast tokenizer without sentencepiece or protobuf
    from c4clean.tokenize.hf_tokenizer import write_tokenizer_files

    write_tokenizer_files(output_dir / MODEL_FILE, output_dir, info.extra_ids)
    log.info(
        "trained %d-piece vocabulary on %s bytes (%s documents)",
        info.sp_pieces,
        stats.get("sampled_bytes"),
        stats.get("sampled_documents"),
    )
    return info


def check_vocab_dir(directory: str | Path, sha256: str | None = None) -> VocabInfo:
    """The vocabulary of `directory` (spiece.model + vocab.json), checked to be the one whose
    spiece.model has `sha256` when given; ValueError / FileNotFoundError otherwise."""
    directory = Path(directory)
    if not (directory / MODEL_FILE).is_file() or not (directory / INFO_FILE).is_file():
        raise FileNotFoundError(
            f"{directory}: no {MODEL_FILE} + {INFO_FILE} (a `c4clean tokenize train-vocab` output)"
        )
    info = load_vocab_info(directory)
    found = sha256_file(directory / MODEL_FILE)
    if sha256 is not None and found != sha256:
        raise ValueError(f"{directory}/{MODEL_FILE} has sha256 {found}, the model was trained with {sha256}")
    return info


def load_vocab_info(directory: str | Path) -> VocabInfo:
    path = Path(directory) / INFO_FILE
    return VocabInfo.from_json(dict(formats.VOCAB.check(json.loads(path.read_text()), path)))


def load_hf_tokenizer(directory: str | Path):
    """The vocabulary as a Hugging Face tokenizer (needs transformers, which c4clean does not require):
    `AutoTokenizer.from_pretrained`, which reads tokenizer.json, so neither sentencepiece nor protobuf
    is involved (sentencepiece's protobuf module needs protobuf 7, Beam keeps 6). A vocabulary written
    before c4clean wrote tokenizer.json gets its tokenizer files first."""
    from transformers import AutoTokenizer

    from c4clean.tokenize.hf_tokenizer import write_tokenizer_files

    directory = Path(directory)
    if not (directory / "tokenizer.json").is_file():
        write_tokenizer_files(directory / MODEL_FILE, directory, load_vocab_info(directory).extra_ids)
    return AutoTokenizer.from_pretrained(str(directory))
