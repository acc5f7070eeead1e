"""CPU training-step time: c4clean T5 vs Hugging Face transformers T5, same weights, same inputs, same run.

    python benchmarks/bench_train_cpu.py [--preset t5-v1_1-small --batch 8 --inputs 512 --targets 114]
                                         [--steps 3]

One step = forward + backward + AdamW update, float32. The two models are interleaved (A B A B ...) so
that load from other processes hits both alike; the median step time (wall and process CPU time) is
reported. The first step of each is a warm-up and is not timed. On a shared machine use --threads 1 and
read the CPU-time figures: oversubscribed OpenMP threads make wall times meaningless. Prints one JSON object
(also written with --json PATH).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="t5-v1_1-small")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--inputs", type=int, default=512)
    ap.add_argument("--targets", type=int, default=114)
    ap.add_argument("--steps", type=int, default=3, help="timed steps per implementation")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    import transformers

    from c4clean.train.hf_export import export_hf
    from c4clean.train.model import T5, preset

    torch.manual_seed(0)
    ours = T5(preset(args.preset))
    with tempfile.TemporaryDirectory() as d:
        export_hf(ours, d)
        hf = transformers.T5ForConditionalGeneration.from_pretrained(d)
    assert hf.lm_head.weight is not hf.shared.weight
    g = torch.Generator().manual_seed(1)
    vocab = ours.cfg.vocab_size
    ids = torch.randint(2, vocab, (args.batch, args.inputs), generator=g)
    labels = torch.randint(2, vocab, (args.batch, args.targets), generator=g)
    batch = {"input_ids": ids, "labels": labels}

    def stepper(model, loss_of):
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        model.train()

        def step() -> tuple[float, float, float]:
            t, c = time.perf_counter(), time.process_time()
            loss = loss_of(model)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            return time.perf_counter() - t, time.process_time() - c, loss.item()

        return step

    runs = {
        "c4clean": stepper(ours, lambda m: m(**batch)["loss"]),
        "transformers": stepper(hf, lambda m: m(**batch).loss),
    }
    times = {name: [] for name in runs}
    cpu = {name: [] for name in runs}
    first_loss = {}
    for i in range(args.steps + 1):
        for name, step in runs.items():
            seconds, cpu_seconds, loss = step()
            if i == 0:
                first_loss[name] = loss
            else:
                times[name].append(seconds)
                cpu[name].append(cpu_seconds)
    med = {name: statistics.median(t) for name, t in times.items()}
    cpu_med = {name: statistics.median(t) for name, t in cpu.items()}
    tokens = args.batch * args.inputs
    result = {
        "preset": args.preset,
        "parameters": ours.num_parameters(),
        "batch": args.batch,
        "inputs": args.inputs,
        "targets": args.targets,
        "timed_steps": args.steps,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "hf_attn_implementation": getattr(hf.config, "_attn_implementation", None),
        "cpu": platform.processor() or platform.machine(),
        "first_step_loss": first_loss,
        "step_seconds_median": med,
        "step_seconds_all": times,
        # CPU time of this process: on a shared, loaded machine with --threads 1 the fairer figure
        "step_cpu_seconds_median": cpu_med,
        "step_cpu_seconds_all": cpu,
        "input_tokens_per_s": {k: tokens / v for k, v in med.items()},
        "speedup_c4clean_vs_transformers": med["transformers"] / med["c4clean"],
        "cpu_time_speedup_c4clean_vs_transformers": cpu_med["transformers"] / cpu_med["c4clean"],
    }
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
