#!/bin/bash
# Every GPU check of the trainer in one budgeted run, most needed first, for a GPU lent for minutes:
#   OUT=gpu-out BUDGET=560 bash benchmarks/gpu_session.sh
# Each stage gets at most its own limit and what is left of BUDGET seconds; every stage writes as it goes
# (pytest -v prints each test as it ends; the benchmark merges its JSON after every run), so a stage cut
# short keeps what it did. Stages (README, "Trainer on GPU"): compiled + flex; the GPU tests not yet run
# to completion on a GPU; the attention kernels alone (bench_attention_gpu.py), then compiled + flex with
# the bias in batch groups if that kernel benchmark found them faster; the rest.
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
OUT=${OUT:-gpu-out} BUDGET=${BUDGET:-560}
mkdir -p "$OUT"
T0=$SECONDS
exec 3>&1  # stage lines reach the terminal whatever a stage redirects
stage() { # name, limit in seconds, command...
  local name=$1 limit=$2 left=$((BUDGET - (SECONDS - T0)))
  shift 2
  ((limit > left)) && limit=$left
  if ((limit < 30)); then echo "== $name: skipped, $left s left" >&3; return; fi
  echo "== $name (limit $limit s)" >&3
  timeout -k 5 "$limit" "$@"
  echo "== $name: rc $? at $((SECONDS - T0)) s" >&3
}
# batch lists from the H200 runs of 2026-11-26 (README): the largest that ran, and the next size up where
# the peak left room; a compiled run that runs out of memory has spent its compile time
PYTEST="python3 -m pytest -v -m gpu tests/test_train_gpu.py -p no:cacheprovider --tb=short -rfEs"
BENCH="python3 benchmarks/bench_train_gpu.py --json $OUT/gpu.json --steps 10 --warmup 3 --profile 3"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c "import sys, torch, transformers; print(sys.version.split()[0], torch.__version__, transformers.__version__)"
} | tee "$OUT/env.txt"
stage flex-compile 170 $BENCH --impls c4clean-compile --attention flex --batches 384,256 2>"$OUT/bench.log"
stage tests-new 150 $PYTEST -k "flex or resume" >"$OUT/tests-new.log" 2>&1
stage attention 150 python3 benchmarks/bench_attention_gpu.py --json "$OUT/attention.json" --budget 110 \
  2>"$OUT/attention.log" >/dev/null
# the batch-group count of the bias that the attention benchmark found fastest, if it beat one copy by 10%
BIAS_GROUPS=$(python3 -c "
import json, re
runs = {r['name']: r for r in json.load(open('$OUT/attention.json'))['runs'] if 'fwd_bwd_ms' in r}
base = runs.get('flex-bias', {}).get('fwd_bwd_ms', 0)
best = min(((r['fwd_bwd_ms'], int(m[1])) for n, r in runs.items() if (m := re.fullmatch(r'flex-bias-groups(\d+)', n))),
           default=(base, 1))
print(best[1] if base and best[0] < 0.9 * base else 1)" 2>/dev/null || echo 1)
echo "== groups: $BIAS_GROUPS" >&3
((BIAS_GROUPS > 1)) && stage flex-compile-groups 120 $BENCH --impls c4clean-compile --attention flex --batches 256 \
  --flex-bias-groups "$BIAS_GROUPS" --variant "bias-groups-$BIAS_GROUPS" 2>>"$OUT/bench.log"
stage sdpa-eager 60 $BENCH --impls c4clean-eager --attention sdpa --batches 384,256 2>>"$OUT/bench.log"
stage tests-all 150 $PYTEST >"$OUT/tests-all.log" 2>&1
grep -h "PASSED\|FAILED\|ERROR" "$OUT"/tests-*.log
grep -h '^{"impl\|^{"name' "$OUT/bench.log" "$OUT/attention.log" | cut -c1-260
