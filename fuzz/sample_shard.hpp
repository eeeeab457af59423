#pragma once
// A small deterministic shard (write_shard's bytes depend only on its
// input): the manifest harness's directory and make_seeds use the same one,
// so the seed manifests' SHA-256 match it.
#include <string>
#include <vector>

#include "emt/triplets/shard.hpp"

namespace emt::fuzz {

inline void write_sample_shard(const std::string& path, int count, int tile = 16, bool compress = false) {
  std::vector<triplets::TripletSample> samples(static_cast<std::size_t>(count));
  for (std::size_t i = 0; i < samples.size(); ++i) {
    for (std::size_t k = 0; k < 3; ++k) {
      cv::Mat m(tile, tile, CV_8UC1);
      for (int r = 0; r < tile; ++r) {
        for (int c = 0; c < tile; ++c) m.at<std::uint8_t>(r, c) = static_cast<std::uint8_t>(31 * i + 7 * k + 5 * r * c + 3 * c);
      }
      samples[i].slices[k] = m;
    }
    samples[i].source = i % 2 ? "b" : "a";
    samples[i].z = static_cast<std::int64_t>(i) + 1;
    samples[i].y = 16 * static_cast<std::int64_t>(i);
    samples[i].shift = {0.5f, -1.0f, 0.0f, 2.0f};
    samples[i].ncc = {0.9f, 0.8f};
    samples[i].sharpness = {1.0f, 2.0f, 3.0f};
  }
  triplets::ShardAttributes attributes;
  attributes.tile_size = tile;
  attributes.compress = compress;
  attributes.spec = "[output]\ntile_size = 16\n";
  attributes.version = "0.1.0";
  attributes.command = "make_seeds";
  triplets::write_shard(path, samples, attributes);
}

}  // namespace emt::fuzz
