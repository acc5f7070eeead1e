"""Memory-mapped token shards -> packed windows -> T5 span-corrupted batches (deterministic, resumable).

The corpus of a split is its documents in shard order then row order (text shards are sorted by URL),
each followed by nothing (as T5 did; `doc_separator="eos"` puts EOS after every document, as Hugging
Face and nanoT5 do). `max_tokens` keeps the first N tokens of that fixed order (the last document kept
may be cut short), so a size ablation's subsets are nested.

Training order, per epoch e (T5 packed documents from a shuffled stream): the kept documents are put
in a seeded pseudo-random order (a keyed Feistel permutation of (seed, e)), concatenated, and the
resulting stream, read as a ring, is cut into windows of `raw_length` tokens (568 for inputs of 512)
starting at a seeded offset in [0, raw_length): window boundaries move from epoch to epoch and no
document is adjacent to the same neighbours twice. The windows are visited in another keyed
permutation, in global batches of `batch_size * world_size` samples; the last windows that do not fill
a whole global batch are not used that epoch. Rank r takes the r-th slice of each global batch;
DataLoader workers take whole batches in turn. Sample `g` of epoch `e` is a pure function of
(seed, e, g), so the state to resume exactly is just (epoch, step). Without shuffling (validation) the
documents keep their order and windows start at 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from c4clean.hashing import splitmix64
from c4clean.tokenize.encode import TOKENS_COLUMN, read_manifest
from c4clean.tokenize.vocab import VocabInfo
from c4clean.train import objectives
from c4clean.train.data_options import DataOptions
from c4clean.train.span_corruption import combine, sample_keys

_FEISTEL_ROUNDS = 4
_DOC_ORDER, _WINDOW_OFFSET = 0x444F43, 0x4F4646  # key streams of the per-epoch document order / offset


@dataclass(frozen=True)
class EpochLayout:
    """The stream of one epoch: documents in `order`, `ends[j]` = end of the j-th one in the stream,
    windows starting at `offset`."""

    epoch: int
    order: np.ndarray
    ends: np.ndarray
    offset: int


def feistel_permute(index, n: int, key: int) -> np.ndarray:
    """A keyed bijection of [0, n): a balanced Feistel network on the next even bit width, with cycle
    walking."""
    index = np.asarray(index, dtype=np.uint64)
    if n <= 1:
        return index.copy()
    bits = max(2, (n - 1).bit_length())
    bits += bits % 2
    half = np.uint64(bits // 2)
    mask = np.uint64((1 << (bits // 2)) - 1)
    round_keys = [combine(np.uint64(key), np.uint64(r)) for r in range(_FEISTEL_ROUNDS)]

    def encrypt(x):
        left, right = x >> half, x & mask
        for round_key in round_keys:
            left, right = right, left ^ (splitmix64(right ^ round_key) & mask)
        return (left << half) | right

    out = encrypt(index)
    outside = out >= np.uint64(n)
    while outside.any():  # the domain is < 4n, so a few walks at most
        out[outside] = encrypt(out[outside])
        outside = out >= np.uint64(n)
    return out


class TokenCorpus:
    """The token shards of one split, memory-mapped: O(number of shards) to open, no token is read."""

    def __init__(self, token_dir: str | Path, split: str = "train"):
        self.token_dir = Path(token_dir)
        self.manifest = read_manifest(self.token_dir)
        if not self.manifest.get("complete", False):
            raise ValueError(
                f"{token_dir}: encoding is not complete; rerun `c4clean tokenize encode` to finish it"
            )
        self.vocab = VocabInfo.from_json(self.manifest["vocab"])
        self.split = split
        shards = [s for s in self.manifest["shards"] if s["split"] == split]
        if not shards:
            raise ValueError(
                f"{token_dir} has no shards of split {split!r} (splits: {sorted(self.manifest['splits'])})"
            )
        self._maps = []  # keep the memory maps open as long as the views live
        self._values: list[np.ndarray] = []
        self._list_arrays: list[pa.ListArray] = []
        starts, doc_starts = [0], [0]
        for shard in shards:
            source = pa.memory_map(str(self.token_dir / shard["file"]), "r")
            self._maps.append(source)
            reader = pa.ipc.open_file(source)
            for b in range(reader.num_record_batches):
                column = reader.get_batch(b).column(TOKENS_COLUMN)
                first, last = column.offsets[0].as_py(), column.offsets[-1].as_py()
                values = column.values.to_numpy(zero_copy_only=True)[first:last]
                if len(values) == 0:
                    continue
                self._values.append(values)
                self._list_arrays.append(column)
                starts.append(starts[-1] + len(values))
                doc_starts.append(doc_starts[-1] + len(column))
        self.segment_starts = np.asarray(starts, dtype=np.int64)  # token offset of each segment in the stream
        self.segment_doc_starts = np.asarray(doc_starts, dtype=np.int64)
        self.num_tokens = int(self.segment_starts[-1])
        self.num_documents = int(self.segment_doc_starts[-1])
        expected = sum(s["tokens"] for s in shards)
        if self.num_tokens != expected:
            raise ValueError(
                f"{token_dir}: shards hold {self.num_tokens} tokens, the manifest says {expected}"
            )

    def document_lengths(self) -> np.ndarray:
        """Tokens of every document, in stream order (int64, one entry per document)."""
        parts = [np.diff(self._doc_offsets(seg)) for seg in range(len(self._list_arrays))]
        return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)

    def read(self, start: int, length: int) -> np.ndarray:
        """Tokens [start, start + length) of the stream (a copy only of those tokens)."""
        if start < 0 or start + length > self.num_tokens:
            raise IndexError(
                f"window [{start}, {start + length}) outside the stream of {self.num_tokens} tokens"
            )
        seg = int(np.searchsorted(self.segment_starts, start, side="right")) - 1
        local = start - int(self.segment_starts[seg])
        values = self._values[seg]
        if local + length <= len(values):
            return values[local : local + length]
        parts, need = [], length
        while need:
            values = self._values[seg]
            piece = values[local : local + need]
            parts.append(piece)
            need -= len(piece)
            seg, local = seg + 1, 0
        return np.concatenate(parts)

    @property
    def num_tokens_with_separators(self) -> int:
        return self.num_tokens + self.num_documents

    def _doc_offsets(self, seg: int) -> np.ndarray:
        """Document boundaries of a segment relative to its values (zero-copy unless the batch is sliced)."""
        offsets = self._list_arrays[seg].offsets.to_numpy(zero_copy_only=True)
        return offsets if offsets[0] == 0 else offsets - offsets[0]


class T5SpanCorruptionDataset(IterableDataset):
    """Batches of T5 span-corrupted windows from a token directory (see the module docstring).

    Yields dicts of int64 tensors: `input_ids` (B, input_length), `labels` and `decoder_input_ids`
    (B, target_length); span corruption needs no padding, so no attention masks. `objective` picks
    another of the T5 paper's objectives (train/objectives.py); those whose rows differ in length add
    an `attention_mask` and pad labels with -100. `num_epochs=None` repeats forever.
    """

    def __init__(
        self,
        token_dir: str | Path,
        split: str = "train",
        *,
        input_length: int = 512,
        noise_density: float = 0.15,
        mean_noise_span_length: float = 3.0,
        batch_size: int = 128,
        seed: int = 0,
        shuffle: bool = True,
        max_tokens: int | None = None,
        doc_separator: str | None = None,
        rank: int | None = None,
        world_size: int | None = None,
        num_epochs: int | None = None,
        masking: str = "dynamic",
        objective: str = "random_spans",
    ):
        options = DataOptions(
            objective=objective,
            input_length=input_length,
            noise_density=noise_density,
            mean_noise_span_length=mean_noise_span_length,
            max_tokens=max_tokens,
            doc_separator=doc_separator,
            masking=masking,
        )
        options.validate()
        self.token_dir, self.split, self.masking, self.objective = Path(token_dir), split, masking, objective
        self.input_length, self.noise_density, self.mean_noise_span_length = (
            input_length,
            noise_density,
            mean_noise_span_length,
        )
        self.raw_length, self.target_length = options.lengths()
        self.batch_size, self.seed, self.shuffle, self.num_epochs = batch_size, seed, shuffle, num_epochs
        if rank is None or world_size is None:  # default: the torch.distributed process group, if any
            distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
            rank = rank if rank is not None else (torch.distributed.get_rank() if distributed else 0)
            world_size = (
                world_size
                if world_size is not None
                else (torch.distributed.get_world_size() if distributed else 1)
            )
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} not in [0, {world_size})")
        self.rank, self.world_size = rank, world_size
        corpus = TokenCorpus(token_dir, split)  # validates; reopened lazily in each worker
        self.vocab = corpus.vocab
        options.check_sentinels(self.vocab.extra_ids)
        stored = read_manifest(token_dir)["doc_separator"]
        if doc_separator == "eos" and stored == "eos":
            raise ValueError(
                "the token shards already end every document with EOS (encoded with --doc-separator eos)"
            )
        self.insert_separators = doc_separator == "eos"
        self.doc_separator = "eos" if self.insert_separators or stored == "eos" else "none"
        available = corpus.num_tokens_with_separators if self.insert_separators else corpus.num_tokens
        if max_tokens is not None and max_tokens > available:
            raise ValueError(f"max_tokens={max_tokens} exceeds the {available} tokens of split {split!r}")
        self.stream_tokens = available if max_tokens is None else max_tokens
        self.num_windows = self.stream_tokens // self.raw_length
        self.global_batch_size = batch_size * world_size
        self.batches_per_epoch = self.num_windows // self.global_batch_size
        if self.batches_per_epoch == 0:
            raise ValueError(
                f"{self.num_windows} windows of {self.raw_length} tokens cannot fill one global batch "
                f"of {self.global_batch_size}"
            )
        self._corpus: TokenCorpus | None = corpus
        self._docs: tuple[np.ndarray, np.ndarray] | None = None  # built on first use, in each worker
        self._layout: EpochLayout | None = None
        self._epoch, self._step = 0, 0

    # --- sizes, for the ablations ---
    @property
    def samples_per_epoch(self) -> int:
        """Samples actually used per epoch (whole global batches)."""
        return self.batches_per_epoch * self.global_batch_size

    def epochs_for(self, num_samples: int) -> float:
        """How many passes over this (sub)corpus `num_samples` training samples make: the repeats a budget
        implies."""
        return num_samples / self.samples_per_epoch

    # --- pickling for DataLoader workers: memory maps are reopened, not copied ---
    def __getstate__(self):
        state = self.__dict__.copy()
        state["_corpus"] = state["_docs"] = state["_layout"] = None
        return state

    @property
    def corpus(self) -> TokenCorpus:
        if self._corpus is None:
            self._corpus = TokenCorpus(self.token_dir, self.split)
        return self._corpus

    # --- documents and windows of an epoch ---
    def _documents(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(token start in the corpus, length in the stream incl. any inserted EOS, tokens of the corpus
        in it) of each kept document: those holding the first `stream_tokens` tokens, the last one cut
        to fit."""
        if self._docs is None:
            tokens = self.corpus.document_lengths()
            starts = np.concatenate([[0], np.cumsum(tokens)[:-1]]).astype(np.int64)
            lengths = tokens + int(self.insert_separators)
            stream_starts = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
            kept = int(np.searchsorted(stream_starts, self.stream_tokens, side="left"))
            lengths = lengths[:kept].copy()
            lengths[-1] -= int(stream_starts[kept]) - self.stream_tokens
            self._docs = (starts[:kept], lengths, np.minimum(tokens[:kept], lengths))
        return self._docs

    def epoch_layout(self, epoch: int) -> EpochLayout:
        """Document order and window offset of `epoch` (identity and 0 without shuffling)."""
        if self._layout is None or self._layout.epoch != epoch:
            _, lengths, _ = self._documents()
            order = np.arange(len(lengths), dtype=np.int64)
            offset = 0
            if self.shuffle:
                doc_key = int(combine(np.uint64(self.seed), np.uint64(_DOC_ORDER), np.uint64(epoch)))
                order = feistel_permute(order, len(order), doc_key).astype(np.int64)
                offset_key = combine(np.uint64(self.seed), np.uint64(_WINDOW_OFFSET), np.uint64(epoch))
                offset = int(offset_key % np.uint64(self.raw_length))
            ends = np.cumsum(lengths[order])
            self._layout = EpochLayout(epoch, order, ends, offset)
        return self._layout

    def window_pieces(self, window: int, epoch: int = 0) -> list[tuple[int, int, int]]:
        """(document, first position in it, length) of each piece of `window` of `epoch`, in order."""
        layout = self.epoch_layout(epoch)
        lengths = self._documents()[1]
        pos, need, pieces = (
            (layout.offset + int(window) * self.raw_length) % self.stream_tokens,
            self.raw_length,
            [],
        )
        while need:
            j = int(np.searchsorted(layout.ends, pos, side="right"))
            doc = int(layout.order[j])
            within = pos - (int(layout.ends[j]) - int(lengths[doc]))
            take = min(int(lengths[doc]) - within, need)
            pieces.append((doc, within, take))
            need -= take
            pos = (pos + take) % self.stream_tokens  # the stream is a ring: the end joins the start
        return pieces

    def window_index(self, epoch: int, positions) -> np.ndarray:
        """Window of each position of `epoch` (keyed permutation when shuffling)."""
        positions = np.asarray(positions, dtype=np.uint64)
        if not self.shuffle:
            return positions.astype(np.int64)
        key = int(combine(np.uint64(self.seed), np.uint64(0x5348), np.uint64(epoch)))
        return feistel_permute(positions, self.num_windows, key).astype(np.int64)

    def read_window(self, window: int, epoch: int = 0) -> np.ndarray:
        """Tokens of `window` of `epoch`."""
        starts, _, tokens = self._documents()
        out = np.empty(self.raw_length, dtype=np.int64)
        filled = 0
        for doc, within, take in self.window_pieces(window, epoch):
            real = max(0, min(take, int(tokens[doc]) - within))  # document tokens; the rest is its EOS
            out[filled : filled + real] = self.corpus.read(int(starts[doc]) + within, real)
            out[filled + real : filled + take] = self.vocab.eos_id
            filled += take
        return out

    def make_samples(self, epoch: int, positions) -> dict[str, np.ndarray]:
        """Samples at `positions` of `epoch` (numpy int64), regenerated from (seed, epoch, position) alone."""
        positions = np.asarray(positions, dtype=np.int64)
        window_ids = self.window_index(epoch, positions)
        static = self.masking == "static"
        # static masking: a window keeps its tokens (epoch 0's layout) and its mask in every epoch
        windows = np.stack([self.read_window(w, 0 if static else epoch) for w in window_ids])
        keys = sample_keys(self.seed, 0, window_ids) if static else sample_keys(self.seed, epoch, positions)
        setting = objectives.Setting(
            vocab_size=self.vocab.vocab_size,
            sp_pieces=self.vocab.sp_pieces,
            eos_id=self.vocab.eos_id,
            pad_id=self.vocab.pad_id,
            input_length=self.input_length,
            target_length=self.target_length,
            noise_density=self.noise_density,
            mean_noise_span_length=self.mean_noise_span_length,
        )
        batch = objectives.apply(self.objective, windows, keys, setting)
        batch["window"] = window_ids
        return batch

    def positions(self, step: int) -> np.ndarray:
        """Positions in the epoch of this rank's samples of global batch `step`."""
        first = step * self.global_batch_size + self.rank * self.batch_size
        return np.arange(first, first + self.batch_size, dtype=np.int64)

    def make_batch(self, epoch: int, step: int) -> dict[str, torch.Tensor]:
        samples = self.make_samples(epoch, self.positions(step))
        samples.pop("window")
        return {name: torch.from_numpy(array) for name, array in samples.items()}

    # --- iteration and resume ---
    def state_dict(self) -> dict:
        """Position of the next batch. Tracks iteration only with num_workers=0; use `make_loader`
        otherwise."""
        return {
            "epoch": self._epoch,
            "step": self._step,
            "seed": self.seed,
            "batches_per_epoch": self.batches_per_epoch,
            "rank": self.rank,
            "world_size": self.world_size,
        }

    def load_state_dict(self, state: dict) -> None:
        if state.get("batches_per_epoch", self.batches_per_epoch) != self.batches_per_epoch:
            raise ValueError(
                "state comes from a dataset with another number of batches per epoch "
                f"({state['batches_per_epoch']} vs {self.batches_per_epoch})"
            )
        if state.get("seed", self.seed) != self.seed:
            raise ValueError(f"state comes from seed {state['seed']}, this dataset has seed {self.seed}")
        self._epoch, self._step = int(state["epoch"]), int(state["step"])

    def _schedule(self):
        """(epoch, step) of every batch from the current position on."""
        epoch, step = self._epoch, self._step
        while self.num_epochs is None or epoch < self.num_epochs:
            yield epoch, step
            step += 1
            if step == self.batches_per_epoch:
                epoch, step = epoch + 1, 0

    def __iter__(self):
        worker = get_worker_info()
        workers, worker_id = (1, 0) if worker is None else (worker.num_workers, worker.id)
        for n, (epoch, step) in enumerate(self._schedule()):
            # batch n of this iteration goes to worker n % workers, the order DataLoader collects them in
            if n % workers != worker_id:
                continue
            batch = self.make_batch(epoch, step)
            if worker is None:
                self._epoch, self._step = (
                    (epoch, step + 1) if step + 1 < self.batches_per_epoch else (epoch + 1, 0)
                )
            yield batch


