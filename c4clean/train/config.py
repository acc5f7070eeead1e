"""`TrainConfig`: every training setting, its default (stated once: `c4clean train` reads them here)
and its checks. Free of torch, so `--help` stays fast."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from c4clean.train.data_options import DataOptions
from c4clean.train.model_config import ATTENTIONS, INIT_STYLES, PRESETS, T5Config

OPTIMIZERS = ("adafactor", "adamw")
PRECISIONS = ("auto", "fp32", "bf16")
# T5Config fields a run may override on top of a preset; the rest follow the vocabulary
MODEL_OVERRIDES = tuple(
    f.name
    for f in dataclasses.fields(T5Config)
    if f.name not in ("vocab_size", "pad_token_id", "eos_token_id", "decoder_start_token_id")
)
# max global gradient norm when --clip-grad-norm is not given: T5 did not clip with Adafactor;
# AdamW runs (nanoT5's recipe) clip at 1.0
DEFAULT_CLIP_GRAD_NORM = {"adafactor": 0.0, "adamw": 1.0}


class TrainingError(RuntimeError):
    """A run cannot start or continue; the message says why and what to do."""


@dataclass
class TrainConfig:
    data: str
    out: str
    preset: str = "t5-v1_1-small"
    model_overrides: dict = field(default_factory=dict)  # T5Config fields, e.g. {"num_layers": 4}
    steps: int = 10_000
    batch_size: int = 128  # sequences per optimizer step, over all ranks and accumulation steps
    grad_accum: int = 1
    optimizer: str = "adafactor"
    lr: float | None = None  # None: 0.01 (adafactor) / 1e-3 (adamw)
    warmup_steps: int = 10_000
    min_lr: float = 1e-5
    weight_decay: float = 0.0
    clip_grad_norm: float | None = None  # max global grad norm, 0 = off; None: DEFAULT_CLIP_GRAD_NORM
    z_loss: float = 1e-4  # Mesh TF's auxiliary z_loss x logsumexp(logits)^2 (0 = plain cross-entropy)
    init_style: str = "mesh_tf"  # weight initialisation: Mesh TF's (T5's) or "hf" (Hugging Face's)
    eval_every: int = 1000  # 0: no validation loss
    eval_batches: int = 20
    eval_batch_size: int | None = None  # None: the per-rank micro-batch
    save_every: int = 1000
    keep_checkpoints: int = 2  # 0: keep all
    log_every: int = 10
    seed: int = 0
    compile: bool = False
    attention: str = "sdpa"  # self-attention kernel (model_config.ATTENTIONS); "flex" needs CUDA
    precision: str = "auto"  # auto = bf16 on CUDA, fp32 on CPU; or "fp32" / "bf16"
    device: str | None = None  # default: cuda:LOCAL_RANK when available, else cpu
    resume: bool = False
    init: str | None = None  # start from a c4clean model directory or a Hugging Face T5 directory
    teacher: str | None = None  # a run directory: pre-trained distillation from it (train/distill.py)
    distill_alpha: float = 0.5  # weight of the teacher's soft targets; 1 - alpha for the labels
    distill_temperature: float = 2.0
    data_options: dict = field(default_factory=dict)  # DataOptions fields set, passed to the loader
    loader_workers: int | None = None  # DataLoader workers; default 4 on CUDA, 0 on CPU (cores train)
    cpu_threads: int | None = None  # torch threads on CPU; default: cores - loader workers - 1
    progress: bool = True
    world_size: int = 1  # filled in from the environment under torchrun

    def __post_init__(self) -> None:
        self.validate()

    @classmethod
    def defaults(cls) -> dict:
        """Default of every field that has one (the CLI's defaults)."""
        return dataclasses.asdict(cls(data="", out=""))

    @property
    def effective_clip_grad_norm(self) -> float:
        if self.clip_grad_norm is not None:
            return self.clip_grad_norm
        return DEFAULT_CLIP_GRAD_NORM[self.optimizer]

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    def validate(self) -> None:
        """TrainingError naming the first bad setting."""
        positive = ("steps", "batch_size", "grad_accum", "eval_batches", "save_every", "log_every")
        non_negative = ("warmup_steps", "eval_every", "keep_checkpoints", "weight_decay", "z_loss")
        for name in positive:
            _check(getattr(self, name) > 0, f"{name} must be positive, got {getattr(self, name)}")
        for name in non_negative:
            _check(getattr(self, name) >= 0, f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("lr", "eval_batch_size", "cpu_threads"):
            value = getattr(self, name)
            _check(value is None or value > 0, f"{name} must be positive, got {value}")
        _check(self.min_lr >= 0, f"min_lr must be >= 0, got {self.min_lr}")
        _check(
            self.clip_grad_norm is None or self.clip_grad_norm >= 0,
            f"clip_grad_norm must be >= 0 (0: off), got {self.clip_grad_norm}",
        )
        _check(self.loader_workers is None or self.loader_workers >= 0, "loader_workers must be >= 0")
        _check_choice("optimizer", self.optimizer, OPTIMIZERS)
        _check_choice("precision", self.precision, PRECISIONS)
        _check_choice("init_style", self.init_style, INIT_STYLES)
        _check_choice("attention", self.attention, ATTENTIONS)
        _check_choice("preset", self.preset, tuple(PRESETS))
        check_model_overrides(self.model_overrides)
        _check(0 <= self.distill_alpha <= 1, f"distill_alpha must be in [0, 1], got {self.distill_alpha}")
        _check(
            self.distill_temperature > 0,
            f"distill_temperature must be positive, got {self.distill_temperature}",
        )
        try:
            DataOptions.from_dict(self.data_options)
        except (ValueError, TypeError) as e:
            raise TrainingError(f"bad data option: {e}") from None


def check_model_overrides(overrides: dict) -> None:
    """Known T5Config fields with usable values (sizes and counts positive, rates in [0, 1))."""
    unknown = sorted(set(overrides) - set(MODEL_OVERRIDES))
    _check(not unknown, f"unknown model override(s) {unknown}; known: {', '.join(MODEL_OVERRIDES)}")
    for key, value in overrides.items():
        kind = type(getattr(T5Config(), key))
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        _check(ok and (kind is float or float(value).is_integer()), f"model {key} must be a {kind.__name__}")
        if key == "dropout_rate":
            _check(0 <= value < 1, f"model dropout_rate must be in [0, 1), got {value}")
        else:
            _check(value > 0, f"model {key} must be positive, got {value}")


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise TrainingError(message)


def _check_choice(name: str, value, choices: tuple) -> None:
    _check(value in choices, f"{name} must be one of {', '.join(choices)}, not {value!r}")
