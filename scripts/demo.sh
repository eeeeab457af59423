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
