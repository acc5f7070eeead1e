"""Every on-disk name, schema and format version of c4clean, in one place.

One versioning convention: each format has a `Format` whose id is `name/version`
(`c4clean-shards/1`), stored under the key `"format_version"` (VERSION_KEY) of the JSON document
that describes the output (manifest, vocab.json, config.json, state.pt, ablation.json).
`Format.check` reads it back and fails with a message naming the found and the expected id.
Documents written before this convention (`"format": "c4clean-t5-checkpoint/1"`,
`"format": "c4clean-tokens", "version": 1`, a plan's bare `"version": 1`) read as the same ids, so
existing outputs stay readable. (A text manifest's `"format"` is its shards' file format.)

One shard name for text and token shards: `{split}-{index:05d}-of-{count:05d}.{ext}`, `ext` one of
SHARD_FORMATS (text shards: `c4clean run --format`; token shards are always Arrow IPC). Five digits
is a minimum width, not a limit: a run with 100,000 or more shards writes six-digit names, and the
parser takes any width and any split name (`en`, `zh-cn`, `und-validation`, `train`).

Nothing here imports pyarrow at module level, so modules that only need names stay fast to import.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import re
from pathlib import Path
from typing import Any, Mapping, NamedTuple, Optional


class FormatError(ValueError):
    """An output of another format, or of a format version this code does not read."""


@dataclasses.dataclass(frozen=True)
class Format:
    name: str
    version: int

    @property
    def id(self) -> str:
        return f"{self.name}/{self.version}"

    def stamp(self) -> dict[str, str]:
        """The entry that declares this format in a JSON document: `{"format_version": id}`."""
        return {VERSION_KEY: self.id}

    def check(self, doc: Mapping[str, Any], where: str | os.PathLike) -> Mapping[str, Any]:
        """`doc` if it declares this format; else a FormatError naming found and expected ids."""
        found = format_of(doc, default_name=self.name)
        if found != self.id:
            raise FormatError(f"{where}: format {found!r}, expected {self.id!r}")
        return doc


VERSION_KEY = "format_version"


def format_of(doc: Mapping[str, Any], default_name: Optional[str] = None) -> Optional[str]:
    """The `name/version` id `doc` declares, reading the older spellings too (see module doc)."""
    if not isinstance(doc, Mapping):
        return None
    if VERSION_KEY in doc:
        return str(doc[VERSION_KEY])
    found = doc.get("format")
    if "version" in doc and (found is None or "/" not in str(found)):
        name = found if found is not None else default_name
        return f"{name}/{doc['version']}"
    return str(found) if found is not None and "/" in str(found) else None


# --- the formats ------------------------------------------------------------------------------
TEXT_SHARDS = Format("c4clean-shards", 1)  # `c4clean run` output: shards + manifest/stats/report
WORK = Format("c4clean-work", 2)  # per-input-file results under <output>/.work (for --resume)
# (2: `perfile.FileSummary`, counters nested {namespace: {name: n}})
VOCAB = Format("c4clean-vocab", 1)  # `c4clean tokenize train-vocab`: spiece.model + vocab.json
TOKENS = Format("c4clean-tokens", 1)  # `c4clean tokenize encode`: token shards + manifest
CHECKPOINT = Format("c4clean-t5-checkpoint", 1)  # model directories and training checkpoints
PLAN = Format("c4clean-ablation-plan", 1)  # `c4clean ablate`: ablation.json

# --- file and folder names --------------------------------------------------------------------
MANIFEST = "manifest.json"  # text and token outputs: written last, describes complete shards
STATS = "stats.json"  # text output: every counter
REPORT = "report.md"  # text output: the human-readable summary
DATA_DIR = "data"  # text output: the shards, apart from the metadata so readers take the folder whole
HISTOGRAMS_PNG = "histograms.png"  # text output: page-length histograms (pipelines/histograms.py)
DATASET_CARD = "README.md"  # text output: the Hugging Face dataset card (pipelines/dataset_card.py)
NEAR_DUP_AUDIT_FILE = "near_duplicates.jsonl"  # text output: one row per page near-dedup removed
OUTPUT_LOCK_FILE = ".c4clean.lock"  # text output: who runs into it (pid, host, start); see output_folder
SHARD_SIDECAR_SUFFIX = ".json"  # `<shard>.json` beside a staged shard: its manifest record
VOCAB_MODEL_FILE = "spiece.model"  # the name Hugging Face's T5Tokenizer looks for
VOCAB_INFO_FILE = "vocab.json"
MODEL_WEIGHTS_FILE = "model.safetensors"
MODEL_CONFIG_FILE = "config.json"
CHECKPOINT_STATE_FILE = "state.pt"
CHECKPOINT_CHECKSUMS_FILE = "checksums.json"  # sha256 of every other file of a model dir/checkpoint
CHECKPOINTS_DIR = "checkpoints"
CHECKPOINT_STEP_RE = re.compile(r"^step-(\d{8})$")
PLAN_FILE = "ablation.json"
PLAN_RUNS_DIR = "runs"
PLAN_STATE_DIR = "state"  # per-run completion markers + cached evaluations

TOKENS_COLUMN = "tokens"


def checkpoint_dir_name(step: int) -> str:
    return f"step-{step:08d}"


# --- shard names ------------------------------------------------------------------------------
SHARD_FORMATS = ("arrow", "parquet")  # each also its files' suffix
DEFAULT_SHARD_FORMAT = "arrow"
TOKEN_SHARD_FORMAT = "arrow"  # token shards are memory-mapped Arrow IPC whatever the text format
SHARD_NAME_RE = re.compile(
    r"^(?P<split>[^./][^/]*?)-(?P<index>\d+)-of-(?P<count>\d+)\.(?P<format>" + "|".join(SHARD_FORMATS) + r")$"
)


def shard_name(split: str, index: int, count: int, fmt: str = DEFAULT_SHARD_FORMAT) -> str:
    """`train-00003-of-00008.arrow`: the name of text and token shards alike."""
    if fmt not in SHARD_FORMATS:
        raise ValueError(f"shard format {fmt!r} is not one of {', '.join(SHARD_FORMATS)}")
    return f"{split}-{index:05d}-of-{count:05d}.{fmt}"


def shard_format(path: str | os.PathLike) -> str:
    """The format of a shard file, from its name."""
    match = SHARD_NAME_RE.match(os.path.basename(os.fspath(path)))
    if not match:
        raise ValueError(f"{path}: not a shard (named split-i-of-n.{{{','.join(SHARD_FORMATS)}}})")
    return match["format"]


def token_shard_name(text_shard: str | os.PathLike) -> str:
    """The token shard of a text shard: same split and index, Arrow IPC."""
    split, index, count = parse_shard_name(text_shard) or (None, 0, 0)
    if split is None:
        raise ValueError(f"{text_shard}: not a shard name")
    return shard_name(split, index, count, TOKEN_SHARD_FORMAT)


def parse_shard_name(name: str | os.PathLike) -> Optional[tuple[str, int, int]]:
    """(split, index, count) of a shard's file name or path; None for any other file."""
    match = SHARD_NAME_RE.match(os.path.basename(os.fspath(name)))
    if not match:
        return None
    return match["split"], int(match["index"]), int(match["count"])


