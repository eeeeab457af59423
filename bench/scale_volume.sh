#!/usr/bin/env bash
# Benchmark helper (bench/scale.sh, bench/read_slices.sh): the big test volume in
# WORK, written in each FORMAT asked for (hdf5 -> volume.h5, zarr -> volume.zarr,
# png -> volume_png) unless already there for the same SIZE REPEAT CHUNKS.
# The volume is an em-phantom of DEPTH x HEIGHT/REPEAT x WIDTH/REPEAT (seed 3)
# tiled REPEAT x REPEAT times laterally (bench_tile_volume): drawing 4 Gvoxel
# with em-phantom takes hours here. HDF5 is chunked one slice per chunk; Zarr
# is v2, blosc lz4 level 5 byte shuffle, chunks CHUNKS.
# usage: bench/scale_volume.sh WORK DEPTHxHEIGHTxWIDTH REPEAT CHUNKS FORMAT...   (env BIN, BENCH_BIN)
set -euo pipefail
WORK=$1 SIZE=$2 REPEAT=$3 CHUNKS=$4
shift 4
BIN=${BIN:-build/apps}
BENCH_BIN=${BENCH_BIN:-build/bench}
IFS=x read -r D H W <<< "$SIZE"
mkdir -p "$WORK"
if [[ ! -f "$WORK/volume.size" || "$(cat "$WORK/volume.size")" != "$SIZE $REPEAT $CHUNKS" ]]; then
  rm -rf "$WORK/volume.h5" "$WORK/volume.zarr" "$WORK/volume_png" "$WORK/tile.h5" "$WORK/volume.size"
fi
[[ -f "$WORK/tile.h5" ]] || "$BIN/em-phantom" --out "$WORK/tile.h5" --size "${D}x$((H / REPEAT))x$((W / REPEAT))" --seed 3 --quiet --truth "$WORK/truth.json"
for format in "$@"; do
  case $format in
    hdf5) [[ -f "$WORK/volume.h5" ]] || "$BENCH_BIN/bench_tile_volume" "$WORK/tile.h5" "$REPEAT" hdf5 "$WORK/volume.h5" ;;
    zarr) [[ -d "$WORK/volume.zarr" ]] || "$BENCH_BIN/bench_tile_volume" "$WORK/tile.h5" "$REPEAT" zarr "$WORK/volume.zarr" "$CHUNKS" ;;
    png) [[ -d "$WORK/volume_png" ]] || "$BENCH_BIN/bench_tile_volume" "$WORK/tile.h5" "$REPEAT" png "$WORK/volume_png" ;;
    *) echo "scale_volume: error: unknown format $format" >&2; exit 2 ;;
  esac
done
echo "$SIZE $REPEAT $CHUNKS" > "$WORK/volume.size"
