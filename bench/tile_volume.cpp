// Benchmark helper (not a tool): makes a large test volume quickly by tiling
// a small one laterally, REPEAT x REPEAT times, slice by slice. em-phantom
// draws every voxel (minutes per 64 Mvoxel on a loaded 2-core machine); the
// scale benchmark needs the same multi-GiB content as HDF5, Zarr and an
// image stack, which this writes with emio's own writers.
// usage: bench_tile_volume SRC REPEAT hdf5|zarr|png OUT [ZxYxX chunks, zarr: blosc lz4 byte shuffle]
#include <cstdio>
#include <cstdlib>
#include <string>

#include <opencv2/core.hpp>

#include "emt/common/error.hpp"
#include "emt/common/text.hpp"
#include "emt/emio/slice_source.hpp"
#include "emt/emio/volume_writer.hpp"

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr, "usage: bench_tile_volume SRC REPEAT hdf5|zarr|png OUT [ZxYxX]\n");
    return 2;
  }
  try {
    const auto src = emt::emio::open_source(argv[1]);
    const int repeat = std::atoi(argv[2]);
    const std::string format = argv[3], out = argv[4];
    auto shape = src->shape();
    shape.height *= repeat;
    shape.width *= repeat;
    std::unique_ptr<emt::emio::VolumeWriter> writer;
    if (format == "hdf5") {
      writer = emt::emio::create_hdf5_volume(out, "volumes/raw", shape, src->bits(), src->resolution_nm());
    } else if (format == "png") {
      writer = emt::emio::create_image_stack(out, emt::emio::ImageFormat::kPng, shape, src->bits());
    } else if (format == "zarr") {
      emt::emio::ChunkedWriteOptions o;  // blosc lz4, byte shuffle, level 5: em-phantom's default
      if (argc > 5) {
        const auto c = emt::split(argv[5], 'x');
        for (int i = 0; i < 3; ++i) o.chunks[static_cast<std::size_t>(i)] = std::atoll(c.at(static_cast<std::size_t>(i)).c_str());
      }
      writer = emt::emio::create_zarr_volume(out, shape, src->bits(), o, false);
    } else {
      throw emt::Error(emt::ErrorKind::kInvalidArgument, "format must be hdf5, zarr or png");
    }
    for (std::int64_t z = 0; z < shape.depth; ++z) {
      cv::Mat tiled;
      cv::repeat(src->read_raw(z), repeat, repeat, tiled);
      writer->write_slice(z, tiled);
    }
    writer->commit();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_tile_volume: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
