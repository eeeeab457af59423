// Writes the binary seed files of fuzz/corpus (run once by hand; the output
// is committed): make_seeds OUT_DIR. Shards and manifests come from
// sample_shard.hpp; HDF5 volumes and image stacks from em-phantom (see
// docs/fuzzing.md); this adds what no tool writes in a few hundred bytes.
#include <cstdio>
#include <filesystem>
#include <vector>

#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>

#include "emt/common/atomic_file.hpp"
#include "emt/common/sha256.hpp"
#include "sample_shard.hpp"

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_seeds OUT_DIR\n");
    return 2;
  }
  const fs::path out = argv[1];
  for (const char* d : {"shard", "manifest", "image_stack"}) fs::create_directories(out / d);
  emt::fuzz::write_sample_shard((out / "shard" / "seed_two.h5").string(), 2);
  emt::fuzz::write_sample_shard((out / "shard" / "seed_gzip.h5").string(), 1, 16, /*compress=*/true);
  emt::fuzz::write_sample_shard((out / "shard" / "seed_empty.h5").string(), 0);

  // The manifest harness's s.h5 is this same shard.
  const fs::path shard = out / "s.h5";
  emt::fuzz::write_sample_shard(shard.string(), 2);
  nlohmann::json m;
  m["tool"] = "triplet-build";
  m["emtriplet_version"] = "0.1.0";
  m["tile_size"] = 16;
  m["stride"] = 16;
  m["spec"] = "[output]\ntile_size = 16\n";
  m["sources"] = {{{"id", "a"}, {"path", "a.h5"}, {"dataset", "volumes/raw"}, {"step", 1}, {"shape", {3, 16, 16}}},
                  {{"id", "b"}, {"path", "b.h5"}, {"step", 2}}};
  m["shards"] = {{{"file", "s.h5"}, {"count", 2}, {"sha256", emt::sha256_file(shard)}}};
  m["totals"] = {{"candidates", 3}, {"accepted", 2}, {"rejected", 1}};
  m["rejected"] = {{"alignment", 1}};
  emt::write_file_atomic(out / "manifest" / "seed_valid.json", m.dump(1) + "\n");
  m["shards"][0]["sha256"] = std::string(64, '0');
  emt::write_file_atomic(out / "manifest" / "seed_bad_sha.json", m.dump() + "\n");
  fs::remove(shard);

  // A three-page TIFF (em-phantom writes one file per slice).
  std::vector<cv::Mat> pages;
  for (int z = 0; z < 3; ++z) {
    cv::Mat page(8, 8, CV_8UC1);
    for (int r = 0; r < 8; ++r) {
      for (int c = 0; c < 8; ++c) page.at<std::uint8_t>(r, c) = static_cast<std::uint8_t>(40 * z + 9 * r + c);
    }
    pages.push_back(page);
  }
  cv::imwritemulti((out / "image_stack" / "seed_multipage.tif").string(), pages);
  return 0;
}
