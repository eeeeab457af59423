#!/usr/bin/env bash
# Benchmark (not a test): slice read throughput of the same content as HDF5
# (chunked one slice per chunk) and as blosc Zarr v2 (chunks CHUNKS, default
# 64x512x512), read in z order by bench_read_slices with the default chunk cache
# (or CACHE_MB), in separate processes, ROUNDS times interleaved. Prints each run's
# JSON, then a summary: median MB/s and CPU seconds of each, zarr_vs_hdf5 (MB/s
# ratio, 1 = as fast), zarr_vs_hdf5_cpu (HDF5 CPU seconds / Zarr's: steadier under
# load), peak RSS of each.
# usage: bench/read_slices.sh [DEPTHxHEIGHTxWIDTH] [REPEAT]   (default 64x8192x8192 = 4 GiB, REPEAT 8)
# Env: BIN, BENCH_BIN, WORK (out/bench_scale: shares bench/scale.sh's volumes), ROUNDS (3),
# THREADS (1), PASSES (1), CACHE_MB (the emio default), CHUNKS.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE=${1:-64x8192x8192}
REPEAT=${2:-8}
BIN=${BIN:-build/apps}
BENCH_BIN=${BENCH_BIN:-build/bench}
WORK=${WORK:-out/bench_scale}
ROUNDS=${ROUNDS:-3}
THREADS=${THREADS:-1}
PASSES=${PASSES:-1}
CHUNKS=${CHUNKS:-64x512x512}
BIN=$BIN BENCH_BIN=$BENCH_BIN bash bench/scale_volume.sh "$WORK" "$SIZE" "$REPEAT" "$CHUNKS" hdf5 zarr
args=(--threads "$THREADS" --passes "$PASSES")
[[ -n "${CACHE_MB:-}" ]] && args+=(--cache-mb "$CACHE_MB")
runs=$(mktemp)
trap 'rm -f "$runs"' EXIT
for _ in $(seq 1 "$ROUNDS"); do
  for v in volume.h5 volume.zarr; do
    "$BENCH_BIN/bench_read_slices" "$WORK/$v" "${args[@]}" | tee -a "$runs"
  done
done
/usr/bin/python3 - "$runs" "$(cut -d' ' -f1-3 /proc/loadavg)" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
by = {k: [r for r in runs if r["kind"] == k] for k in ("hdf5", "zarr")}
med = lambda k, f: statistics.median(r[f] for r in by[k])
print(json.dumps({"case": "read_slices_summary", "shape": runs[0]["shape"], "rounds": len(by["hdf5"]),
                  "threads": runs[0]["threads"], "passes": runs[0]["passes"], "cache_mb": runs[0]["cache_mb"],
                  "hdf5_mb_per_s": med("hdf5", "mb_per_s"), "zarr_mb_per_s": med("zarr", "mb_per_s"),
                  "zarr_vs_hdf5": med("zarr", "mb_per_s") / med("hdf5", "mb_per_s"),
                  "hdf5_cpu_seconds": med("hdf5", "cpu_seconds"), "zarr_cpu_seconds": med("zarr", "cpu_seconds"),
                  "zarr_vs_hdf5_cpu": med("hdf5", "cpu_seconds") / med("zarr", "cpu_seconds"),
                  "hdf5_peak_rss_mb": max(r["peak_rss_mb"] for r in by["hdf5"]),
                  "zarr_peak_rss_mb": max(r["peak_rss_mb"] for r in by["zarr"]),
                  "zarr_plane_loads": by["zarr"][0].get("chunk_cache", {}).get("plane_loads"),
                  "load_after": sys.argv[2]}))
PY
