"""GPU training throughput and MFU: c4clean T5 (eager and torch.compile) vs transformers T5, same run.

    python benchmarks/bench_train_gpu.py [--preset t5-v1_1-base --inputs 512 --targets 114
        --impls c4clean-eager,c4clean-compile,transformers-eager,transformers-compile
        --attention sdpa,flex --batches 512,384,256,192,128 --steps 20 --warmup 5 --profile 3
        --json benchmarks/results/gpu.json]

What one step is, for every implementation: bf16 autocast + TF32, the loss (c4clean: cross-entropy +
1e-4 z-loss, as `c4clean train` trains; transformers: its cross-entropy), backward, one fused AdamW
step. Inputs are random token ids on the GPU (the loader is benchmarked separately): this measures the
model step alone. Every implementation starts from the same weights (c4clean's initialisation exported
to a Hugging Face directory, which both load) and sees the same batches. The largest batch of
--batches that runs without running out of memory is used (largest first); only warm steps are timed.

Figures per run: `tokens_per_s` counts encoder input tokens (as the trainer's `tokens_per_s`);
`mfu` = train_flops_per_example (c4clean.train.model: 6 x matmul parameters x the tokens each sees, plus
12 x Lq x Lk x inner for the attention products, i.e. what the trainer logs as `mfu`) x examples/s /
the GPU's dense bf16 peak (trainer.GPU_PEAK_BF16_FLOPS). `--profile N` adds the top GPU kernels of N
profiled steps to each run. `--json` merges into an existing file (a run replaces the one with the
same impl, attention and variant), so the slow compiled runs can be a second invocation. `--flex-tiles
tuned` runs flex with the kernel tiles that bench_attention_gpu.py found fastest for one layer
(variant "flex-tiles-tuned"; the default is FlexAttention's own).

`--device cpu --preset t5-v1_1-tiny --batches 2 --steps 1 --warmup 1` runs the same code paths on a CPU
(a smoke test only: no figures from it mean anything).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

from c4clean import atomic

IMPLS = ("c4clean-eager", "c4clean-compile", "transformers-eager", "transformers-compile")


def make_batch(batch: int, inputs: int, targets: int, vocab: int, device) -> dict:
    g = torch.Generator().manual_seed(batch)
    return {
        "input_ids": torch.randint(2, vocab, (batch, inputs), generator=g).to(device),
        "labels": torch.randint(2, vocab, (batch, targets), generator=g).to(device),
    }


def alloc_retries(device) -> int:
    return torch.cuda.memory_stats(device).get("num_alloc_retries", 0)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def top_kernels(step, steps: int, device, rows: int = 15) -> dict:
    """GPU kernels of `steps` profiled steps by self time: the top `rows`, with ms per step and share."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CUDA] if device.type == "cuda" else [ProfilerActivity.CPU]
    with profile(activities=activities) as prof:
        for _ in range(steps):
            step()
        sync(device)
    events = prof.key_averages()
    attr = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    timed = sorted((e for e in events if getattr(e, attr, 0) > 0), key=lambda e: -getattr(e, attr))
    total = sum(getattr(e, attr) for e in timed) or 1.0
    return {
        "steps": steps,
        "device_ms_per_step": total / 1e3 / steps,
        "kernels": [
            {
                "name": e.key[:120],
                "calls_per_step": e.count / steps,
                "ms_per_step": getattr(e, attr) / 1e3 / steps,
                "share": getattr(e, attr) / total,
            }
            for e in timed[:rows]
        ],
    }


def run_one(impl: str, attention: str | None, build, loss_of, args, device, flops, peak) -> dict:
    """Largest fitting batch of args.batch_list, then timed warm steps. `build()` returns a fresh model."""
    label = {"impl": impl, "attention": attention}
    if attention == "flex" and args.flex_tiles:
        label["variant"] = f"flex-tiles-{args.flex_tiles}"
    cuda = device.type == "cuda"
    errors = []
    for batch_size in args.batch_list:
        model = opt = None
        try:
            torch.manual_seed(0)
            model = build()
            opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=cuda)
            batch = make_batch(batch_size, args.inputs, args.targets, args.vocab, device)
            if cuda:
                torch.cuda.reset_peak_memory_stats(device)
                retries = alloc_retries(device)

            def step(model=model, opt=opt, batch=batch):
                with torch.autocast(device.type, dtype=torch.bfloat16):
                    loss = loss_of(model, batch)
                loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
                return loss

            t0 = time.perf_counter()
            for _ in range(args.warmup):
                step()
            sync(device)
            warmup_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            for _ in range(args.steps):
                loss = step()
            sync(device)
            seconds = (time.perf_counter() - t0) / args.steps
            ex_s = batch_size / seconds
            out = {
                **label,
                "batch": batch_size,
                "tokens_per_s": ex_s * args.inputs,
                "examples_per_s": ex_s,
                "mfu": flops * ex_s / peak if peak else None,
                "peak_mem_gib": torch.cuda.max_memory_allocated(device) / 2**30 if cuda else None,
                # allocations that had to free the cache and retry (each synchronises the GPU)
                "alloc_retries": alloc_retries(device) - retries if cuda else None,
                "step_s": seconds,
                "tflops_per_s": flops * ex_s / 1e12,
                "warmup_s": warmup_s,
                "final_loss": loss.item(),
                "larger_batches_out_of_memory": errors,
            }
            if args.profile:
                out["profile"] = top_kernels(step, args.profile, device)
            print(json.dumps({k: v for k, v in out.items() if k != "profile"}), file=sys.stderr, flush=True)
            return out
        except (torch.OutOfMemoryError, RuntimeError) as e:
            if not isinstance(e, torch.OutOfMemoryError) and "out of memory" not in str(e).lower():
                print(f"{impl} ({attention}): {type(e).__name__}: {e}", file=sys.stderr, flush=True)
                return {**label, "error": f"{type(e).__name__}: {str(e)[:500]}"}
            errors.append(batch_size)
            print(f"{impl} ({attention}): batch {batch_size} out of memory", file=sys.stderr, flush=True)
        finally:
            del model, opt
            gc.collect()
            if cuda:
                torch.cuda.empty_cache()
            torch._dynamo.reset()
    return {**label, "error": f"out of memory at every batch of {args.batch_list}"}


