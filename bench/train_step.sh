#!/usr/bin/env bash
# Benchmark: one SSAN training step (ssan_small, batch 3) in C++ against the
# Python PyTorch reference, same thread count, in one run. Prints JSON lines
# and the ratio. usage: bench/train_step.sh [CROP] [THREADS]
set -euo pipefail
cd "$(dirname "$0")/.."
CROP=${1:-96}
THREADS=${2:-$(nproc)}
BIN=${BIN:-build/bench/bench_train_step}
[[ -x "$BIN" ]] || { echo "bench: build with -DEMT_BUILD_BENCH=ON first ($BIN missing)" >&2; exit 1; }
export OMP_NUM_THREADS=$THREADS
CPP=$("$BIN" data_specs/ssan_small.ini 3 "$CROP" 5 "$THREADS")
echo "$CPP"
SPLIT=$(echo "$CPP" | /usr/bin/python3 -c "import json,sys; print(*json.load(sys.stdin)['split'])")
PY=$(/usr/bin/python3 bench/reference/ssan_ref.py 32 3 4 16 3 "$CROP" 5 "$THREADS" $SPLIT)
echo "$PY"
/usr/bin/python3 -c "
import json,sys
c, p = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(json.dumps({'case': 'train_step_ratio', 'cpp_over_python_time': c['ms_per_step'] / p['ms_per_step'], 'same_params': c['params'] == p['params']}))" "$CPP" "$PY"
