"""Pre-trained distillation (Turc et al., "Well-Read Students Learn Better"): a student trains on the
same batches against a frozen teacher's soft targets.

    loss = alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T)) + (1 - alpha) * label loss

averaged over the target positions that carry a label (padding, -100, is left out). The T^2 keeps
the soft-target gradients on the scale of the label loss as T changes (Hinton et al.). The teacher
is any c4clean run directory (its newest checkpoint, else `final/`): it is loaded once, in eval
mode, with no gradients, and may have another shape than the student, but must share the
vocabulary (the sha256 of its SentencePiece model): logits over different vocabularies do not
compare. Both are compared on the vocabulary's ids only, not on padding rows of the embedding.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F

from c4clean.train.model import IGNORE_INDEX

TEACHER_INPUTS = ("input_ids", "decoder_input_ids", "attention_mask")  # never the labels


class DistillError(ValueError):
    """A teacher that cannot teach this run; the message says why."""


def check_settings(alpha: float, temperature: float) -> None:
    if not 0.0 <= alpha <= 1.0:
        raise DistillError(f"--distill-alpha must be in [0, 1], got {alpha}")
    if not temperature > 0:
        raise DistillError(f"--distill-temperature must be positive, got {temperature}")


def teacher_model_dir(run_dir: str | Path) -> Path:
    """The newest checkpoint of a run directory, else its `final/` model."""
    from c4clean.train.checkpoint import latest_checkpoint

    run_dir = Path(run_dir)
    found = latest_checkpoint(run_dir)
    if found is None and (run_dir / "final" / "config.json").is_file():
        found = run_dir / "final"
    if found is None:
        raise DistillError(f"teacher {run_dir} has no checkpoint and no final/ model")
    return found


def check_vocabulary(run_dir: str | Path, vocab: dict) -> None:
    """The teacher's run must have trained on the same vocabulary as this run's data."""
    path = Path(run_dir) / "run.json"
    try:
        teacher_vocab = json.loads(path.read_text())["vocab"]
    except (OSError, ValueError, KeyError) as e:
        raise DistillError(f"teacher {run_dir} is not a c4clean run directory (no readable {path})") from e
    if teacher_vocab.get("sha256") != vocab.get("sha256"):
        raise DistillError(
            f"teacher {run_dir} was trained with another vocabulary (sha256 "
            f"{str(teacher_vocab.get('sha256'))[:12]}… vs {str(vocab.get('sha256'))[:12]}… of the data): "
            "its logits do not compare; encode the data with the teacher's vocabulary"
        )


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    label_loss: torch.Tensor,
    alpha: float,
    temperature: float,
    vocab_size: int,
) -> torch.Tensor:
    """alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * label_loss, over labelled positions."""
    keep = labels != IGNORE_INDEX
    s = student_logits[keep][:, :vocab_size].float() / temperature
    t = teacher_logits[keep][:, :vocab_size].float() / temperature
    kl = F.kl_div(F.log_softmax(s, dim=-1), F.log_softmax(t, dim=-1), log_target=True, reduction="batchmean")
    return alpha * temperature**2 * kl + (1.0 - alpha) * label_loss


class Distiller:
    """The frozen teacher and the loss that mixes its soft targets with the labels."""

    def __init__(self, teacher: torch.nn.Module, alpha: float, temperature: float, vocab_size: int):
        check_settings(alpha, temperature)
        self.teacher = teacher.eval().requires_grad_(False)
        self.alpha, self.temperature, self.vocab_size = alpha, temperature, vocab_size

    @classmethod
    def load(cls, run_dir: str | Path, vocab: dict, alpha: float, temperature: float, device) -> "Distiller":
        """Check everything (settings, vocabulary, a model to load) before anything trains."""
        from c4clean.train.checkpoint import load_model_dir

        check_settings(alpha, temperature)
        check_vocabulary(run_dir, vocab)
        teacher = load_model_dir(teacher_model_dir(run_dir)).to(device)
        if teacher.cfg.vocab_size < int(vocab["vocab_size"]):
            raise DistillError(f"teacher {run_dir} has fewer embedding rows than the vocabulary has ids")
        return cls(teacher, alpha, temperature, int(vocab["vocab_size"]))

    def loss(self, student_out: dict, batch: dict) -> torch.Tensor:
        """The training loss of one batch, given the student's output (logits and label loss)."""
        with torch.no_grad():
            inputs = {k: v for k, v in batch.items() if k in TEACHER_INPUTS}
            teacher_logits = self.teacher(**inputs)["logits"]
        return distillation_loss(
            student_out["logits"],
            teacher_logits,
            batch["labels"],
            student_out["loss"],
            self.alpha,
            self.temperature,
            self.vocab_size,
        )
