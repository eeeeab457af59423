#pragma once
// The part every chunked backend (Zarr v2, OME-Zarr, N5, Neuroglancer
// precomputed) shares: a regular 3-D chunk grid, a decoded-chunk cache with a
// byte budget, and assembling a z slice from the chunks that cross it. A
// backend adds only what differs: reading its metadata and decoding one chunk
// into native-endian C order (z, y, x).
#include <array>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "codecs.hpp"
#include "emt/emio/slice_source.hpp"

namespace emt::emio::detail {

using Index3 = std::array<std::int64_t, 3>;  ///< (z, y, x)

/// One decoded chunk: `dims` voxels in C order (z, y, x), native endian. Edge
/// chunks may be stored clipped to the volume (N5, precomputed) or padded to the
/// full chunk (Zarr); both are accepted as long as they cover the volume.
struct Chunk {
  std::vector<std::uint8_t> data;
  Index3 dims{};
};
using ChunkPtr = std::shared_ptr<const Chunk>;

/// Decoded chunks, least recently used dropped first once the budget is
/// exceeded. A chunk being decoded by one thread is waited for, not decoded
/// again by another. Missing chunks (nullptr) are remembered too.
class ChunkCache {
 public:
  explicit ChunkCache(std::size_t budget_bytes) : budget_(budget_bytes) {}
  [[nodiscard]] ChunkPtr get(const Index3& key, const std::function<ChunkPtr()>& load);
  [[nodiscard]] ChunkCacheStats stats() const;

 private:
  struct Entry {
    ChunkPtr chunk;
    std::list<Index3>::iterator lru;
    std::size_t bytes = 0;
  };
  void evict_locked();
  const std::size_t budget_;
  mutable std::mutex mutex_;
  std::condition_variable loaded_;
  std::map<Index3, Entry> entries_;
  std::map<Index3, int> loading_;  ///< keys some thread is decoding now
  std::list<Index3> lru_;          ///< front: most recently used
  ChunkCacheStats stats_;
};

class ChunkedSource : public SliceSource {
 public:
  VolumeShape shape() const noexcept override { return shape_; }
  int bits() const noexcept override { return bits_; }
  std::string path() const override { return path_; }
  std::string dataset() const override { return dataset_; }
  std::string location(std::int64_t z) const override {
    return path_ + (dataset_.empty() ? "" : ":" + dataset_) + "[" + std::to_string(z) + "]";
  }
  std::optional<std::array<double, 3>> resolution_nm() const override { return resolution_; }
  std::optional<ChunkCacheStats> chunk_cache_stats() const override { return cache_.stats(); }
  cv::Mat read_raw(std::int64_t z) const override;
  /// Decodes only the chunks crossing `region` and copies only their overlap.
  cv::Mat read_raw_region(std::int64_t z, const cv::Rect& region) const override;

 protected:
  ChunkedSource(std::string path, std::string dataset, const SourceOptions& options)
      : SliceSource(options), path_(std::move(path)), dataset_(std::move(dataset)), cache_(options.chunk_cache_bytes) {}
  /// Called by the backend's constructor once its metadata is read.
  void set_grid(VolumeShape shape, Index3 chunk, int bits);
  /// Chunk `c` (grid index) decoded, or nullptr when it is not stored (reads as fill_value()).
  [[nodiscard]] virtual ChunkPtr load_chunk(const Index3& c) const = 0;
  [[nodiscard]] virtual std::uint16_t fill_value() const { return 0; }
  /// Voxels of chunk `c` that lie inside the volume.
  [[nodiscard]] Index3 clipped_extent(const Index3& c) const;

  std::string path_, dataset_;
  VolumeShape shape_;
  Index3 chunk_{};
  int bits_ = 8;
  std::optional<std::array<double, 3>> resolution_;

 private:
  /// `region` of slice z (already checked) from the chunks crossing it.
  [[nodiscard]] cv::Mat assemble(std::int64_t z, const cv::Rect& region) const;
  mutable ChunkCache cache_;
};

// ---- helpers the backends share ----

/// Whole file, or std::nullopt when it does not exist. Throws kIo if unreadable.
[[nodiscard]] std::optional<std::vector<std::uint8_t>> read_file_if_exists(const std::string& path);
/// Parses a JSON metadata file; kNotFound / kDataLoss naming it.
[[nodiscard]] nlohmann::json read_json(const std::string& path);
/// `j[key]` or kInvalidData "missing metadata key KEY" naming `file`.
[[nodiscard]] const nlohmann::json& require(const nlohmann::json& j, const std::string& key, const std::string& file);
/// A JSON array of non-negative integers (`what` names it in errors).
[[nodiscard]] std::vector<std::int64_t> int_list(const nlohmann::json& j, const std::string& what, const std::string& file);
/// The last three of `dims` (z, y, x) after checking any leading ones are 1
/// (a channel or time axis of size 1); kInvalidData otherwise.
[[nodiscard]] Index3 spatial_dims(const std::vector<std::int64_t>& dims, const std::string& what, const std::string& file);
/// Swaps the bytes of 16-bit samples in place.
void byteswap16(std::vector<std::uint8_t>& data);
/// Length units of OME-Zarr axes / N5 attributes in nm (1 for an empty unit); kInvalidData when unknown.
[[nodiscard]] double unit_in_nm(const std::string& unit, const std::string& file);

}  // namespace emt::emio::detail
