#!/usr/bin/env bash
# Builds the libFuzzer harnesses (fuzz/, clang, -DEMT_FUZZ=ON) and fuzzes each
# for SECONDS on one core. New inputs go to BUILD_DIR/fuzz-corpus/NAME (the
# committed seeds in fuzz/corpus/NAME are read, never written). A crash,
# contract violation (an error other than emt::Error naming the file), hang
# (> 10 s per input) or allocation over 2 GiB is saved as
# BUILD_DIR/fuzz-findings/NAME-* (emptied at the start of each run), and the
# script exits 1 if any finding is in this project's code
# (those inside libhdf5, LibTorch or OpenCV are listed as third-party). Copy a
# finding into fuzz/corpus/NAME/ once fixed: the fuzz_corpus.NAME ctest replays it.
# Usage: scripts/fuzz.sh [SECONDS per target, default 60] [TARGET...]
#        targets: spec ssan_config run_json manifest split_file image_stack hdf5_source shard zip_archive checkpoint
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
all=(spec ssan_config run_json manifest split_file image_stack hdf5_source shard zip_archive checkpoint)
targets=("$@")
((${#targets[@]})) || targets=("${all[@]}")

bash scripts/setup.sh --fuzz
BUILD_DIR=${BUILD_DIR:-build-fuzz}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  -DEMT_FUZZ=ON -DEMT_BUILD_TESTS=OFF >/dev/null
cmake --build "$BUILD_DIR" --parallel "$(nproc)" --target "${targets[@]/#/fuzz_}"

rm -rf "$BUILD_DIR/fuzz-findings"
mkdir -p "$BUILD_DIR/fuzz-findings" "$BUILD_DIR/fuzz-logs"
# LibTorch and OpenCV are not instrumented: their allocations look like leaks
# at exit, and ASan's own checks are enough to catch ours.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0}

# Where a finding happened: the first stack frame that is either in a
# third-party library or in this project's sources. Crashes inside libhdf5,
# LibTorch or OpenCV on damaged files are reported but not counted as ours
# (docs/fuzzing.md lists them); everything else fails the script.
classify() {
  local bin=$1 input=$2 frame
  frame=$(timeout -s KILL 120 "$bin" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=2048 "$input" 2>&1 | grep -E '^ +#[0-9]+ ' |
          grep -m1 -E "lib(hdf5|torch|c10|opencv|tiff|png|jpeg|webp|z|boost)[^ ]*\.so|$PWD/(libs|apps|fuzz)/" || true)
  if [[ "$frame" =~ lib(hdf5|torch|c10|opencv|tiff|png|jpeg|webp|z|boost)[^\ ]*\.so ]]; then
    echo "third-party (${BASH_REMATCH[0]})"
  else
    echo "ours: ${frame:-no frame}"
  fi
}

ours=0
for t in "${targets[@]}"; do
  corpus="$BUILD_DIR/fuzz-corpus/$t"
  mkdir -p "$corpus"
  echo "fuzz: $t for ${seconds}s" >&2
  # The HDF5 readers meet libhdf5's own crashes (docs/fuzzing.md): there
  # -fork=1 -ignore_* saves each finding and fuzzing goes on for the whole
  # time. Elsewhere one process fuzzes without restarts (fork mode reloads the
  # corpus per job) and stops at the first finding.
  mode=()
  [[ "$t" == hdf5_source || "$t" == shard ]] && mode=(-fork=1 -ignore_crashes=1 -ignore_ooms=1 -ignore_timeouts=1)
  "$BUILD_DIR/fuzz/fuzz_$t" "$corpus" "fuzz/corpus/$t" -max_total_time="$seconds" "${mode[@]}" -rss_limit_mb=2048 \
    -malloc_limit_mb=2048 -timeout=10 -print_final_stats=1 -artifact_prefix="$BUILD_DIR/fuzz-findings/$t-" \
    >"$BUILD_DIR/fuzz-logs/$t.log" 2>&1 || true
  grep -E '^#[0-9]+: cov|^stat::number_of_executed_units' "$BUILD_DIR/fuzz-logs/$t.log" | tail -1 >&2 || true
  for f in "$BUILD_DIR/fuzz-findings/$t-"*; do
    [[ -e "$f" ]] || continue
    [[ "$f" == *-slow-unit-* ]] && continue  # slower than 10 s once, not a failure by itself
    kind=$(classify "$BUILD_DIR/fuzz/fuzz_$t" "$f")
    echo "fuzz: finding $f: $kind" >&2
    [[ "$kind" == ours* ]] && ours=$((ours + 1))
  done
done
if ((ours)); then
  echo "fuzz: $ours finding(s) in this project's code (inputs in $BUILD_DIR/fuzz-findings/)" >&2
  exit 1
fi
echo "fuzz: nothing found in this project's code in ${targets[*]} (${seconds}s each)" >&2
