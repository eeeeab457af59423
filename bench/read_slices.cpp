// Slice read throughput of one source (not a tool): reads every slice in z
// order, as triplet-build's passes do, with THREADS threads taking slices
// z = t, t + THREADS, ... and prints one JSON object: seconds, MB/s of raw
// samples returned, CPU seconds (user + system), peak RSS, and the chunk
// cache's counters for chunked sources (loads, plane_loads, peak bytes). Run
// it once per source in separate processes so the peak RSS is the source's
// own; bench/read_slices.sh compares HDF5 and Zarr with it.
//
//   bench_read_slices SOURCE [--cache-mb N] [--threads T] [--passes P] [--region WxH]
//
// --passes P reads the volume P times (triplet-build reads each slice twice:
// the alignment pass and the tiling pass). --region WxH reads the centred
// region of that size instead of whole slices (read_raw_region).
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>

#include "emt/common/error.hpp"
#include "emt/emio/slice_source.hpp"

namespace {

double seconds_of(const timeval& t) { return static_cast<double>(t.tv_sec) + 1e-6 * static_cast<double>(t.tv_usec); }

}  // namespace

int main(int argc, char** argv) {
  using namespace emt;
  if (argc < 2) {
    std::fprintf(stderr, "usage: bench_read_slices SOURCE [--cache-mb N] [--threads T] [--passes P] [--region WxH]\n");
    return 2;
  }
  emio::SourceOptions options;
  int threads = 1, passes = 1, region_w = 0, region_h = 0;
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string key = argv[i];
    if (key == "--cache-mb") {
      options.chunk_cache_bytes = static_cast<std::size_t>(std::atoll(argv[i + 1])) << 20;
    } else if (key == "--threads") {
      threads = std::max(1, std::atoi(argv[i + 1]));
    } else if (key == "--passes") {
      passes = std::max(1, std::atoi(argv[i + 1]));
    } else if (key == "--region" && std::sscanf(argv[i + 1], "%dx%d", &region_w, &region_h) == 2) {
    } else {
      std::fprintf(stderr, "bench_read_slices: error: unknown option %s\n", key.c_str());
      return 2;
    }
  }
  try {
    std::vector<std::string> warnings;
    options.warn = [&](const std::string& w) { warnings.push_back(w); };
    const auto src = emio::open_source(argv[1], options);
    const emio::VolumeShape shape = src->shape();
    const bool whole = region_w <= 0;
    const cv::Rect region = whole ? cv::Rect(0, 0, static_cast<int>(shape.width), static_cast<int>(shape.height))
                                  : cv::Rect(static_cast<int>((shape.width - region_w) / 2), static_cast<int>((shape.height - region_h) / 2),
                                             region_w, region_h);
    std::vector<double> checksum(static_cast<std::size_t>(threads), 0.0);  // keeps the reads from being optimised away
    const auto start = std::chrono::steady_clock::now();
    for (int pass = 0; pass < passes; ++pass) {
      std::vector<std::thread> pool;
      for (int t = 0; t < threads; ++t) {
        pool.emplace_back([&, t] {
          for (std::int64_t z = t; z < shape.depth; z += threads) {
            const cv::Mat m = whole ? src->read_raw(z) : src->read_raw_region(z, region);
            checksum[static_cast<std::size_t>(t)] += static_cast<double>(m.at<std::uint8_t>(0, 0));
          }
        });
      }
      for (auto& th : pool) th.join();
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    const double mb = static_cast<double>(region.area()) * static_cast<double>(shape.depth) * (src->bits() / 8) * passes / 1e6;
    nlohmann::json out = {{"case", "read_slices"},
                          {"source", argv[1]},
                          {"kind", emio::to_string(src->kind())},
                          {"shape", {shape.depth, shape.height, shape.width}},
                          {"region", {region.width, region.height}},
                          {"threads", threads},
                          {"passes", passes},
                          {"cache_mb", options.chunk_cache_bytes >> 20},
                          {"seconds", seconds},
                          {"mb", mb},
                          {"mb_per_s", mb / seconds},
                          {"cpu_seconds", seconds_of(usage.ru_utime) + seconds_of(usage.ru_stime)},
                          {"peak_rss_mb", static_cast<double>(usage.ru_maxrss) / 1024.0},
                          {"warnings", warnings}};
    if (const auto stats = src->chunk_cache_stats()) {
      out["chunk_cache"] = {{"loads", stats->loads},         {"plane_loads", stats->plane_loads}, {"hits", stats->hits},
                            {"evictions", stats->evictions}, {"peak_mb", static_cast<double>(stats->peak_bytes) / 1048576.0}};
    }
    std::printf("%s\n", out.dump().c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_read_slices: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
