"""Optimizers and learning-rate schedules.

- `adafactor`: our own Adafactor with Mesh TensorFlow's T5 settings (factored second moments for
  matrices whose two dims are >= 128, decay 1 - t^-0.8, epsilon1 1e-30, update clipping at RMS 1.0,
  step scaled by max(1e-3, RMS(param)), no momentum, no weight decay), all computed per Mesh TF
  variable even where the model fuses several into one tensor, and the T5 paper's
  inverse-square-root schedule lr(n) = lr * sqrt(k / max(n, k)), k = warm-up steps (10,000): with the
  default lr 0.01 this is exactly 1/sqrt(max(n, 10^4)).
- `adamw`: torch AdamW (fused on CUDA) with linear warm-up and cosine decay to `min_lr`.
"""

from __future__ import annotations

import math

import torch
from torch.optim.lr_scheduler import LambdaLR

from c4clean.train.config import OPTIMIZERS

DEFAULT_LR = {"adafactor": 1e-2, "adamw": 1e-3}


class Adafactor(torch.optim.Optimizer):
    """Adafactor (Shazeer & Stern 2018) as configured for T5 in Mesh TensorFlow.

    `lr` is the external (scheduled) step size; it is multiplied by max(eps2, RMS(param)).

    A parameter group may set `parts`: its parameters are then `parts` Mesh TF variables stacked along
    dim 0 (the fused q/k/v, cross-attention k/v and GEGLU wi_0/wi_1 of `model.T5`). Factoring, the
    parameter scale RMS and update clipping are computed for each part on its own, exactly as for
    separate tensors, while the parameter stays one tensor (one GEMM) on the device.
    """

    def __init__(
        self,
        params,
        lr: float = 1e-2,
        eps1: float = 1e-30,
        eps2: float = 1e-3,
        clip_threshold: float = 1.0,
        decay_pow: float = 0.8,
        min_dim_size_to_factor: int = 128,
        parts: int = 1,
    ):
        defaults = dict(
            lr=lr,
            eps1=eps1,
            eps2=eps2,
            clip_threshold=clip_threshold,
            decay_pow=decay_pow,
            min_dim_size_to_factor=min_dim_size_to_factor,
            parts=parts,
        )
        super().__init__(params, defaults)

    @staticmethod
    def _factored(part_shape: torch.Size, min_dim: int) -> bool:
        """Mesh TF factors a variable when its two largest dims are both >= min_dim_size_to_factor."""
        return len(part_shape) == 2 and min(part_shape) >= min_dim

    @staticmethod
    def _rms(x: torch.Tensor) -> torch.Tensor:
        """RMS of each part (dim 0 indexes the parts), shaped to broadcast against x."""
        return x.square().mean(dim=tuple(range(1, x.dim())), keepdim=True).sqrt()

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    self._update(p, group)
        return loss

    def _update(self, p: torch.Tensor, group: dict) -> None:
        parts = group["parts"]
        if p.shape[0] % parts:
            raise ValueError(f"a parameter of shape {tuple(p.shape)} cannot hold {parts} equal parts")
        shape = (parts, p.shape[0] // parts, *p.shape[1:])  # [part, rows of a part, ...]
        grad = p.grad.float().reshape(shape)
        state = self.state[p]
        factored = self._factored(shape[1:], group["min_dim_size_to_factor"])
        if not state:
            state["step"] = torch.zeros((), dtype=torch.float32)
            if factored:
                state["exp_avg_sq_row"] = grad.new_zeros(shape[:-1])
                state["exp_avg_sq_col"] = grad.new_zeros(shape[:-2] + shape[-1:])
            else:
                state["exp_avg_sq"] = torch.zeros_like(grad)
        state["step"] += 1
        decay = 1.0 - state["step"].item() ** -group["decay_pow"]
        sq = grad.square() + group["eps1"]
        if factored:
            row, col = state["exp_avg_sq_row"], state["exp_avg_sq_col"]
            row.lerp_(sq.mean(dim=-1), 1.0 - decay)
            col.lerp_(sq.mean(dim=-2), 1.0 - decay)
            # v ~= row x col / mean(row): rank-1 estimate of each part's second moment
            row_factor = (row / row.mean(dim=-1, keepdim=True)).rsqrt_().unsqueeze(-1)
            update = grad * row_factor * col.rsqrt().unsqueeze(-2)
        else:
            v = state["exp_avg_sq"]
            v.lerp_(sq, 1.0 - decay)
            update = grad * v.rsqrt()
        update.div_((self._rms(update) / group["clip_threshold"]).clamp_(min=1.0))
        p_float = p.float().view(shape)  # a view of p itself when p is float32
        scale = self._rms(p_float).clamp(min=group["eps2"])
        p_float.sub_(update * (group["lr"] * scale))
        if p_float.data_ptr() != p.data_ptr():
            p.copy_(p_float.view(p.shape))


def inverse_sqrt_schedule(warmup_steps: int):
    """Multiplier of the base lr at step n (0-based): constant for `warmup_steps`, then rsqrt decay."""
    k = max(1, warmup_steps)
    return lambda n: math.sqrt(k / max(n + 1, k))


def cosine_schedule(warmup_steps: int, total_steps: int, min_ratio: float):
    """Linear warm-up from ~0 to 1, then cosine decay to `min_ratio` at `total_steps`."""

    def factor(n: int) -> float:
        if n < warmup_steps:
            return (n + 1) / warmup_steps
        progress = min(1.0, (n - warmup_steps) / max(1, total_steps - warmup_steps))
        return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def adafactor_groups(model: torch.nn.Module) -> list[dict]:
    """Parameter groups by the number of Mesh TF variables each parameter fuses (`fused_parts()` of
    the model, when it has one), so that Adafactor treats every original variable on its own."""
    fused = model.fused_parts() if hasattr(model, "fused_parts") else {}
    by_parts: dict[int, list] = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            by_parts.setdefault(fused.get(name, 1), []).append(p)
    return [{"params": ps, "parts": n} for n, ps in sorted(by_parts.items())]


def build_optimizer(
    name: str,
    model: torch.nn.Module,
    lr: float | None,
    warmup_steps: int,
    total_steps: int,
    weight_decay: float = 0.0,
    min_lr: float = 1e-5,
):
    """(optimizer, LambdaLR scheduler) for `name` in OPTIMIZERS; lr None = the recipe's default."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")
    lr = DEFAULT_LR[name] if lr is None else lr
    params = [p for p in model.parameters() if p.requires_grad]
    if name == "adafactor":
        opt = Adafactor(adafactor_groups(model), lr=lr)
        schedule = inverse_sqrt_schedule(warmup_steps)
    else:
        fused = all(p.is_cuda for p in params)
        opt = torch.optim.AdamW(
            params, lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=weight_decay, fused=fused or None
        )
        schedule = cosine_schedule(warmup_steps, total_steps, min(1.0, min_lr / lr))
    return opt, LambdaLR(opt, schedule)
