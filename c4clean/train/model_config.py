"""T5 v1.1 shapes: the model configuration and its presets, without torch (so `--help` stays fast)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

# weight initialisations of `model.T5.reset_parameters`: Mesh TensorFlow's (T5's own) or Hugging Face's
INIT_STYLES = ("mesh_tf", "hf")
# self-attention kernels of `model.T5` (same function): SDPA with the position bias as a dense additive
# mask, or FlexAttention adding the bias inside the kernel (CUDA training only: no CPU backward)
ATTENTIONS = ("sdpa", "flex")


@dataclass(frozen=True)
class T5Config:
    vocab_size: int = 32128
    d_model: int = 512
    d_kv: int = 64
    d_ff: int = 1024
    num_layers: int = 8
    num_decoder_layers: int = 8
    num_heads: int = 6
    relative_attention_num_buckets: int = 32
    relative_attention_max_distance: int = 128
    dropout_rate: float = 0.0
    layer_norm_epsilon: float = 1e-6
    initializer_factor: float = 1.0
    pad_token_id: int = 0
    eos_token_id: int = 1
    decoder_start_token_id: int = 0

    @property
    def inner_dim(self) -> int:
        return self.num_heads * self.d_kv

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "T5Config":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown T5Config fields: {sorted(unknown)}")
        return cls(**d)

    def replace(self, **changes) -> "T5Config":
        return dataclasses.replace(self, **changes)


# Shapes from the T5 gin files (t5/models/gin/models/t5.1.1.*.gin); "tiny" is ours, for CPU tests.
PRESETS: dict[str, T5Config] = {
    "t5-v1_1-tiny": T5Config(d_model=128, d_kv=32, d_ff=256, num_layers=2, num_decoder_layers=2, num_heads=4),
    "t5-v1_1-small": T5Config(
        d_model=512, d_kv=64, d_ff=1024, num_layers=8, num_decoder_layers=8, num_heads=6
    ),
    "t5-v1_1-base": T5Config(
        d_model=768, d_kv=64, d_ff=2048, num_layers=12, num_decoder_layers=12, num_heads=12
    ),
    "t5-v1_1-large": T5Config(
        d_model=1024, d_kv=64, d_ff=2816, num_layers=24, num_decoder_layers=24, num_heads=16
    ),
}


def preset(name: str, **overrides) -> T5Config:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name].replace(**overrides)
