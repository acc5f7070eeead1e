"""Memory-mapped token shards -> packed windows -> T5 span-corrupted batches (deterministic, resumable).

The corpus of a split is one stream of tokens: its documents in shard order then row order, concatenated
with no separator (as T5 did; `doc_separator="eos"` puts EOS after every document, as Hugging Face and
nanoT5 do). The stream is cut into windows of `raw_length` tokens (568 for inputs of 512); the tail shorter
than a window is not used, nor, in each epoch, the last windows of the shuffled order that do not fill a
whole global batch (other windows each epoch, as the order changes). Each epoch visits the windows in a
pseudo-random order (a keyed Feistel
permutation: no index array, any position computable alone), in global batches of
`batch_size * world_size` samples; rank r takes the r-th slice of each global batch; DataLoader workers
take whole batches in turn. Sample `g` of epoch `e` is a pure function of (seed, e, g), so the state to
resume exactly is just (epoch, step).
"""

from __future__ import annotations

import bisect
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from c4clean.tokenize.encode import TOKENS_COLUMN, read_manifest
from c4clean.tokenize.vocab import VocabInfo
from c4clean.train.data_options import DataOptions
from c4clean.train.span_corruption import combine, random_spans_helper, sample_keys, span_corrupt, splitmix64

_FEISTEL_ROUNDS = 4


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
        self._virtual_starts = self.segment_starts + self.segment_doc_starts  # segment starts with separators
        expected = sum(s["tokens"] for s in shards)
        if self.num_tokens != expected:
            raise ValueError(
                f"{token_dir}: shards hold {self.num_tokens} tokens, the manifest says {expected}"
            )

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

    # --- the stream with EOS after every document (virtual positions: tokens + documents before them) ---

    @property
    def num_tokens_with_separators(self) -> int:
        return self.num_tokens + self.num_documents

    def _doc_offsets(self, seg: int) -> np.ndarray:
        """Document boundaries of a segment relative to its values (zero-copy unless the batch is sliced)."""
        offsets = self._list_arrays[seg].offsets.to_numpy(zero_copy_only=True)
        return offsets if offsets[0] == 0 else offsets - offsets[0]

    def read_with_separators(self, start: int, length: int, eos_id: int) -> np.ndarray:
        """Positions [start, start + length) of the stream in which each document is followed by EOS."""
        if start < 0 or start + length > self.num_tokens_with_separators:
            raise IndexError(f"window [{start}, {start + length}) outside the stream")
        seg = int(np.searchsorted(self._virtual_starts, start, side="right")) - 1
        local = start - int(self._virtual_starts[seg])
        out = np.empty(length, dtype=self._values[0].dtype)
        filled = 0
        while filled < length:
            values, offsets = self._values[seg], self._doc_offsets(seg)
            docs = len(offsets) - 1
            # document k occupies virtual [offsets[k] + k, offsets[k + 1] + k], the last slot being its EOS
            doc = bisect.bisect_right(range(docs), local, key=lambda k: int(offsets[k]) + k) - 1
            while filled < length and doc < docs:
                in_doc = local - (int(offsets[doc]) + doc)
                begin, end = int(offsets[doc]) + in_doc, int(offsets[doc + 1])
                take = min(end - begin, length - filled)
                out[filled : filled + take] = values[begin : begin + take]
                filled += take
                if filled < length:
                    out[filled] = eos_id
                    filled += 1
                doc += 1
                local = int(offsets[doc]) + doc if doc < docs else 0
            seg, local = seg + 1, 0
        return out


class T5SpanCorruptionDataset(IterableDataset):
    """Batches of T5 span-corrupted windows from a token directory (see the module docstring).

    Yields dicts of int64 tensors: `input_ids` (B, input_length), `labels` and `decoder_input_ids`
    (B, target_length); no padding, so no attention masks are needed. `num_epochs=None` repeats forever.
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
    ):
        DataOptions(
            input_length, noise_density, mean_noise_span_length, max_tokens, doc_separator, masking
        ).validate()
        self.token_dir, self.split, self.masking = Path(token_dir), split, masking
        self.input_length, self.noise_density, self.mean_noise_span_length = (
            input_length,
            noise_density,
            mean_noise_span_length,
        )
        self.raw_length, self.target_length = random_spans_helper(
            input_length, noise_density, mean_noise_span_length
        )
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
        state["_corpus"] = None
        return state

    @property
    def corpus(self) -> TokenCorpus:
        if self._corpus is None:
            self._corpus = TokenCorpus(self.token_dir, self.split)
        return self._corpus

    # --- the sample function ---
    def window_index(self, epoch: int, positions) -> np.ndarray:
        positions = np.asarray(positions, dtype=np.uint64)
        if not self.shuffle:
            return positions.astype(np.int64)
        key = int(combine(np.uint64(self.seed), np.uint64(0x5348), np.uint64(epoch)))
        return feistel_permute(positions, self.num_windows, key).astype(np.int64)

    def read_window(self, window: int) -> np.ndarray:
        start = int(window) * self.raw_length
        if self.insert_separators:
            return self.corpus.read_with_separators(start, self.raw_length, self.vocab.eos_id)
        return self.corpus.read(start, self.raw_length)

    def make_samples(self, epoch: int, positions) -> dict[str, np.ndarray]:
        """Samples at `positions` of `epoch` (numpy int64), regenerated from (seed, epoch, position) alone."""
        positions = np.asarray(positions, dtype=np.int64)
        window_ids = self.window_index(epoch, positions)
        windows = np.stack([self.read_window(w) for w in window_ids])
        # static masking keys the noise by window, so a window keeps its mask in every epoch
        keys = (
            sample_keys(self.seed, 0, window_ids)
            if self.masking == "static"
            else sample_keys(self.seed, epoch, positions)
        )
        batch = span_corrupt(
            windows,
            keys,
            vocab_size=self.vocab.vocab_size,
            eos_id=self.vocab.eos_id,
            pad_id=self.vocab.pad_id,
            noise_density=self.noise_density,
            mean_noise_span_length=self.mean_noise_span_length,
        )
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
