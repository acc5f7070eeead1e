"""One evaluation loop: the mean loss of a model over batches, used by `train` (validation loss)
and by the ablations (scoring a run on a corpus)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterable

import torch

from c4clean.train.model import IGNORE_INDEX


@dataclass(frozen=True)
class EvalResult:
    loss_sum: float  # sum over batches of each batch's token-mean cross-entropy
    batches: int
    target_tokens: int

    @property
    def loss(self) -> float | None:
        """Mean of the batch losses (every batch has the same number of target tokens under span
        corruption), None when there was no batch."""
        return self.loss_sum / self.batches if self.batches else None


def evaluate_loss(
    model: torch.nn.Module,
    batches: Iterable[dict],
    *,
    device: torch.device,
    bf16: bool = False,
    max_batches: int | None = None,
) -> EvalResult:
    """Cross-entropy of `model` (eval mode, no grad, bf16 autocast if asked) over at most
    `max_batches` of `batches`; the model's train/eval mode is restored afterwards."""
    was_training = model.training
    model.eval()
    total = torch.zeros((), device=device, dtype=torch.float64)
    tokens = torch.zeros((), device=device, dtype=torch.int64)
    count = 0
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    try:
        with torch.no_grad(), autocast:
            for batch in batches:
                if max_batches is not None and count >= max_batches:
                    break
                batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
                total += model(**batch)["loss"].double()
                tokens += (batch["labels"] != IGNORE_INDEX).sum()
                count += 1
    finally:
        model.train(was_training)
    return EvalResult(total.item(), count, int(tokens.item()))
