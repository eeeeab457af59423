#pragma once
// Triplet shards: the HDF5 files triplet-build writes and ssan-train reads.
// Layout (DESIGN.md, docs/formats.md):
//   /triplets        uint8 [N, 3, T, T], chunked [1, 3, T, T], optional gzip
//   /meta/source     variable-length string [N]
//   /meta/z          int64 [N]           middle slice z in its source
//   /meta/yx         int64 [N, 2]        tile origin in the middle slice
//   /meta/shift      float32 [N, 2, 2]   (dy, dx) applied to slices 0 and 2
//   /meta/ncc        float32 [N, 2]      continuity NCC of slices 0 and 2 to slice 1
//   /meta/sharpness  float32 [N, 3]
//   attributes: tile_size, spec, emtriplet_version, command (only when given:
//   triplet-build writes none, so shard bytes depend only on data and spec)
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

namespace emt::triplets {

struct TripletSample {
  std::array<cv::Mat, 3> slices;  ///< CV_8UC1, T x T each, z order
  std::string source;
  std::int64_t z = 0;
  std::int64_t y = 0, x = 0;
  std::array<float, 4> shift{};      ///< dy0, dx0, dy2, dx2
  std::array<float, 2> ncc{};
  std::array<float, 3> sharpness{};
};

struct ShardAttributes {
  int tile_size = 512;
  std::string spec, version, command;
  bool compress = false;
};

/// Writes a complete shard atomically (PATH.tmp, fsync, rename). The file's
/// bytes depend only on the samples and attributes (no timestamps).
void write_shard(const std::string& path, const std::vector<TripletSample>& samples, const ShardAttributes& attributes);

/// Reads shards sample by sample (one hyperslab per sample). Thread-safe.
class ShardReader {
 public:
  /// Opens and checks the schema; throws kNotFound / kDataLoss / kInvalidData naming the file.
  explicit ShardReader(const std::string& path);
  ~ShardReader();
  ShardReader(const ShardReader&) = delete;
  ShardReader& operator=(const ShardReader&) = delete;

  [[nodiscard]] std::int64_t size() const noexcept { return count_; }
  [[nodiscard]] int tile_size() const noexcept { return tile_; }
  [[nodiscard]] const std::string& path() const noexcept { return path_; }
  [[nodiscard]] const ShardAttributes& attributes() const noexcept { return attributes_; }
  /// Sample i with all its metadata.
  [[nodiscard]] TripletSample read(std::int64_t i) const;
  /// Only the pixels, into a caller buffer of 3*T*T bytes (for data loaders).
  void read_pixels(std::int64_t i, std::uint8_t* out) const;
  /// All metadata without pixels (cheap): source, z, y, x per sample.
  [[nodiscard]] std::vector<TripletSample> read_meta() const;

 private:
  struct Impl;
  std::string path_;
  std::int64_t count_ = 0;
  int tile_ = 0;
  ShardAttributes attributes_;
  Impl* impl_;
};

}  // namespace emt::triplets
