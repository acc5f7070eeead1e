"""T5 v1.1 encoder-decoder in plain PyTorch.

Architecture as Mesh TensorFlow / Hugging Face T5 v1.1: pre-norm blocks with scale-only RMSNorm
(computed in float32), gated-GELU feed-forward (tanh GELU, HF "gated-gelu"), unscaled attention logits
(the 1/sqrt(d_kv) lives in the initialisation of q), a learned relative position bias owned by the first
layer of each stack and shared by the others (bidirectional in the encoder, causal buckets in the
decoder, none in cross-attention), an input embedding shared by both stacks and an untied lm_head with
no output rescaling.

Speed choices that do not change the function: q/k/v (self-attention) and k/v (cross-attention) are
fused into one projection each, the two GEGLU input projections into one, and attention runs through
`scaled_dot_product_attention` with the position bias (+ masks) as one additive float mask per stack
(or, with `attention="flex"`, self-attention through FlexAttention, which adds the bias inside the
kernel instead of reading a dense mask). `c4clean.train.hf_export` splits the fused weights back into
Hugging Face's names.
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from c4clean.train.model_config import (  # noqa: F401 - re-exported
    ATTENTIONS,
    INIT_STYLES,
    PRESETS,
    T5Config,
    preset,
)

IGNORE_INDEX = -100  # label value excluded from the loss (as Hugging Face)


def relative_position_bucket(
    relative_position: torch.Tensor, bidirectional: bool, num_buckets: int, max_distance: int
) -> torch.Tensor:
    """Bucket of `key_pos - query_pos`: half the buckets exact, the rest log-spaced up to max_distance.

    Bidirectional splits the buckets between the two signs; the causal (decoder) variant only
    distinguishes distances to earlier keys and maps every later key to bucket 0 (it is masked anyway).
    """
    buckets = torch.zeros_like(relative_position)
    if bidirectional:
        num_buckets //= 2
        buckets = buckets + (relative_position > 0).long() * num_buckets
        distance = relative_position.abs()
    else:
        distance = (-relative_position).clamp(min=0)
    max_exact = num_buckets // 2
    # clamp(min=1) only keeps log() finite for the exact range, where the value is not used
    log_ratio = torch.log(distance.clamp(min=1).float() / max_exact) / math.log(max_distance / max_exact)
    large = (max_exact + (log_ratio * (num_buckets - max_exact)).long()).clamp(max=num_buckets - 1)
    return buckets + torch.where(distance < max_exact, distance, large)


class RMSNorm(nn.Module):
    """Scale-only RMS norm, always computed in float32 (T5LayerNorm)."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.rms_norm(x.float(), (x.shape[-1],), self.weight.float(), self.eps)
        # half-precision weights mean a half-precision model: return its dtype; otherwise float32
        return out.to(self.weight.dtype) if self.weight.dtype in (torch.float16, torch.bfloat16) else out


def _project(x: torch.Tensor, weight: torch.Tensor, parts: int) -> tuple[torch.Tensor, ...]:
    """`parts` projections stored as one fused weight. On CUDA one GEMM then strided views (fewer,
    larger kernels); on CPU one GEMM per contiguous row block of the weight, so that every output (and
    every gradient) is contiguous: strided element-wise ops and the copies they force made the fused
    form slower than separate projections there."""
    if x.is_cuda:
        return F.linear(x, weight).chunk(parts, dim=-1)
    return tuple(F.linear(x, w) for w in weight.chunk(parts, dim=0))


