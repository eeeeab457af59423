#!/usr/bin/env bash
# Installs what is missing, configures, builds and runs every test.
# Exits non-zero on any failure. Usage: scripts/test.sh [ctest args...]
# Sanitized builds (EMT_SANITIZE) run with ASan/UBSan options that make every
# finding fail its test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
BUILD_DIR=${BUILD_DIR:-build}
# EMT_CMAKE_ARGS: extra configure options (.ci/run's sanitizer pass).
# shellcheck disable=SC2086
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DEMT_BUILD_TESTS=ON ${EMT_CMAKE_ARGS:-}
cmake --build "$BUILD_DIR" --parallel "$(nproc)"
cd "$BUILD_DIR"
# Only read by sanitized binaries: any finding is a failure (also in the tools
# the tests start, which inherit these).
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:check_initialization_order=1:strict_init_order=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
ctest --output-on-failure --parallel "$(nproc)" --timeout 600 "$@"
