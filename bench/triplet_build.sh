#!/usr/bin/env bash
# Benchmark: triplet-build against the plain Python reference
# (bench/reference/triplet_build_ref.py) on the same phantom volume, in one run.
# Prints one JSON object per implementation and one with the ratios.
# usage: bench/triplet_build.sh [DEPTHxHEIGHTxWIDTH] [THREADS]   (default 64x2048x2048, all cores)
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE=${1:-64x2048x2048}
THREADS=${2:-$(nproc)}
BIN=${BIN:-build/apps}
WORK=${WORK:-out/bench_triplet_build}
mkdir -p "$WORK"
command -v /usr/bin/time >/dev/null || { echo "bench: needs /usr/bin/time (apt-get install time)" >&2; exit 1; }
[[ -f "$WORK/volume.h5" && -f "$WORK/volume.size" && "$(cat "$WORK/volume.size")" == "$SIZE" ]] || {
  "$BIN/em-phantom" --out "$WORK/volume.h5" --size "$SIZE" --seed 3 --quiet
  echo "$SIZE" > "$WORK/volume.size"
}
cat > "$WORK/spec.ini" <<SPEC
[output]
tile_size = 512
stride = 512
shard_size = 64
[align]
search_radius = 16
[filters]
min_ncc = 0.5
[source.bench]
path = $WORK/volume.h5
SPEC
blas=$(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3 2>/dev/null || echo unknown)
sync
run() {  # name, command...  -> JSON line merging the tool's summary with /usr/bin/time figures
  local name=$1; shift
  /usr/bin/time -f '%M %P %e' -o "$WORK/$name.time" "$@" > "$WORK/$name.json"
  read -r rss cpu wall < "$WORK/$name.time"
  /usr/bin/python3 - "$name" "$WORK/$name.json" "$rss" "${cpu%\%}" "$wall" "$SIZE" "$THREADS" "$blas" <<'PY'
import json, sys
name, path, rss, cpu, wall, size, threads, blas = sys.argv[1:]
j = json.loads(open(path).read().strip().splitlines()[-1])
d, h, w = map(int, size.split("x"))
print(json.dumps({"case": "triplet_build", "impl": name, "size": size, "threads": int(threads), "triplets": j["triplets"],
                  "rejected": j["rejected"], "seconds": float(wall), "mb_per_s": d * h * w / 1e6 / float(wall),
                  "peak_rss_mb": int(rss) / 1024, "cpu_percent": int(cpu), "blas": blas}))
PY
}
REPEATS=${REPEATS:-3}
median() {  # JSON lines on stdin -> the line with the median "seconds"
  /usr/bin/python3 -c "import json,sys; r=sorted((json.loads(l) for l in sys.stdin if l.strip()), key=lambda j: j['seconds']); m=r[len(r)//2]; m['repeats']=len(r); m['seconds_all']=[j['seconds'] for j in r]; print(json.dumps(m))"
}
CPP=$(for i in $(seq "$REPEATS"); do rm -rf "$WORK/cpp"; run cpp "$BIN/triplet-build" --config "$WORK/spec.ini" --out "$WORK/cpp" --threads "$THREADS" --quiet --json --force; done | median)
PY=$(for i in $(seq "$REPEATS"); do rm -rf "$WORK/py"; run python /usr/bin/python3 bench/reference/triplet_build_ref.py "$WORK/volume.h5" "$WORK/py" --radius 16 --min-ncc 0.5; done | median)
echo "$CPP"
echo "$PY"
/usr/bin/python3 -c "
import json,sys
c, p = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(json.dumps({'case': 'triplet_build_ratio', 'speedup': p['seconds'] / c['seconds'], 'rss_ratio': c['peak_rss_mb'] / p['peak_rss_mb'],
                  'same_triplet_count': c['triplets'] == p['triplets']}))" "$CPP" "$PY"
