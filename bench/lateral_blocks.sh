#!/usr/bin/env bash
# Benchmark (not a test): peak RSS of triplet-build on sections far larger
# than a lateral block, with output.lateral_block B against 0 (never cut).
# One JSON object per case: lateral_block, chunk cache (MiB), seconds, peak
# RSS (/usr/bin/time's maximum resident set), CPU seconds, triplets, and a
# digest of the triplets and rejected.csv (cases with one block share it).
# The volume: an em-phantom of DEPTH x 2048 x 2048 (seed 7) tiled REPEAT x
# REPEAT times laterally (bench_tile_volume; drawing 0.6 Gpx sections with
# em-phantom takes many minutes each here), as blosc-lz4 Zarr with
# (1, 1024, 1024) chunks.
# usage: bench/lateral_blocks.sh [DEPTH] [REPEAT]   (default 3 x 24576 x 24576: 1.8 GB)
# Env: BIN (build/apps), BENCH_BIN (build/bench), WORK (out/bench_blocks), BLOCKS ("0 8192 4096"),
#      CACHES ("512 64"), THREADS (2). Outputs are deleted after their digest is taken; the volume is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
DEPTH=${1:-3}
REPEAT=${2:-12}
BIN=${BIN:-build/apps}
BENCH_BIN=${BENCH_BIN:-build/bench}
WORK=${WORK:-out/bench_blocks}
BLOCKS=${BLOCKS:-"0 8192 4096"}
CACHES=${CACHES:-"512 64"}
THREADS=${THREADS:-2}
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
command -v /usr/bin/time >/dev/null || { echo "bench: needs /usr/bin/time (apt-get install time)" >&2; exit 1; }
SIZE="${DEPTH}x$((2048 * REPEAT))x$((2048 * REPEAT))"
[[ -f "$WORK/volume.size" && "$(cat "$WORK/volume.size")" == "$SIZE" ]] || {
  rm -rf "$WORK/volume.zarr" "$WORK/tile.h5"
  "$BIN/em-phantom" --out "$WORK/tile.h5" --size "${DEPTH}x2048x2048" --seed 7 --quiet --truth "$WORK/truth.json"
  "$BENCH_BIN/bench_tile_volume" "$WORK/tile.h5" "$REPEAT" zarr "$WORK/volume.zarr" 1x1024x1024
  echo "$SIZE" > "$WORK/volume.size"
}
for b in $BLOCKS; do
  # 512-px tiles every 2048 px (1/16 of each section), shards of 64.
  printf '[output]\ntile_size = 512\nstride = 2048\nshard_size = 64\nlateral_block = %s\n[source.big]\npath = %s\n' \
    "$b" "$WORK/volume.zarr" > "$WORK/b$b.ini"
done
for cache in $CACHES; do
  for b in $BLOCKS; do
    rm -rf "$WORK/o"
    start=$(date +%s.%N)
    /usr/bin/time -f '%M %U %S' -o "$WORK/rss" "$BIN/triplet-build" --quiet --json --config "$WORK/b$b.ini" --out "$WORK/o" \
      --threads "$THREADS" --cache-mb "$cache" > "$WORK/summary.json"
    end=$(date +%s.%N)
    read -r kb user sys < "$WORK/rss"
    # The spec text (in every shard) names B: digest what was built, not the files.
    for s in "$WORK"/o/shard-*.h5; do
      for d in triplets meta/yx; do h5dump -d "/$d" -b LE -o "$WORK/raw" "$s" > /dev/null && cat "$WORK/raw"; done
    done > "$WORK/built.bin"
    digest=$(cat "$WORK/o/rejected.csv" "$WORK/built.bin" | sha256sum | cut -c1-16)
    rm -f "$WORK/raw" "$WORK/built.bin"
    /usr/bin/python3 - "$SIZE" "$b" "$cache" "$THREADS" "$(echo "$end - $start" | bc)" "$kb" "$user" "$sys" "$digest" "$WORK/summary.json" \
      "$(cut -d' ' -f1 /proc/loadavg)" <<'PY'
import json, sys
size, b, cache, threads, s, kb, user, system, digest, summary, load = sys.argv[1:]
j = json.load(open(summary))
print(json.dumps({"case": "lateral_blocks", "size": size, "lateral_block": int(b), "cache_mb": int(cache), "threads": int(threads),
                  "seconds": round(float(s), 2), "peak_rss_mb": round(int(kb) / 1024), "cpu_seconds": round(float(user) + float(system), 2),
                  "triplets": j["triplets"], "candidates": j["candidates"], "digest": digest, "load_1min_after": float(load)}))
PY
    rm -rf "$WORK/o"
  done
done
