#!/usr/bin/env bash
# find_package(emtriplet) as a downstream project uses it: installs this build
# into a scratch prefix, configures and builds examples/consumer against that
# prefix alone, and runs it on a small shard directory made by the installed
# tools (and, where the package has ssan, on a tiny checkpoint trained by the
# installed ssan-train and on the shipped models/ssan_cpu_flyem.pth).
# Usage (ctest runs it): consumer.sh BUILD_DIR SOURCE_DIR WITH_TORCH(0|1) CXX_COMPILER "FLAGS" [LAUNCHER]
# FLAGS: compile and link flags the consumer needs to link this build's static
# libraries (the sanitizer flags of an EMT_SANITIZE build).
set -euo pipefail
build=$1 src=$2 with_torch=$3 cxx=$4 flags=$5 launcher=${6:-}
fail() { echo "consumer.sh: FAIL: $*" >&2; exit 1; }
# A fixed scratch path inside the build: the same compile commands every run, so ccache hits.
work=$build/tests/package/work
rm -rf "$work"
mkdir -p "$work"
prefix=$work/prefix

cmake --install "$build" --prefix "$prefix" > "$work/install.log"
config=$prefix/lib/cmake/emtriplet
[[ -f $config/emtripletConfig.cmake && -f $config/emtripletTargets.cmake ]] || fail "no package config under $config"
# The exported targets name no path of this source or build tree, and not the internal warnings target.
if grep -n -e "$src/" -e "$build/" -e "emt_warnings" "$config"/emtriplet*.cmake; then fail "the exported package names build-tree paths or emt_warnings"; fi

cmake -S "$src/examples/consumer" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" \
  -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_CXX_COMPILER_LAUNCHER="$launcher" \
  -DCMAKE_CXX_FLAGS="$flags" -DCMAKE_EXE_LINKER_FLAGS="$flags" > "$work/configure.log" || { cat "$work/configure.log"; fail "configure"; }
cmake --build "$work/build" --parallel 2 > "$work/build.log" || { cat "$work/build.log"; fail "build"; }

# A small shard directory, made by the installed tools.
"$prefix/bin/em-phantom" --out "$work/v.h5" --size 12x288x288 --seed 3 --defect-rate 0 --cell-size 48 --quiet
printf '[output]\ntile_size = 128\nstride = 128\n[filters]\nmin_ncc = 0.5\n[source.v]\npath = %s\n' "$work/v.h5" > "$work/spec.ini"
summary=$("$prefix/bin/triplet-build" --config "$work/spec.ini" --out "$work/shards" --quiet --json)
n=$(sed -n 's/.*"triplets":\([0-9]*\).*/\1/p' <<<"$summary")
[[ -n $n && $n -gt 0 ]] || fail "triplet-build made no triplets: $summary"

out=$("$work/build/shard_summary" "$work/shards") || fail "shard_summary exited $?: $out"
echo "$out"
grep -q "^$work/shards: $n triplets accepted of " <<<"$out" || fail "summary does not report the $n triplets triplet-build made"
grep -q "^verify: ok$" <<<"$out" || fail "verification failed"
grep -q "^read back: $n triplets from " <<<"$out" || fail "did not read back $n triplets"

if [[ $with_torch == 1 ]]; then
  [[ -x $work/build/checkpoint_info ]] || fail "the package has ssan but checkpoint_info was not built"
  # A tiny checkpoint trained on those shards by the installed tools (one epoch, ~10 s) ...
  "$prefix/bin/triplet-split" "$work/shards" --seed 0 --group z-block:3 --quiet
  "$prefix/bin/ssan-train" --config "$src/data_specs/ssan_tiny.ini" --data "$work/shards" --out "$work/run" --crop 64 --batch 2 \
    --epochs 1 --decay-epochs 0 --val-samples 2 --threads 2 --quiet 2> "$work/train.log" || { cat "$work/train.log"; fail "ssan-train"; }
  # ... and the shipped state dict (models/README.md: 586,548 parameters); ssan_tiny.ini has 2,921.
  for case in "$work/run/last.pt checkpoint 2921" "$src/models/ssan_cpu_flyem.pth state_dict 586548"; do
    read -r weights kind params <<<"$case"
    out=$("$work/build/checkpoint_info" "$weights") || fail "checkpoint_info exited $? on $weights: $out"
    echo "$out"
    grep -q "^kind: ${kind/_/ }$" <<<"$out" || fail "$weights: not read as a $kind"
    grep -q "^parameters: $params$" <<<"$out" || fail "$weights: not the $params-parameter model"
    grep -q "^output: 1x1x64x64, mean " <<<"$out" || fail "$weights: no 1x1x64x64 prediction"
  done
else
  # Built without LibTorch (the sanitizer pass): no emtriplet::ssan, so no checkpoint target.
  [[ ! -e $work/build/checkpoint_info ]] || fail "checkpoint_info built although the package has no ssan"
  grep -q "ssan OFF" "$work/configure.log" || fail "the package does not say it lacks ssan"
fi
echo "consumer.sh: ok"