def run_key(run: dict) -> tuple:
    return run["impl"], run.get("attention"), run.get("variant")


def merged(path: Path, report: dict) -> dict:
    """`report` with the runs of an earlier report at `path` that it does not redo."""
    if not path.is_file():
        return report
    old = json.loads(path.read_text())
    redone = {run_key(r) for r in report["runs"]}
    kept = [r for r in old.get("runs", []) if run_key(r) not in redone]
    commands = old.get("commands", [old["command"]] if "command" in old else [])
    if report["command"] not in commands:  # written after every run: each process adds its command once
        commands.append(report["command"])
    return {**report, "commands": commands, "runs": kept + report["runs"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="t5-v1_1-base")
    ap.add_argument("--inputs", type=int, default=512)
    ap.add_argument("--targets", type=int, default=114)
    ap.add_argument("--batches", default="512,384,256,192,128,96,64", help="batch sizes, largest first")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--profile", type=int, default=0, help="profile N more steps of each run (top kernels)")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--impls", default=",".join(IMPLS))
    ap.add_argument("--attention", default="sdpa", help="c4clean self-attention kernels to run (sdpa,flex)")
    ap.add_argument(
        "--flex-tiles", choices=["tuned"], default=None, help="flex runs with bench_attention_gpu.TUNED_TILES"
    )
    ap.add_argument("--json", default=None, help="write (merge) the report here")
    args = ap.parse_args()
    args.batch_list = sorted((int(b) for b in args.batches.split(",")), reverse=True)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("bench_train_gpu: no CUDA device here (--device cpu runs the smoke test)")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    import transformers

    from c4clean.train.config import TrainConfig
    from c4clean.train.hf_export import export_hf, import_hf
    from c4clean.train.model import T5, preset, train_flops_per_example
    from c4clean.train.trainer import gpu_peak_flops

    if args.flex_tiles:
        from bench_attention_gpu import TUNED_TILES

        from c4clean.train import model as model_module

        model_module.FLEX_KERNEL_OPTIONS = TUNED_TILES
    cfg = preset(args.preset)
    args.vocab = cfg.vocab_size
    flops = train_flops_per_example(cfg, args.inputs, args.targets)
    peak = gpu_peak_flops(device)
    hf_dir = tempfile.mkdtemp()
    export_hf(T5(cfg), hf_dir)  # same architecture and shapes for transformers (v1.1, untied head)

    def ours(compiled: bool, attention: str):
        def build():
            m = import_hf(hf_dir).use_attention(attention).to(device).train()  # the weights HF gets
            return torch.compile(m) if compiled else m

        return build

    def theirs(compiled: bool):
        def build():
            m = transformers.T5ForConditionalGeneration.from_pretrained(hf_dir).to(device).train()
            assert m.lm_head.weight is not m.shared.weight
            return torch.compile(m) if compiled else m

        return build

    z_loss = TrainConfig.defaults()["z_loss"]  # as `c4clean train` trains

    def our_loss(m, b):
        out = m(**b, z_loss=z_loss)
        return out["loss"] + out["z_loss"]

    report = {
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.machine(),
        "peak_bf16_flops": peak,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "preset": args.preset,
        "inputs": args.inputs,
        "targets": args.targets,
        "gflop_per_example": flops / 1e9,
        "step": "bf16 autocast + TF32, loss, backward, fused AdamW; random token ids on the device",
        "tokens": "encoder input tokens",
        "runs": [],
    }
    jobs = []  # (impl, attention, build, loss_of)
    for impl in args.impls.split(","):
        family, mode = impl.split("-")
        if family == "c4clean":
            jobs += [(impl, a, ours(mode == "compile", a), our_loss) for a in args.attention.split(",")]
        else:
            jobs.append((impl, None, theirs(mode == "compile"), lambda m, b: m(**b).loss))
    for impl, attention, build, loss_of in jobs:
        report["runs"].append(run_one(impl, attention, build, loss_of, args, device, flops, peak))
        write(report, args.json)
    print(json.dumps(report, indent=2))


def write(report: dict, json_path: str | None) -> None:
    """Merge the runs so far into `json_path` (after every run: a run cut short keeps what is done)."""
    if not json_path:
        return
    path = Path(json_path)
    report = merged(path, report)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(path, json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
