"""Self-attention kernels alone at T5-base training shapes: what the position bias and its gradient cost.

    python benchmarks/bench_attention_gpu.py [--batch 256 --heads 12 --length 512 --dkv 64
        --iters 20 --budget 240 --json out.json]

One call = forward, or forward + backward, of one encoder layer's self-attention in bf16 (q, k, v
[B, H, L, D]; a float32 bias with requires_grad that is constant along diagonals, as T5's). Variants:
the kernels without any bias (the floor), SDPA with the dense bias mask (c4clean's `--attention sdpa`),
and FlexAttention with the bias read in score_mod, from a dense [H, L, L] tensor (c4clean's
`--attention flex`) or from its diagonals [H, 2L - 1], with and without the bias gradient (what its
scatter costs), with TUNED_TILES or other kernel options, and autotuned (max-autotune prints every
tile choice it timed). Each is checked against the first (out, and the bias gradient summed along
diagonals where the variant has diagonals). Times are CUDA-event medians of warm calls; a variant that
does not compile or run is reported with its error, and the variants stop when --budget seconds have
passed. Figures: benchmarks/results/gpu_attention.json and the README.

`--device cpu --batch 2 --length 128 --iters 1 --forward-only` runs the forward paths on a CPU (a
smoke test: FlexAttention has no CPU backward, and no figure from it means anything).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from c4clean import atomic

# The fastest tiles of max-autotune ("flex-bias-autotune") at B 256, H 12, L 512, d_kv 64 on an H200
# (2026-11-26): forward 64x64, backward M1 32 / N1 64 / M2 64 / N2 32, 3 stages, 4 warps each
TUNED_TILES = {
    "fwd_BLOCK_M": 64,
    "fwd_BLOCK_N": 64,
    "fwd_num_stages": 3,
    "fwd_num_warps": 4,
    "bwd_BLOCK_M1": 32,
    "bwd_BLOCK_N1": 64,
    "bwd_BLOCK_M2": 64,
    "bwd_BLOCK_N2": 32,
    "bwd_num_stages": 3,
    "bwd_num_warps": 4,
}


def variants() -> list[tuple[str, dict]]:
    """(name, spec), most informative first; spec keys: kind (sdpa | flex), bias (None | dense |
    diagonals), grad, opts (kernel options), mode (torch.compile mode of flex)."""
    flex = {"kind": "flex", "bias": "dense", "grad": True, "opts": None, "mode": None}
    diag = {**flex, "bias": "diagonals"}
    return [
        ("flex-bias", flex),  # c4clean --attention flex: the reference of the checks
        ("flex-bias-tuned", {**flex, "opts": TUNED_TILES}),
        ("flex-diag", diag),
        ("flex-diag-tuned", {**diag, "opts": TUNED_TILES}),
        ("flex-diag-nograd", {**diag, "grad": False}),
        ("flex-bias-nograd", {**flex, "grad": False}),
        ("flex-nobias", {**flex, "bias": None, "grad": False}),
        ("sdpa-nobias", {"kind": "sdpa", "bias": None, "grad": False}),
        ("sdpa-densebias", {"kind": "sdpa", "bias": "dense", "grad": True}),
        ("flex-bias-write_dq0", {**flex, "opts": {"WRITE_DQ": False}}),
        ("flex-bias-tma", {**flex, "opts": {"USE_TMA": True}}),
        ("flex-diag-autotune", {**diag, "mode": "max-autotune-no-cudagraphs"}),
        ("flex-bias-autotune", {**flex, "mode": "max-autotune-no-cudagraphs"}),
    ]


def build(spec: dict, q, k, v, diagonals, dense):
    """fn() -> (out, bias leaf or None): one attention call of the variant."""
    from torch.nn.attention.flex_attention import flex_attention

    table = {"dense": dense, "diagonals": diagonals, None: None}[spec["bias"]]
    if spec["kind"] == "sdpa":
        if table is None:
            return lambda: (F.scaled_dot_product_attention(q, k, v, scale=1.0), None)

        def sdpa():
            leaf = table.detach().requires_grad_(spec["grad"] and q.requires_grad)
            return F.scaled_dot_product_attention(q, k, v, attn_mask=leaf.to(q.dtype)[None], scale=1.0), leaf

        return sdpa
    compiled = flex_attention  # on a CPU (the smoke run): the unfused reference
    if q.is_cuda:
        compiled = torch.compile(flex_attention, dynamic=False, mode=spec["mode"])
    zero = q.shape[-2] - 1

    def call():
        if table is None:
            return compiled(q, k, v, scale=1.0, kernel_options=spec["opts"]), None
        leaf = table.detach().requires_grad_(spec["grad"] and q.requires_grad)
        if spec["bias"] == "dense":

            def score_mod(score, b, h, q_idx, kv_idx):
                return score + leaf[h, q_idx, kv_idx]
        else:

            def score_mod(score, b, h, q_idx, kv_idx):
                return score + leaf[h, kv_idx - q_idx + zero]

        return compiled(q, k, v, score_mod=score_mod, scale=1.0, kernel_options=spec["opts"]), leaf

    return call


def timed(fn, iters: int, device) -> float:
    """Median ms of `iters` warm calls (CUDA events on a GPU)."""
    times = []
    for _ in range(iters):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize(device)
            times.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--length", type=int, default=512)
    ap.add_argument("--dkv", type=int, default=64)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--budget", type=float, default=240.0, help="seconds; later variants are skipped")
    ap.add_argument("--only", default=None, help="comma-separated variant names")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--forward-only", action="store_true")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("bench_attention_gpu: no CUDA device here (--device cpu runs the smoke test)")
    torch._dynamo.config.cache_size_limit = 64
    g = torch.Generator().manual_seed(0)
    shape = (args.batch, args.heads, args.length, args.dkv)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    grad = not args.forward_only
    q, k, v = (torch.randn(shape, generator=g).to(device, dtype).requires_grad_(grad) for _ in range(3))
    # a bias constant along diagonals, as T5's: held whole [H, L, L] or as its diagonals [H, 2L - 1]
    diagonals = torch.randn(args.heads, 2 * args.length - 1, generator=g).to(device)
    pos = torch.arange(args.length, device=device)
    offset = pos[None, :] - pos[:, None] + args.length - 1  # [L, L]: column of (query i, key j)
    dense = diagonals[:, offset].contiguous()
    grad_out = torch.randn(shape, generator=g).to(device, dtype)
    # attention FLOPs of one call (QK^T and PV; backward 2.5x), for TFLOP/s
    flop = 4 * args.batch * args.heads * args.length**2 * args.dkv
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else str(device)
    report = {"shape": dict(zip("BHLD", shape)), "device": name, "torch": torch.__version__, "runs": []}
    ref = None
    t_start = time.perf_counter()
    chosen = set(args.only.split(",")) if args.only else None
    for name, spec in variants():
        if chosen and name not in chosen:
            continue
        if time.perf_counter() - t_start > args.budget:
            report["runs"].append({"name": name, "skipped": "budget"})
            continue
        run = {"name": name}
        t0 = time.perf_counter()
        try:
            call = build(spec, q, k, v, diagonals, dense)

            def fwd_bwd():
                q.grad = k.grad = v.grad = None
                out, leaf = call()
                out.backward(grad_out)
                return out, leaf

            out, leaf = call() if args.forward_only else fwd_bwd()  # compiles
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            run["compile_s"] = round(time.perf_counter() - t0, 1)
            run["fwd_ms"] = timed(call, args.iters, device)  # training forward (saves what backward needs)
            if not args.forward_only:
                run["fwd_bwd_ms"] = timed(fwd_bwd, args.iters, device)
                run["tflops_fwd_bwd"] = 3.5 * flop / run["fwd_bwd_ms"] / 1e9
            run["tflops_fwd"] = flop / run["fwd_ms"] / 1e9
            got = {"out": out.detach().float()}
            if leaf is not None and leaf.grad is not None:
                got["bias_grad"] = leaf.grad.float()
            if ref is None and name == "flex-bias":
                ref = got
            elif ref is not None:
                for key, val in got.items():
                    want = ref.get(key)
                    if want is not None and want.shape != val.shape:  # dense reference, diagonals here
                        want = torch.zeros_like(val).index_add_(1, offset.flatten(), want.flatten(1))
                    if want is not None:
                        run[f"{key}_max_rel_diff"] = (val - want).abs().max().item() / want.abs().max().item()
        except Exception as e:  # a variant that does not compile or run here: say why, go on
            run["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"
        finally:
            torch._dynamo.reset()
            if device.type == "cuda":
                torch.cuda.empty_cache()
        report["runs"].append(run)
        print(json.dumps(run), file=sys.stderr, flush=True)
        if args.json:
            atomic.write_text(Path(args.json), json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