class ResumableLoader:
    """A DataLoader over a T5SpanCorruptionDataset that knows the position of the next batch it will hand
    out."""

    def __init__(
        self,
        dataset: T5SpanCorruptionDataset,
        *,
        num_workers: int = 2,
        pin_memory: bool = False,
        prefetch_factor: int | None = None,
    ):
        self.dataset = dataset
        self.num_workers, self.pin_memory, self.prefetch_factor = num_workers, pin_memory, prefetch_factor
        self._epoch, self._step = dataset._epoch, dataset._step

    def state_dict(self) -> dict:
        return {**self.dataset.state_dict(), "epoch": self._epoch, "step": self._step}

    def load_state_dict(self, state: dict) -> None:
        self.dataset.load_state_dict(state)
        self._epoch, self._step = self.dataset._epoch, self.dataset._step

    def __len__(self) -> int:
        return self.dataset.batches_per_epoch

    def __iter__(self):
        self.dataset.load_state_dict({"epoch": self._epoch, "step": self._step})
        kwargs = (
            {"prefetch_factor": self.prefetch_factor} if self.num_workers and self.prefetch_factor else {}
        )
        loader = DataLoader(
            self.dataset, batch_size=None, num_workers=self.num_workers, pin_memory=self.pin_memory, **kwargs
        )
        for batch in loader:
            self._step += 1
            if self._step == self.dataset.batches_per_epoch:
                self._epoch, self._step = self._epoch + 1, 0
            yield batch


def make_loader(
    token_dir: str | Path,
    split: str = "train",
    *,
    num_workers: int = 2,
    pin_memory: bool = False,
    **dataset_kwargs,
) -> ResumableLoader:
    """`ResumableLoader(T5SpanCorruptionDataset(token_dir, split, **dataset_kwargs))`."""
    return ResumableLoader(
        T5SpanCorruptionDataset(token_dir, split, **dataset_kwargs),
        num_workers=num_workers,
        pin_memory=pin_memory,
    )


def vocab_info(token_dir: str | Path) -> VocabInfo:
    """vocab_size (first sentinel = vocab_size - 1), pad/eos/unk ids of a token directory."""
    return VocabInfo.from_json(read_manifest(token_dir)["vocab"])
