#!/usr/bin/env bash
# Benchmark: the cost of spreading triplet-build over processes, and Zarr
# against HDF5 input, on the same phantom. One JSON object per case:
#   hdf5_1x2   one process, 2 threads, HDF5 input (chunked one slice per chunk)
#   zarr_1x2   one process, 2 threads, the same volume as blosc Zarr (chunks 16 x 512 x 512)
#   hdf5_2x1   two --part processes of 1 thread, run at once, then --merge (time includes the merge)
# and a summary with parts_vs_threads (hdf5_1x2 seconds / hdf5_2x1 seconds: 1.0 = distribution is free)
# and zarr_vs_hdf5 (throughput ratio), plus whether the outputs are byte-identical.
# usage: bench/scale.sh [DEPTHxHEIGHTxWIDTH]   (default 32x1536x1536)
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE=${1:-32x1536x1536}
BIN=${BIN:-build/apps}
WORK=${WORK:-out/bench_scale}
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)  # absolute: the specs name the volumes by it
command -v /usr/bin/time >/dev/null || { echo "bench: needs /usr/bin/time (apt-get install time)" >&2; exit 1; }
[[ -f "$WORK/volume.size" && "$(cat "$WORK/volume.size")" == "$SIZE" ]] || {
  rm -rf "$WORK/volume.h5" "$WORK/volume.zarr"
  "$BIN/em-phantom" --out "$WORK/volume.h5" --size "$SIZE" --seed 3 --quiet --truth "$WORK/truth.json"
  "$BIN/em-phantom" --out "$WORK/volume.zarr" --size "$SIZE" --seed 3 --quiet --truth "$WORK/truth2.json" \
    --chunks 16x512x512 --compression blosc:lz4:byte
  echo "$SIZE" > "$WORK/volume.size"
}
spec() {  # source path -> spec file
  cat > "$WORK/$2.ini" <<SPEC
[output]
tile_size = 512
stride = 512
shard_size = 64
[source.bench]
path = $1
SPEC
}
spec "$WORK/volume.h5" hdf5
spec "$WORK/volume.zarr" zarr
sync
timed() {  # name, command... -> seconds and peak RSS (MiB) into $WORK/name.time
  local name=$1; shift
  /usr/bin/time -f '%e %M' -o "$WORK/$name.time" "$@" > /dev/null
}
rm -rf "$WORK/o_hdf5_1x2" "$WORK/o_zarr_1x2" "$WORK/o_hdf5_2x1"
timed hdf5_1x2 "$BIN/triplet-build" --config "$WORK/hdf5.ini" --out "$WORK/o_hdf5_1x2" --threads 2 --quiet
timed zarr_1x2 "$BIN/triplet-build" --config "$WORK/zarr.ini" --out "$WORK/o_zarr_1x2" --threads 2 --quiet
start=$(date +%s.%N)
timed part0 "$BIN/triplet-build" --config "$WORK/hdf5.ini" --out "$WORK/o_hdf5_2x1" --threads 1 --quiet --part 0/2 &
timed part1 "$BIN/triplet-build" --config "$WORK/hdf5.ini" --out "$WORK/o_hdf5_2x1" --threads 1 --quiet --part 1/2 &
wait
timed merge "$BIN/triplet-build" --merge "$WORK/o_hdf5_2x1" --quiet
end=$(date +%s.%N)
same=$( (cd "$WORK/o_hdf5_1x2" && sha256sum ./*) | diff -q - <(cd "$WORK/o_hdf5_2x1" && sha256sum ./*) >/dev/null && echo true || echo false)
/usr/bin/python3 - "$WORK" "$SIZE" "$start" "$end" "$same" "$(nproc)" <<'PY'
import json, sys
work, size, start, end, same, cores = sys.argv[1:]
d, h, w = map(int, size.split("x"))
mb = d * h * w / 1e6
def t(name):
    s, rss = open(f"{work}/{name}.time").read().split()
    return float(s), int(rss) / 1024
out = {}
for name in ("hdf5_1x2", "zarr_1x2"):
    s, rss = t(name)
    out[name] = {"case": "scale", "run": name, "size": size, "seconds": s, "mb_per_s": mb / s, "peak_rss_mb": rss}
s2 = float(end) - float(start)
rss2 = max(t(n)[1] for n in ("part0", "part1", "merge"))
out["hdf5_2x1"] = {"case": "scale", "run": "hdf5_2x1", "size": size, "seconds": s2, "mb_per_s": mb / s2, "peak_rss_mb": rss2,
                   "merge_seconds": t("merge")[0]}
for v in out.values():
    print(json.dumps(v))
print(json.dumps({"case": "scale_summary", "cores": int(cores),
                  "parts_vs_threads": out["hdf5_1x2"]["seconds"] / out["hdf5_2x1"]["seconds"],
                  "zarr_vs_hdf5": out["zarr_1x2"]["mb_per_s"] / out["hdf5_1x2"]["mb_per_s"],
                  "parts_byte_identical": same == "true"}))
PY
