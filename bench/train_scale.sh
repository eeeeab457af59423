#!/usr/bin/env bash
# Benchmark: data-parallel ssan-train against threads, on one machine. One
# JSON object per case and a summary:
#   1x2   one process, 2 threads, batch 2B
#   2x1   two ranks (torchrun variables, 127.0.0.1), 1 thread each, batch B each (the same global batch)
# samples_per_s is the whole run's (rank 0's count of global samples / loop seconds, from --json);
# ranks_vs_threads = 2x1 / 1x2 (1.0: communication is free; the issue's goal is >= 0.9).
# usage: bench/train_scale.sh [CONFIG] [CROP] [STEPS] [B]   (default ssan_small_charbonnier, 96, 40, 3)
set -euo pipefail
cd "$(dirname "$0")/.."
CONFIG=${1:-data_specs/ssan_small_charbonnier.ini}
CROP=${2:-96}
STEPS=${3:-40}
B=${4:-3}
BIN=${BIN:-build/apps}
WORK=${WORK:-out/bench_train_scale}
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
if [[ ! -f "$WORK/b/manifest.json" ]]; then
  "$BIN/em-phantom" --out "$WORK/v.h5" --size 24x512x512 --seed 5 --quiet --truth "$WORK/truth.json"
  printf '[output]\ntile_size = 128\nstride = 128\n[source.ph]\npath = %s\n' "$WORK/v.h5" > "$WORK/s.ini"
  "$BIN/triplet-build" --config "$WORK/s.ini" --out "$WORK/b" --quiet
fi
common=(--config "$CONFIG" --data "$WORK/b" --split all --val-split none --crop "$CROP" --max-steps "$STEPS" --warmup-steps 0 --quiet --json)
rm -rf "$WORK/r1x2" "$WORK/r2x1"
"$BIN/ssan-train" "${common[@]}" --batch $((2 * B)) --threads 2 --out "$WORK/r1x2" > "$WORK/1x2.json"
PORT=$((20000 + RANDOM % 20000))
for r in 0 1; do
  RANK=$r WORLD_SIZE=2 LOCAL_RANK=$r MASTER_ADDR=127.0.0.1 MASTER_PORT=$PORT \
    "$BIN/ssan-train" "${common[@]}" --batch "$B" --threads 1 --out "$WORK/r2x1" > "$WORK/2x1.rank$r.json" &
done
wait
/usr/bin/python3 - "$WORK" "$CONFIG" "$CROP" "$STEPS" "$B" "$(nproc)" <<'PY'
import json, sys
work, config, crop, steps, b, cores = sys.argv[1:]
one, two = json.load(open(f"{work}/1x2.json")), json.load(open(f"{work}/2x1.rank0.json"))
for name, r, procs, threads, batch in (("1x2", one, 1, 2, 2 * int(b)), ("2x1", two, 2, 1, int(b))):
    print(json.dumps({"case": name, "processes": procs, "threads_each": threads, "batch_each": batch, "config": config, "crop": int(crop),
                      "steps": r["steps"], "samples_per_s": r["samples_per_s"], "data_wait_share": r["data_wait_share"], "cores": int(cores)}))
print(json.dumps({"case": "summary", "ranks_vs_threads": two["samples_per_s"] / one["samples_per_s"]}))
PY
