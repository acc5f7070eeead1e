"""GPU training throughput and MFU: c4clean T5 (eager and torch.compile) vs transformers T5, same run.

    python benchmarks/bench_train_gpu.py [--preset t5-v1_1-base --inputs 512 --targets 114
                                          --batches 256,192,128,96,64 --steps 20 --warmup 5 --json out.json]

Per implementation: bf16 autocast, TF32 matmuls, fused AdamW, one optimizer step per batch; the largest
batch from --batches that runs without running out of memory is used (tried largest first). Inputs are
random token ids (the loader is benchmarked separately): this measures the model step alone.
MFU = model FLOPs per example (c4clean.train.model.train_flops_per_example: 6 x matmul params x tokens
+ attention) x examples/s / the GPU's bf16 dense peak. Prints and writes one JSON object that records
the device, versions and the command line next to every figure.

`--device cpu --preset t5-v1_1-tiny --batches 2 --steps 1 --warmup 1` runs the same code paths on a CPU
(a smoke test only: no figures from it mean anything).
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import sys
import tempfile
import time

import torch


def make_batch(batch: int, inputs: int, targets: int, vocab: int, device) -> dict:
    g = torch.Generator().manual_seed(batch)
    return {
        "input_ids": torch.randint(2, vocab, (batch, inputs), generator=g).to(device),
        "labels": torch.randint(2, vocab, (batch, targets), generator=g).to(device),
    }


def run_one(name: str, build, loss_of, args, device, flops_per_example, peak) -> dict:
    """Largest fitting batch, then timed steps. `build()` returns a fresh model on `device`."""
    last_error = None
    for batch_size in args.batch_list:
        model = opt = None
        try:
            torch.manual_seed(0)
            model = build()
            opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device.type == "cuda")
            batch = make_batch(batch_size, args.inputs, args.targets, args.vocab, device)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)

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
                "name": name,
                "batch": batch_size,
                "step_s": seconds,
                "examples_per_s": ex_s,
                "input_tokens_per_s": ex_s * args.inputs,
                "tflops_per_s": flops_per_example * ex_s / 1e12,
                "warmup_s": warmup_s,
                "final_loss": loss.item(),
            }
            if peak:
                out["mfu"] = flops_per_example * ex_s / peak
            if device.type == "cuda":
                out["peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
            return out
        except (torch.OutOfMemoryError, RuntimeError) as e:
            if not isinstance(e, torch.OutOfMemoryError) and "out of memory" not in str(e).lower():
                raise
            last_error = f"batch {batch_size}: out of memory"
            print(f"{name}: {last_error}", file=sys.stderr)
        finally:
            del model, opt
            gc.collect()
            if device.type == "cuda":
                torch.cuda.empty_cache()
            torch._dynamo.reset()
    return {"name": name, "error": last_error or "no batch size fits"}


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="t5-v1_1-base")
    ap.add_argument("--inputs", type=int, default=512)
    ap.add_argument("--targets", type=int, default=114)
    ap.add_argument("--batches", default="256,192,160,128,96,64,32", help="batch sizes to try, largest first")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--only", default="c4clean,c4clean+compile,transformers,transformers+compile")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    args.batch_list = sorted((int(b) for b in args.batches.split(",")), reverse=True)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    import transformers

    from c4clean.train.hf_export import export_hf, import_hf
    from c4clean.train.model import T5, preset, train_flops_per_example
    from c4clean.train.trainer import gpu_peak_flops

    cfg = preset(args.preset)
    args.vocab = cfg.vocab_size
    flops = train_flops_per_example(cfg, args.inputs, args.targets)
    peak = gpu_peak_flops(device)
    hf_dir = tempfile.mkdtemp()
    export_hf(T5(cfg), hf_dir)  # same architecture and shapes for transformers (v1.1, untied head)

    def ours(compiled):
        def build():
            m = import_hf(hf_dir).to(device).train()  # the very weights transformers gets
            return torch.compile(m) if compiled else m

        return build

    def theirs(compiled):
        def build():
            m = transformers.T5ForConditionalGeneration.from_pretrained(hf_dir).to(device).train()
            assert m.lm_head.weight is not m.shared.weight
            return torch.compile(m) if compiled else m

        return build

    candidates = {
        "c4clean": (ours(False), lambda m, b: m(**b)["loss"]),
        "c4clean+compile": (ours(True), lambda m, b: m(**b)["loss"]),
        "transformers": (theirs(False), lambda m, b: m(**b).loss),
        "transformers+compile": (theirs(True), lambda m, b: m(**b).loss),
    }
    results = [run_one(name, *candidates[name], args, device, flops, peak) for name in args.only.split(",")]
    report = {
        "command": " ".join([sys.executable, *sys.argv]),
        "device": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or "cpu",
        "peak_bf16_flops": peak,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "cuda": torch.version.cuda,
        "preset": args.preset,
        "inputs": args.inputs,
        "targets": args.targets,
        "gflop_per_example": flops / 1e9,
        "precision": "bf16 autocast + TF32, fused AdamW",
        "results": results,
    }
    print(json.dumps(report, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
