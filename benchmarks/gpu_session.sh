#!/bin/bash
# Every GPU check of the trainer in one budgeted run, most needed first, for a GPU lent for minutes:
#   OUT=gpu-out BUDGET=560 bash benchmarks/gpu_session.sh
# Each stage gets at most its own limit and what is left of BUDGET seconds; every stage writes as it goes
# (pytest -v prints each test as it ends; the benchmark merges its JSON after every run), so a stage cut
# short keeps what it did. Stages (README, "Trainer on GPU", what is still owed): compiled flex with the
# tiles that the attention benchmark found fastest for one layer; transformers compiled at the batches
# above the 128 it was measured at; every GPU test; the attention kernels alone.
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
stage flex-tiles 170 $BENCH --impls c4clean-compile --attention flex --flex-tiles tuned --batches 384 2>"$OUT/bench.log"
stage transformers-compile 200 $BENCH --impls transformers-compile --batches 256,192 2>>"$OUT/bench.log"
stage tests-all 150 $PYTEST >"$OUT/tests-all.log" 2>&1
stage attention 100 python3 benchmarks/bench_attention_gpu.py --json "$OUT/attention.json" --budget 70 \
  2>"$OUT/attention.log" >/dev/null
grep -h "PASSED\|FAILED\|ERROR" "$OUT"/tests-*.log
grep -h '^{"impl\|^{"name' "$OUT/bench.log" "$OUT/attention.log" | cut -c1-260
