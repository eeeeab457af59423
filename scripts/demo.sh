#!/usr/bin/env bash
# Runs the main job end to end on the embedded default (a phantom volume) and
# on the real ssTEM stack in ../shared/data when present, printing where each
# output is. Usage: scripts/demo.sh [OUT_DIR]   (default: out/demo)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-out/demo}
bash scripts/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build --parallel "$(nproc)"
BIN=build/apps
mkdir -p "$OUT"

step() { printf '\n== %s\n' "$*" >&2; }

step "1. em-phantom: synthetic EM volume with drift and defects"
"$BIN/em-phantom" --out "$OUT/phantom.h5" --size 32x1536x1536 --seed 1
echo "phantom volume: $OUT/phantom.h5 (truth: $OUT/phantom.truth.json)"

step "2. triplet-build on the phantom: align, filter, histogram-match, shard"
sed "s|^path = out/demo/phantom.h5|path = $OUT/phantom.h5|" data_specs/phantom.ini > "$OUT/phantom.ini"
"$BIN/triplet-build" --config "$OUT/phantom.ini" --out "$OUT/phantom_triplets" --force
echo "phantom shards: $OUT/phantom_triplets (manifest.json, rejected.csv)"

step "3. triplet-split: 3:1:1 without slices shared across partitions; a look at the data"
"$BIN/triplet-split" "$OUT/phantom_triplets" --seed 0
"$BIN/triplet-inspect" "$OUT/phantom_triplets" --montage "$OUT/phantom_accepted.png" --rows 6
"$BIN/triplet-inspect" "$OUT/phantom_triplets" --montage "$OUT/phantom_rejected.png" --rejected --rows 6 --quiet
echo "splits: $OUT/phantom_triplets/splits; montages: $OUT/phantom_accepted.png, $OUT/phantom_rejected.png"

if [[ -x "$BIN/ssan-train" ]]; then
  step "4. ssan-train: a short training of the tiny SSAN on the phantom triplets"
  rm -rf "$OUT/phantom_run"
  "$BIN/ssan-train" --config data_specs/ssan_tiny.ini --data "$OUT/phantom_triplets" --out "$OUT/phantom_run" \
    --crop 128 --batch 3 --epochs 1 --decay-epochs 0 --max-minutes 3 --val-samples 4
  RUN="$OUT/phantom_run"
  step "5. ssan-eval: SSAN against linear, flow and blur on the test split"
  "$BIN/ssan-eval" --checkpoint "$RUN/last.pt" --data "$OUT/phantom_triplets" --split test --out "$RUN/eval"
  echo "run: $RUN (metrics.csv, loss.png, montage-epoch*.png, best.pt); table: $RUN/eval/eval.md; predictions side by side: $RUN/eval/montage.png"
  echo "(one epoch of a 2,921-parameter model: it shows the pipeline, not the method; real runs and results: docs/training.md)"
fi

if [[ -d ../shared/data/isbi2012 ]]; then
  step "6. the data steps on the real ISBI 2012 ssTEM stack, and its baselines"
  "$BIN/triplet-build" --config data_specs/isbi2012.ini --out "$OUT/isbi_triplets" --force
  "$BIN/triplet-split" "$OUT/isbi_triplets"
  "$BIN/triplet-inspect" "$OUT/isbi_triplets" --montage "$OUT/isbi_accepted.png" --rows 6 --quiet
  "$BIN/triplet-inspect" "$OUT/isbi_triplets" --montage "$OUT/isbi_rejected.png" --rejected --rows 6 --quiet
  "$BIN/triplet-export" "$OUT/isbi_triplets" --format vimeo --out "$OUT/isbi_vimeo" --force  # a rerun replaces its own files
  "$BIN/ssan-eval" --baselines-only --data "$OUT/isbi_triplets" --split test
  echo "ISBI shards: $OUT/isbi_triplets; montages: $OUT/isbi_accepted.png, $OUT/isbi_rejected.png; Vimeo layout: $OUT/isbi_vimeo"
else
  echo "skipping the real-data build: ../shared/data/isbi2012 is absent" >&2
fi
