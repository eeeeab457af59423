#!/usr/bin/env bash
# Installs every Debian 12 package emtriplet needs to build, test and run.
# Idempotent: installs only what is missing, with one `apt-get update` first.
# Usage: scripts/setup.sh [--bench] [--fixtures] [--fuzz]   (--bench adds the
# Python reference stack used by bench/ only; --fixtures what
# tests/data/make_zarr_fixtures.py needs; the product never runs Python.
# --fuzz adds clang and its libFuzzer runtime for scripts/fuzz.sh: CI needs
# none of them, its corpus replays and sanitizer tests build with gcc.)
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config
  libhdf5-dev hdf5-tools
  libopencv-dev
  libtorch-dev
  libboost-program-options-dev
  libtbb-dev
  libfmt-dev
  libgtest-dev libgmock-dev
  nlohmann-json3-dev
  # Chunk codecs of the Zarr / N5 / precomputed readers (libs/emio), found through pkg-config.
  libblosc-dev libzstd-dev zlib1g-dev liblzma-dev
  # SHA-256 of shards through OpenSSL: uses the CPU's SHA extensions (~10x our portable code).
  libssl-dev
  # Figures (loss.png: libs/plot) rendered headless to PNG by MathGL.
  libmgl-dev
  # LibTorch calls libblas.so.3; the reference BLAS is ~30x slower than OpenBLAS.
  libopenblas0-openmp
  # Data-parallel ssan-train: LibTorch's c10d ProcessGroupGloo needs the Gloo headers.
  libgloo-dev
  # `mpirun -n N triplet-build` (EMT_WITH_MPI, on when found): OpenMPI and its launcher.
  libopenmpi-dev openmpi-bin
  # tests/ssan/test_interop.cpp checks the Python reference (bench/reference/ssan_ref.py)
  # predicts as the C++ does; python3-onnx verifies bench/reference/export_onnx.py.
  python3-torch python3-onnx
)
for arg in "$@"; do
  case "$arg" in
    --bench) packages+=(python3-h5py python3-opencv python3-skimage python3-torch python3-torchvision python3-numpy python3-matplotlib libbenchmark-dev time) ;;  # matplotlib: bench/quality/plot.py
    --fuzz) packages+=(clang libclang-rt-14-dev) ;;
    --fixtures) packages+=(python3-zarr python3-numcodecs python3-opencv) ;;  # tests/data/make_zarr_fixtures.py only
    *) echo "setup: unknown option $arg (expected --bench, --fuzz, --fixtures)" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${packages[@]}"; do
  [[ "$p" == \#* ]] && continue
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  echo "setup: installing ${#missing[@]} package(s): ${missing[*]}" >&2
  SUDO=""
  [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "setup: all packages present" >&2
fi

# Report which BLAS LibTorch will call (informational).
blas=$(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3 2>/dev/null || true)
echo "setup: libblas.so.3 -> ${blas:-unknown}" >&2