class SelfAttention(nn.Module):
    def __init__(self, cfg: T5Config):
        super().__init__()
        self.h, self.dk = cfg.num_heads, cfg.d_kv
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.inner_dim, bias=False)
        self.o = nn.Linear(cfg.inner_dim, cfg.d_model, bias=False)
        self.dropout = cfg.dropout_rate

    def forward(self, x: torch.Tensor, mask: "torch.Tensor | FlexBias") -> torch.Tensor:
        b, n, _ = x.shape
        q, k, v = (t.view(b, n, self.h, self.dk).transpose(1, 2) for t in _project(x, self.qkv.weight, 3))
        if isinstance(mask, FlexBias):
            out = mask.attend(q, k, v)
        else:
            out = F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, scale=1.0, dropout_p=self.dropout if self.training else 0.0
            )
        return self.o(out.transpose(1, 2).reshape(b, n, self.h * self.dk))


# FlexAttention's kernels work in 128-wide blocks; lengths that are not a multiple of it have given
# NaN gradients (pytorch/pytorch#153799) and reads past the end of captured tensors (score_mod is called
# on the padding of the last block): `FlexBias` pads everything to whole blocks instead
FLEX_BLOCK = 128
# FlexAttention's kernel options (tiles, stages, warps) on CUDA; None = its own defaults, the measured
# configuration of README "Trainer on GPU". benchmarks/bench_train_gpu.py --flex-tiles sets candidates.
FLEX_KERNEL_OPTIONS: dict | None = None


@dataclass
class FlexBias:
    """Self-attention of one stack through FlexAttention: the learned position bias [H, Lq, Lk] (its
    gradient flows back into the bucket table), the causal flag and the key padding [B, Lk] (True =
    real token) are applied to each score inside the fused kernel, so no [B, H, Lq, Lk] mask is
    materialised, read, or (for the bias gradient) written. Built by `of`, which pads the bias and the
    key padding to whole blocks; `attend` pads q, k, v to match, masks the padded keys and drops the
    padded queries' rows (the 114-token decoder runs as 128: 12% more of a small part of the step)."""

    bias: torch.Tensor
    causal: bool
    keep: torch.Tensor | None

    @classmethod
    def of(cls, bias: torch.Tensor, causal: bool, keep: torch.Tensor | None) -> "FlexBias":
        q_len, k_len = bias.shape[-2:]
        pad_q, pad_k = -q_len % FLEX_BLOCK, -k_len % FLEX_BLOCK
        bias = F.pad(bias, (0, pad_k, 0, pad_q)).contiguous()
        return cls(bias, causal, None if keep is None else F.pad(keep, (0, pad_k), value=False))

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        bias, causal, keep = self.bias, self.causal, self.keep
        q_len, k_len = q.shape[-2], k.shape[-2]
        q, k, v = (_pad_rows(t) for t in (q, k, v))
        padded_keys = keep is None and k.shape[-2] != k_len

        def score_mod(score, b, h, q_idx, kv_idx):
            score = score + bias[h, q_idx, kv_idx]
            if causal:
                score = torch.where(q_idx >= kv_idx, score, -float("inf"))
            if keep is not None:
                score = torch.where(keep[b, kv_idx], score, -float("inf"))
            elif padded_keys:
                score = torch.where(kv_idx < k_len, score, -float("inf"))
            return score

        options = FLEX_KERNEL_OPTIONS if q.is_cuda else None
        out = _flex_attention(q.device)(q, k, v, score_mod=score_mod, scale=1.0, kernel_options=options)
        return out[:, :, :q_len]


def _pad_rows(t: torch.Tensor) -> torch.Tensor:
    """`t` [..., L, D] with zero rows up to whole FlexAttention blocks (itself when already whole)."""
    pad = -t.shape[-2] % FLEX_BLOCK
    return F.pad(t, (0, 0, 0, pad)) if pad else t


def _flex_attention(device: torch.device):
    """FlexAttention as one fused kernel on CUDA (inside a compiled model the surrounding
    torch.compile fuses it; in an eager one it is compiled on its own). Elsewhere (CPU tests of the
    forward; it has no CPU backward) the unfused reference, which gives the same values."""
    from torch.nn.attention.flex_attention import flex_attention

    if device.type == "cuda":
        return flex_attention if torch.compiler.is_compiling() else _compiled_flex()

    def reference(*args, **kwargs):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "called without torch.compile"
            return flex_attention(*args, **kwargs)

    return reference


