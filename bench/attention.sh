#!/usr/bin/env bash
# Benchmark: attention variants (sa, isa, aal) at C = 64, H = W in 64..512,
# C++ (libs/ssan, build/bench/bench_attention) against the straightforward
# PyTorch reference (bench/reference/attention_ref.py), same thread count,
# one fresh process per case (peak memory is that case's alone).
# Prints one JSON object per line. usage: bench/attention.sh [THREADS]
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${1:-$(nproc)}
BIN=${BIN:-build/bench/bench_attention}
[[ -x "$BIN" ]] || { echo "bench: build with -DEMT_BUILD_BENCH=ON first ($BIN missing)" >&2; exit 1; }
export OMP_NUM_THREADS=$THREADS   # the same OpenMP/OpenBLAS pool size for both sides
blas=$(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3 2>/dev/null || echo unknown)
echo "{\"case\": \"environment\", \"threads\": $THREADS, \"blas\": \"$blas\"}"
for size in 64 128 256 512; do
  for variant in sa isa aal; do
    if [[ $variant == sa && $size -ge 256 ]]; then
      # (HW)^2 scores: 17 GB at 256^2 with the backward pass, 275 GB at 512^2.
      echo "{\"case\": \"skipped\", \"variant\": \"sa\", \"h\": $size, \"w\": $size, \"why\": \"dense attention needs (HW)^2 floats\"}"
      continue
    fi
    cpp=$("$BIN" $variant 64 $size $size 2 --threads "$THREADS")
    echo "$cpp"
    split=$(echo "$cpp" | /usr/bin/python3 -c "import json,sys; print(*json.load(sys.stdin)['split'])")
    /usr/bin/python3 bench/reference/attention_ref.py $variant 64 $size $size 2 $split --threads "$THREADS"
  done
  # isa at the reference implementation's default grouping (openseg.pytorch ISA: down factor 8 x 8),
  # the setting the paper's FLOP figure matches.
  # Its long-range step has 8 x 8 groups (ph = pw = 8) of (H/8)(W/8) positions.
  cpp=$("$BIN" isa 64 $size $size 2 8 8 1 1 --threads "$THREADS")
  echo "$cpp" | /usr/bin/python3 -c "import json,sys; j=json.load(sys.stdin); j['variant']='isa_down8'; print(json.dumps(j))"
done