class ShardFile(NamedTuple):
    path: Path
    split: str
    index: int
    count: int


def list_shards(
    directory: str | os.PathLike, split: Optional[str] = None, fmt: Optional[str] = None
) -> list[ShardFile]:
    """Every shard (of format `fmt`, or any) in a local `directory` (or its `data/`), in (split, index) order.

    A split whose shards are not exactly 0..n-1 is an error: a missing shard would silently drop
    data (and a split in two formats at once has its indices twice).
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"shard directory not found: {directory}")
    if (directory / DATA_DIR).is_dir():  # a `c4clean run` output folder: its shards are in data/
        directory = directory / DATA_DIR
    shards = []
    for path in directory.iterdir():
        parsed = parse_shard_name(path.name)
        if parsed and (fmt is None or path.suffix == "." + fmt) and (split is None or parsed[0] == split):
            shards.append(ShardFile(path, *parsed))
    shards.sort(key=lambda s: (s.split, s.index))
    by_split: dict[str, list[ShardFile]] = {}
    for shard in shards:
        by_split.setdefault(shard.split, []).append(shard)
    for name, group in by_split.items():
        counts = {s.count for s in group}
        if len(counts) != 1 or [s.index for s in group] != list(range(group[0].count)):
            raise ValueError(
                f"split {name!r} in {directory} is incomplete or inconsistent: have indices "
                f"{[s.index for s in group]} with shard counts {sorted(counts)}"
            )
    return shards


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    """The checksum manifests record for a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


# --- schemas ----------------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def text_schema():
    """Columns of a text shard (rows sorted by URL)."""
    import pyarrow as pa

    return pa.schema(
        [
            pa.field("url", pa.string(), nullable=False),
            pa.field("text", pa.string(), nullable=False),
            pa.field("timestamp", pa.string(), nullable=False),
            pa.field("content_length", pa.string(), nullable=False),
            pa.field("language", pa.string()),
            pa.field("normalized_url", pa.string(), nullable=False),
            pa.field("content_type", pa.string(), nullable=False),
        ]
    )


def token_schema(token_dtype: str, vocab_sha256: str):
    """One `list<uint16>` (or `uint32`) row per document; the vocabulary's sha256 in the metadata."""
    import pyarrow as pa

    value_type = pa.uint16() if token_dtype == "uint16" else pa.uint32()
    return pa.schema(
        [pa.field(TOKENS_COLUMN, pa.list_(pa.field("item", value_type, nullable=False)), nullable=False)],
        metadata={b"c4clean.vocab_sha256": vocab_sha256.encode()},
    )


@functools.lru_cache(maxsize=None)
def work_schema():
    """Columns of a per-input-file work file: staged pages with the per-page rule's verdict."""
    import pyarrow as pa

    return pa.schema(
        [
            ("url", pa.string()),
            ("text", pa.string()),
            ("timestamp", pa.string()),
            ("content_type", pa.string()),
            ("content_length", pa.string()),
            ("normalized_url", pa.string()),
            ("language", pa.string()),
            ("drop_namespace", pa.string()),
            ("drop_reason", pa.string()),
            ("counts", pa.string()),
        ]
    )
