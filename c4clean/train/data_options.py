"""The loader's options: the one definition of what a run's `data_options` may hold, their defaults
and their checks. `c4clean train`, the trainer, the loader and the ablations all read them here.

A run stores only the options it set (`TrainConfig.data_options`, a dict); `DataOptions.from_dict`
fills in the defaults and checks the whole set before anything trains.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

MASKING = ("dynamic", "static")
DOC_SEPARATORS = (None, "none", "eos")


@dataclasses.dataclass(frozen=True)
class DataOptions:
    objective: str = "random_spans"  # one of train/objectives.py OBJECTIVES
    input_length: int = 512  # encoder length; the raw window and targets follow from the objective
    noise_density: float = 0.15
    mean_noise_span_length: float = 3.0
    max_tokens: int | None = None  # train on the first N tokens of the stream only
    doc_separator: str | None = None  # None: as encoded; "eos": EOS after every document at load time
    # dynamic: a new mask every epoch (key: seed, epoch, position); static: one mask per window for
    # the whole run (key: seed, window), as RoBERTa's static masking
    masking: str = "dynamic"

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return dataclasses.asdict(cls())

    @classmethod
    def from_dict(cls, options: Mapping[str, Any]) -> "DataOptions":
        """Options as a run stores them (only those set); raises ValueError on an unknown or bad one."""
        unknown = set(options) - set(cls.names())
        if unknown:
            raise ValueError(f"unknown data options {sorted(unknown)}; known: {', '.join(cls.names())}")
        opts = cls(**options)
        opts.validate()
        unused = sorted((set(options) & {"noise_density", "mean_noise_span_length"}) - opts.spec().options)
        if unused:
            raise ValueError(
                f"objective {opts.objective} does not use {', '.join(unused)} "
                f"(it uses: {', '.join(sorted(opts.spec().options)) or 'neither rate nor span length'})"
            )
        return opts

    def spec(self):
        from c4clean.train import objectives

        return objectives.get(self.objective)

    def validate(self) -> None:
        self.spec()  # an unknown objective raises here
        if self.input_length < 2:
            raise ValueError(f"input_length must be at least 2, got {self.input_length}")
        if not 0 < self.noise_density < 1:
            raise ValueError(f"noise_density must be in (0, 1), got {self.noise_density}")
        if self.mean_noise_span_length < 1:
            raise ValueError(f"mean_noise_span_length must be >= 1, got {self.mean_noise_span_length}")
        if self.max_tokens is not None and self.max_tokens <= 0:
            raise ValueError(f"max_tokens must be positive, got {self.max_tokens}")
        if self.doc_separator not in DOC_SEPARATORS:
            raise ValueError(f"doc_separator must be None, 'none' or 'eos', got {self.doc_separator!r}")
        if self.masking not in MASKING:
            raise ValueError(f"masking must be static or dynamic, not {self.masking!r}")

    def lengths(self) -> tuple[int, int]:
        """(raw window length, targets length) for inputs of `input_length` (568/114 for 512 with
        random spans; each objective's choice is in train/objectives.py)."""
        return self.spec().lengths(self.input_length, self.noise_density, self.mean_noise_span_length)

    def sentinels_needed(self) -> int:
        """The most sentinels one sample can use: the noise spans of a full window (random spans),
        the most runs i.i.d. noise can form (replace spans), 0 for the objectives without them."""
        from c4clean.train import objectives

        return objectives.max_sentinels(
            self.objective, self.input_length, self.noise_density, self.mean_noise_span_length
        )

    def check_sentinels(self, available: int) -> None:
        """ValueError when the objective needs more sentinels than the vocabulary has: the extra
        sentinel ids would count down into ordinary pieces and train on them silently."""
        needed = self.sentinels_needed()
        if needed > available:
            raise ValueError(
                f"{self.objective} with input_length {self.input_length}, noise_density "
                f"{self.noise_density} and mean_noise_span_length {self.mean_noise_span_length} "
                f"needs {needed} noise spans (one sentinel each), but the vocabulary has only "
                f"{available} sentinels: lower the noise density, raise the mean span length, or "
                f"shorten the inputs"
            )

    def tokens_per_sample(self, count: str) -> int:
        """Tokens one sample counts for a budget: `raw` corpus tokens read, encoder `inputs`, or
        `inputs+targets`."""
        raw, targets = self.lengths()
        per = {"raw": raw, "inputs": self.input_length, "inputs+targets": self.input_length + targets}
        if count not in per:
            raise ValueError(f"unknown token counting {count!r} (raw, inputs, inputs+targets)")
        return per[count]