@functools.cache
def _compiled_flex():
    from torch.nn.attention.flex_attention import flex_attention

    return torch.compile(flex_attention, dynamic=False)


class CrossAttention(nn.Module):
    def __init__(self, cfg: T5Config):
        super().__init__()
        self.h, self.dk = cfg.num_heads, cfg.d_kv
        self.q = nn.Linear(cfg.d_model, cfg.inner_dim, bias=False)
        self.kv = nn.Linear(cfg.d_model, 2 * cfg.inner_dim, bias=False)
        self.o = nn.Linear(cfg.inner_dim, cfg.d_model, bias=False)
        self.dropout = cfg.dropout_rate

    def forward(self, x: torch.Tensor, memory: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        b, n, _ = x.shape
        m = memory.shape[1]
        q = self.q(x).view(b, n, self.h, self.dk).transpose(1, 2)
        k, v = (t.view(b, m, self.h, self.dk).transpose(1, 2) for t in _project(memory, self.kv.weight, 2))
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, scale=1.0, dropout_p=self.dropout if self.training else 0.0
        )
        return self.o(out.transpose(1, 2).reshape(b, n, self.h * self.dk))


class GatedGeluFFN(nn.Module):
    def __init__(self, cfg: T5Config):
        super().__init__()
        self.wi = nn.Linear(cfg.d_model, 2 * cfg.d_ff, bias=False)  # [wi_0 (gate); wi_1 (linear)]
        self.wo = nn.Linear(cfg.d_ff, cfg.d_model, bias=False)
        self.dropout = nn.Dropout(cfg.dropout_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, lin = _project(x, self.wi.weight, 2)
        return self.wo(self.dropout(F.gelu(gate, approximate="tanh") * lin))


class EncoderLayer(nn.Module):
    def __init__(self, cfg: T5Config):
        super().__init__()
        self.attn_norm = RMSNorm(cfg.d_model, cfg.layer_norm_epsilon)
        self.attn = SelfAttention(cfg)
        self.ffn_norm = RMSNorm(cfg.d_model, cfg.layer_norm_epsilon)
        self.ffn = GatedGeluFFN(cfg)
        self.dropout = nn.Dropout(cfg.dropout_rate)

    def forward(self, x, mask):
        x = x + self.dropout(self.attn(self.attn_norm(x), mask))
        return x + self.dropout(self.ffn(self.ffn_norm(x)))


class DecoderLayer(nn.Module):
    def __init__(self, cfg: T5Config):
        super().__init__()
        self.self_attn_norm = RMSNorm(cfg.d_model, cfg.layer_norm_epsilon)
        self.self_attn = SelfAttention(cfg)
        self.cross_attn_norm = RMSNorm(cfg.d_model, cfg.layer_norm_epsilon)
        self.cross_attn = CrossAttention(cfg)
        self.ffn_norm = RMSNorm(cfg.d_model, cfg.layer_norm_epsilon)
        self.ffn = GatedGeluFFN(cfg)
        self.dropout = nn.Dropout(cfg.dropout_rate)

    def forward(self, x, self_mask, memory, cross_mask):
        x = x + self.dropout(self.self_attn(self.self_attn_norm(x), self_mask))
        x = x + self.dropout(self.cross_attn(self.cross_attn_norm(x), memory, cross_mask))
        return x + self.dropout(self.ffn(self.ffn_norm(x)))


class Stack(nn.Module):
    """Encoder or decoder stack; owns the (shared) relative position bias table."""

    def __init__(self, cfg: T5Config, is_decoder: bool):
        super().__init__()
        self.cfg, self.is_decoder = cfg, is_decoder
        self.attention = "sdpa"  # the self-attention kernel (T5.use_attention)
        self.relative_attention_bias = nn.Embedding(cfg.relative_attention_num_buckets, cfg.num_heads)
        n = cfg.num_decoder_layers if is_decoder else cfg.num_layers
        layer = DecoderLayer if is_decoder else EncoderLayer
        self.layers = nn.ModuleList(layer(cfg) for _ in range(n))
        self.final_norm = RMSNorm(cfg.d_model, cfg.layer_norm_epsilon)
        self.dropout = nn.Dropout(cfg.dropout_rate)

    def position_bias(self, q_len: int, k_len: int, device) -> torch.Tensor:
        """[1, H, q_len, k_len] learned bias, computed once per forward and shared by every layer."""
        ctx = torch.arange(q_len, device=device)[:, None]
        mem = torch.arange(k_len, device=device)[None, :]
        buckets = relative_position_bucket(
            mem - ctx,
            bidirectional=not self.is_decoder,
            num_buckets=self.cfg.relative_attention_num_buckets,
            max_distance=self.cfg.relative_attention_max_distance,
        )
        return self.relative_attention_bias(buckets).permute(2, 0, 1).unsqueeze(0)

    def forward(
        self,
        x: torch.Tensor,
        padding_mask: torch.Tensor | None = None,
        memory: torch.Tensor | None = None,
        memory_padding_mask: torch.Tensor | None = None,
    ):
        """`x` embedded tokens [B, L, D]; masks are bool [B, L] with True = real token."""
        n = x.shape[1]
        dtype = _compute_dtype(x)
        if self.attention == "flex":
            keep = None if padding_mask is None else padding_mask.bool()
            mask = FlexBias.of(self.position_bias(n, n, x.device)[0], self.is_decoder, keep)
        else:
            mask = self._dense_mask(n, dtype, padding_mask, x.device)
        cross = None
        if memory_padding_mask is not None:
            cross = _additive(
                torch.zeros((), dtype=dtype, device=x.device), memory_padding_mask[:, None, None, :].bool()
            )
        x = self.dropout(x)
        for layer in self.layers:
            x = layer(x, mask, memory, cross) if self.is_decoder else layer(x, mask)
        return self.dropout(self.final_norm(x))

    def _dense_mask(self, n: int, dtype, padding_mask: torch.Tensor | None, device) -> torch.Tensor:
        """SDPA's additive float mask [1 or B, H, n, n]: the position bias, -inf-like where masked."""
        allowed = None  # bool mask broadcastable to [B, H, Lq, Lk]; None = everything visible
        if self.is_decoder:
            allowed = torch.ones(n, n, dtype=torch.bool, device=device).tril()[None, None]
        if padding_mask is not None:
            pad = padding_mask[:, None, None, :].bool()
            allowed = pad if allowed is None else allowed & pad
        return _additive(self.position_bias(n, n, device).to(dtype), allowed)


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    """dtype the attention matmuls run in (SDPA wants the float mask in the query's dtype)."""
    if torch.is_autocast_enabled(x.device.type):
        return torch.get_autocast_dtype(x.device.type)
    return x.dtype


def _additive(bias: torch.Tensor, allowed: torch.Tensor | None) -> torch.Tensor:
    # finfo.min of the compute dtype, as Hugging Face: exp() underflows to exactly 0 without
    # producing NaN on the diagonal-only rows of the causal mask.
    if allowed is None:
        return bias
    return bias.masked_fill(~allowed, torch.finfo(bias.dtype).min)


class T5(nn.Module):
    """T5 v1.1 for span-corruption pre-training: `forward(...)` returns logits and, given labels, the loss."""

    def __init__(self, cfg: T5Config, init_style: str = "mesh_tf", attention: str = "sdpa"):
        super().__init__()
        self.cfg = cfg
        self.shared = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.encoder = Stack(cfg, is_decoder=False)
        self.decoder = Stack(cfg, is_decoder=True)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.reset_parameters(init_style)
        self.use_attention(attention)

    def use_attention(self, kind: str) -> "T5":
        """Self-attention kernel of both stacks (see ATTENTIONS); the weights and the function stay."""
        if kind not in ATTENTIONS:
            raise ValueError(f"unknown attention {kind!r}; choose one of {', '.join(ATTENTIONS)}")
        if kind == "flex" and self.cfg.dropout_rate > 0:
            raise ValueError("attention 'flex' has no attention dropout: use 'sdpa' with dropout_rate > 0")
        self.encoder.attention = self.decoder.attention = kind
        return self

    @torch.no_grad()
    def reset_parameters(self, style: str = "mesh_tf") -> None:
        """Initialise as Mesh TensorFlow ("mesh_tf") or as Hugging Face's `_init_weights` ("hf").

        Both fold the attention logit scaling into q (std (d_model d_kv)^-0.5), so attention runs
        unscaled; k, v std d_model^-0.5, o (heads d_kv)^-0.5, embeddings std 1. They differ where Mesh
        TF uses its dense-layer default, a truncated normal (cut at 2 std) of std fan_in^-0.5: the
        untied lm_head (std d_model^-0.5: initial loss ~ln(vocab), not ~94 as with HF's std 1) and
        the feed-forward weights; and Mesh TF's relative position bias is glorot-uniform."""
        if style not in INIT_STYLES:
            raise ValueError(f"unknown init style {style!r}; choose one of {', '.join(INIT_STYLES)}")
        c, f = self.cfg, self.cfg.initializer_factor
        mesh = style == "mesh_tf"

        def dense(w: torch.Tensor, std: float) -> None:
            if mesh:
                nn.init.trunc_normal_(w, std=std, a=-2 * std, b=2 * std)
            else:
                nn.init.normal_(w, std=std)

        nn.init.normal_(self.shared.weight, std=f * 1.0)
        dense(self.lm_head.weight, f * (c.d_model**-0.5 if mesh else 1.0))
        inner = c.inner_dim
        for m in self.modules():
            if isinstance(m, RMSNorm):
                m.weight.fill_(f * 1.0)
            elif isinstance(m, Stack):
                if mesh:  # Mesh TF variable of shape [heads, buckets]
                    bound = f * math.sqrt(6.0 / (c.num_heads + c.relative_attention_num_buckets))
                    nn.init.uniform_(m.relative_attention_bias.weight, -bound, bound)
                else:
                    nn.init.normal_(m.relative_attention_bias.weight, std=f * c.d_model**-0.5)
            elif isinstance(m, SelfAttention):
                w = m.qkv.weight  # rows: [q; k; v]
                nn.init.normal_(w[:inner], std=f * (c.d_model * c.d_kv) ** -0.5)
                nn.init.normal_(w[inner:], std=f * c.d_model**-0.5)
                nn.init.normal_(m.o.weight, std=f * inner**-0.5)
            elif isinstance(m, CrossAttention):
                nn.init.normal_(m.q.weight, std=f * (c.d_model * c.d_kv) ** -0.5)
                nn.init.normal_(m.kv.weight, std=f * c.d_model**-0.5)
                nn.init.normal_(m.o.weight, std=f * inner**-0.5)
            elif isinstance(m, GatedGeluFFN):
                dense(m.wi.weight, f * c.d_model**-0.5)
                dense(m.wo.weight, f * c.d_ff**-0.5)

    def fused_parts(self) -> dict[str, int]:
        """Parameters that stack several Mesh TF variables along dim 0, and how many: the optimizer
        treats each part as its own variable (see `optim.Adafactor`)."""
        parts = {SelfAttention: ("qkv", 3), CrossAttention: ("kv", 2), GatedGeluFFN: ("wi", 2)}
        out = {}
        for name, m in self.named_modules():
            if type(m) in parts:
                attr, n = parts[type(m)]
                out[f"{name}.{attr}.weight"] = n
        return out

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.encoder(self.shared(input_ids), attention_mask)

    def forward(
        self,
        input_ids: torch.Tensor,
        decoder_input_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        z_loss: float = 0.0,
    ) -> dict[str, torch.Tensor]:
        """Logits [B, Lt, V]; `loss` (token mean cross-entropy, IGNORE_INDEX excluded) when labels are
        given, and with `z_loss` > 0 also `z_loss`, the term to add to it for training (Mesh TF).
        Without decoder_input_ids, they are the labels shifted right after decoder_start_token_id."""
        if decoder_input_ids is None:
            if labels is None:
                raise ValueError("forward needs decoder_input_ids or labels")
            decoder_input_ids = shift_right(labels, self.cfg.decoder_start_token_id, self.cfg.pad_token_id)
        memory = self.encode(input_ids, attention_mask)
        hidden = self.decoder(self.shared(decoder_input_ids), decoder_attention_mask, memory, attention_mask)
        logits = self.lm_head(hidden)
        out = {"logits": logits}
        if labels is not None:
            out.update(token_losses(logits, labels, z_loss))
        return out


def token_losses(logits: torch.Tensor, labels: torch.Tensor, z_loss: float = 0.0) -> dict:
    """`loss`: mean cross-entropy over the labelled tokens; with z_loss > 0 also `z_loss` =
    z_loss x mean(logsumexp(logits)^2), Mesh TF's auxiliary term that keeps the softmax normaliser
    near 1 (T5 trained with 1e-4). Computed in float32, from one logsumexp for both."""
    flat, target = logits.float().view(-1, logits.shape[-1]), labels.reshape(-1)
    if not z_loss:
        return {"loss": F.cross_entropy(flat, target, ignore_index=IGNORE_INDEX)}
    valid = target != IGNORE_INDEX
    count = valid.sum().clamp(min=1)
    log_z = torch.logsumexp(flat, dim=-1)
    picked = flat.gather(1, target.clamp(min=0)[:, None]).squeeze(1)
    return {
        "loss": torch.where(valid, log_z - picked, 0.0).sum() / count,
        "z_loss": z_loss * torch.where(valid, log_z.square(), 0.0).sum() / count,
    }


def shift_right(labels: torch.Tensor, start_id: int, pad_id: int) -> torch.Tensor:
    out = labels.new_full(labels.shape, start_id)
    out[:, 1:] = labels[:, :-1]
    return out.masked_fill(out == IGNORE_INDEX, pad_id)


def count_parameters(cfg: T5Config) -> int:
    """Closed-form parameter count (equals `T5(cfg).num_parameters()`; cheap for large presets)."""
    d, inner, ff, h = cfg.d_model, cfg.inner_dim, cfg.d_ff, cfg.num_heads
    attn = 4 * d * inner
    ffn = 3 * d * ff
    bias = cfg.relative_attention_num_buckets * h
    enc = cfg.num_layers * (attn + ffn + 2 * d) + bias + d
    dec = cfg.num_decoder_layers * (2 * attn + ffn + 3 * d) + bias + d
    return 2 * cfg.vocab_size * d + enc + dec


def train_flops_per_example(cfg: T5Config, enc_len: int, dec_len: int) -> float:
    """Forward+backward FLOPs of one example: 6 x matmul-parameters x tokens they see, plus
    12 x Lq x Lk x inner for the attention score and value products (3 passes x 2 matmuls x 2)."""
    d, inner, ff, v = cfg.d_model, cfg.inner_dim, cfg.d_ff, cfg.vocab_size
    enc = cfg.num_layers * (4 * d * inner + 3 * d * ff) * enc_len
    dec = cfg.num_decoder_layers * ((6 * d * inner + 3 * d * ff) * dec_len + 2 * d * inner * enc_len)
    matmul = 6 * (enc + dec + d * v * dec_len)
    attn = (
        12
        * inner
        * (
            cfg.num_layers * enc_len * enc_len
            + cfg.num_decoder_layers * (dec_len * dec_len + dec_len * enc_len)
        )
    )
    return float(matmul + attn)
