#!/usr/bin/env bash
# Benchmark (not a test): triplet-build on a multi-GiB volume. One JSON object per case:
#   hdf5_1x2    one process, 2 threads, HDF5 input (chunked one slice per chunk)
#   zarr_1x2    the same, blosc Zarr input with chunks CHUNKS (default 64x512x512), default chunk cache
#   zarrbig_1x2 the same with a chunk cache that holds one layer of chunks (ZARR_BIG_CACHE=1)
#   png_1x2     the same, PNG image stack input
#   parts_2x1   two --part processes of 1 thread at once (the last to finish merges; seconds include it)
#   mpi_2x1     mpirun -n 2 ... --threads 1 (rank 0 merges; seconds include start-up and merge)
# then a summary: zarr_vs_hdf5 and png_vs_hdf5 (throughput ratios), parts_vs_threads and
# mpi_vs_threads (hdf5_1x2 seconds / 2x1 seconds: 1.0 = distribution is free), whether the
# 2x1 outputs are byte-identical to hdf5_1x2's, and the load average before and after. The cases
# run one after another in that order, ROUNDS times, interleaved (a shared machine's load
# drifts); figures are medians over the rounds. Outputs are deleted after their digest is taken.
# Peak RSS: /usr/bin/time's maximum resident set of the process (mpirun: its largest child);
# cpu_seconds: its user + system time with its children's (mb_per_cpu_s: a load-independent rate).
# usage: bench/scale.sh [DEPTHxHEIGHTxWIDTH] [REPEAT]   (default 64x8192x8192 = 4 GiB, REPEAT 8)
# The volume: bench/scale_volume.sh (an em-phantom tiled REPEAT x REPEAT times laterally).
# Env: BIN (build/apps), BENCH_BIN (build/bench), WORK (out/bench_scale), ROUNDS (1), CHUNKS,
# CASES (the case names to run, space-separated; default all but zarrbig_1x2, which ZARR_BIG_CACHE=1 adds).
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE=${1:-64x8192x8192}
REPEAT=${2:-8}
BIN=${BIN:-build/apps}
BENCH_BIN=${BENCH_BIN:-build/bench}
WORK=${WORK:-out/bench_scale}
ROUNDS=${ROUNDS:-1}
CHUNKS=${CHUNKS:-64x512x512}
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)  # absolute: the specs name the volumes by it
command -v /usr/bin/time >/dev/null || { echo "bench: needs /usr/bin/time (apt-get install time)" >&2; exit 1; }
IFS=x read -r D H W <<< "$SIZE"
CASES=${CASES:-hdf5_1x2 parts_2x1 mpi_2x1 zarr_1x2 png_1x2 $([[ "${ZARR_BIG_CACHE:-0}" == 1 ]] && echo zarrbig_1x2)}
FORMATS=""  # the inputs the cases read
[[ " $CASES " =~ \ (hdf5|parts|mpi) ]] && FORMATS+=" hdf5"
[[ " $CASES " == *" zarr"* ]] && FORMATS+=" zarr"
[[ " $CASES " == *" png"* ]] && FORMATS+=" png"
# shellcheck disable=SC2086
BIN=$BIN BENCH_BIN=$BENCH_BIN bash bench/scale_volume.sh "$WORK" "$SIZE" "$REPEAT" "$CHUNKS" $FORMATS
spec() {  # source path, name -> spec file: 256-px tiles every 1024 px (64 per 8192^2 slice)
  cat > "$WORK/$2.ini" <<SPEC
[output]
tile_size = 256
stride = 1024
shard_size = 256
[source.bench]
path = $1
SPEC
}
spec "$WORK/volume.h5" hdf5
spec "$WORK/volume.zarr" zarr
spec "$WORK/volume_png" png
# One chunk layer (CHUNKS z x full slice) plus room: what sequential z reads need to decode each chunk once.
IFS=x read -r CZ CY CX <<< "$CHUNKS"
BIG_CACHE=$(( (CZ * ((H + CY - 1) / CY) * CY * ((W + CX - 1) / CX) * CX) / 1048576 + 256 ))
MPIRUN=(mpirun --allow-run-as-root --oversubscribe --mca btl self,vader --mca btl_vader_single_copy_mechanism none)
sync
: > "$WORK/runs.txt"
run() {  # round, name, command... -> "round name seconds peak_kb user_s sys_s load" in runs.txt, digest of the output
  local round=$1 name=$2; shift 2
  [[ " $CASES " == *" $name "* ]] || return 0
  rm -rf "$WORK/o"
  local start end
  start=$(date +%s.%N)
  /usr/bin/time -f '%M %U %S' -o "$WORK/rss" "$@" > /dev/null
  end=$(date +%s.%N)
  echo "$round $name $(echo "$end - $start" | bc) $(cat "$WORK/rss") $(cat /proc/loadavg | cut -d' ' -f1)" >> "$WORK/runs.txt"
  (cd "$WORK/o" && sha256sum ./* | sha256sum | cut -c1-16) > "$WORK/$name.digest"
  rm -rf "$WORK/o"
}
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
TB=("$BIN/triplet-build" --quiet)
for r in $(seq 1 "$ROUNDS"); do
  run "$r" hdf5_1x2 "${TB[@]}" --config "$WORK/hdf5.ini" --out "$WORK/o" --threads 2
  run "$r" parts_2x1 bash -c "$BIN/triplet-build --quiet --config $WORK/hdf5.ini --out $WORK/o --threads 1 --part 0/2 & p=\$!
    $BIN/triplet-build --quiet --config $WORK/hdf5.ini --out $WORK/o --threads 1 --part 1/2 && wait \$p"
  run "$r" mpi_2x1 "${MPIRUN[@]}" -n 2 "${TB[@]}" --config "$WORK/hdf5.ini" --out "$WORK/o" --threads 1
  run "$r" zarr_1x2 "${TB[@]}" --config "$WORK/zarr.ini" --out "$WORK/o" --threads 2
  run "$r" png_1x2 "${TB[@]}" --config "$WORK/png.ini" --out "$WORK/o" --threads 2
  run "$r" zarrbig_1x2 "${TB[@]}" --config "$WORK/zarr.ini" --out "$WORK/o" --threads 2 --cache-mb "$BIG_CACHE"
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
/usr/bin/python3 - "$WORK" "$SIZE" "$CHUNKS" "$(nproc)" "$load_before" "$load_after" <<'PY'
import json, statistics, sys
work, size, chunks, cores, load_before, load_after = sys.argv[1:]
d, h, w = map(int, size.split("x"))
mb = d * h * w / 1e6
runs = {}
for line in open(f"{work}/runs.txt"):
    r, name, s, kb, user, system, load = line.split()
    runs.setdefault(name, []).append((float(s), int(kb) / 1024, float(load), float(user) + float(system)))
out = {}
for name, rs in runs.items():
    s = statistics.median(x[0] for x in rs)
    out[name] = {"case": "scale", "run": name, "size": size, "chunks": chunks if name.startswith("zarr") else None,
                 "rounds": len(rs), "seconds": s, "mb_per_s": mb / s, "peak_rss_mb": max(x[1] for x in rs),
                 # CPU time (user + system of the process and its children): steadier than wall time under load.
                 "cpu_seconds": statistics.median(x[3] for x in rs), "mb_per_cpu_s": mb / statistics.median(x[3] for x in rs),
                 "load_1min_after": [x[2] for x in rs]}
    print(json.dumps(out[name]))
digest = {n: open(f"{work}/{n}.digest").read().strip() for n in runs}
ratio = lambda a, b: out[a]["mb_per_s"] / out[b]["mb_per_s"] if a in out and b in out else None
print(json.dumps({"case": "scale_summary", "cores": int(cores), "size": size,
                  "zarr_vs_hdf5": ratio("zarr_1x2", "hdf5_1x2"), "zarrbig_vs_hdf5": ratio("zarrbig_1x2", "hdf5_1x2"),
                  "png_vs_hdf5": ratio("png_1x2", "hdf5_1x2"),
                  "parts_vs_threads": ratio("parts_2x1", "hdf5_1x2"), "mpi_vs_threads": ratio("mpi_2x1", "hdf5_1x2"),
                  # Same spec, so the same bytes (other inputs name another path in the manifest).
                  "byte_identical_to_hdf5_1x2": {n: digest[n] == digest["hdf5_1x2"] for n in ("parts_2x1", "mpi_2x1") if n in digest and "hdf5_1x2" in digest},
                  "load_before": load_before, "load_after": load_after}))
PY
