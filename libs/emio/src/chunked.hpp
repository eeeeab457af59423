#pragma once
// The part every chunked backend (Zarr v2, OME-Zarr, N5, Neuroglancer
// precomputed) shares: a regular 3-D chunk grid, a decoded-chunk cache with a
// byte budget, and assembling a z slice (or a region of one) from the chunks
// that cross it. A backend adds only what differs: reading its metadata and
// decoding one chunk into native-endian C order (z, y, x), and, where its codec
// allows, one z plane of a chunk without the rest (blosc, raw).
#include <array>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "codecs.hpp"
#include "emt/emio/slice_source.hpp"

namespace emt::emio::detail {

using Index3 = std::array<std::int64_t, 3>;  ///< (z, y, x)

/// One decoded chunk, or one z plane of it: `dims` voxels in C order (z, y,
/// x), native endian; a plane has dims[0] == 1. Edge chunks may be stored
/// clipped to the volume (N5, precomputed) or padded to the full chunk (Zarr);
/// both are accepted as long as they cover the volume.
struct Chunk {
  std::vector<std::uint8_t> data;
  Index3 dims{};
};
using ChunkPtr = std::shared_ptr<const Chunk>;

/// What the cache holds: chunk (z, y, x) of the grid, and the plane of it
/// (kWholeChunk: all of it). One key space, so one byte budget covers both.
using CacheKey = std::array<std::int64_t, 4>;
inline constexpr std::int64_t kWholeChunk = -1;

/// How a source reads slices: whole chunks (each decoded once while the chunks
/// crossing a z plane fit the cache), or single z planes of chunks when they do
/// not and the codec can decode a plane alone.
enum class ReadUnit { kChunk, kPlane };

/// Buffers of dropped planes, handed to the next planes decoded. Planes of
/// one or two sizes come and go at the rate slices are read; allocating each
/// anew leaves the heap in holes (peak RSS 1.5 to 2.5 times the cache's bytes
/// in triplet-build) or, served by mmap, faults in fresh pages for every plane.
/// Holds at most `max_buffers` spare buffers.
class BufferPool {
 public:
  explicit BufferPool(std::size_t max_buffers) : max_(max_buffers) {}
  /// `n` bytes of unspecified content.
  [[nodiscard]] std::vector<std::uint8_t> take(std::size_t n);
  void give(std::vector<std::uint8_t>&& buffer);

 private:
  const std::size_t max_;
  std::mutex mutex_;
  std::vector<std::vector<std::uint8_t>> free_;
};

/// A file mapped read-only. A plane decode touches only the pages holding
/// that plane's compressed blocks; reading the file would read each chunk once
/// per plane (64 times for a 64-deep chunk). Unmapped when destroyed, so the
/// pages do not stay in the process's resident set.
class MappedFile {
 public:
  /// std::nullopt when the file does not exist; kIo when it cannot be mapped.
  [[nodiscard]] static std::optional<MappedFile> open_if_exists(const std::string& path);
  MappedFile(MappedFile&& o) noexcept : data_(o.data_), size_(o.size_) { o.data_ = nullptr; o.size_ = 0; }
  MappedFile& operator=(MappedFile&&) = delete;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();
  [[nodiscard]] const std::uint8_t* data() const noexcept { return data_; }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }

 private:
  MappedFile(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
  const std::uint8_t* data_ = nullptr;
  std::size_t size_ = 0;
};

/// Decoded chunks and planes, least recently used dropped first once the
/// budget is exceeded. A key being decoded by one thread is waited for, not
/// decoded again by another. Missing chunks (nullptr) are remembered too.
class ChunkCache {
 public:
  explicit ChunkCache(std::size_t budget_bytes) : budget_(budget_bytes) {}
  /// Lowers the budget (before use: the source decides once its grid is known).
  void limit(std::size_t budget_bytes);
  [[nodiscard]] ChunkPtr get(const CacheKey& key, const std::function<ChunkPtr()>& load);
  [[nodiscard]] ChunkCacheStats stats() const;

 private:
  struct Entry {
    ChunkPtr chunk;
    std::list<CacheKey>::iterator lru;
    std::size_t bytes = 0;
  };
  void evict_locked();
  std::size_t budget_;
  mutable std::mutex mutex_;
  std::condition_variable loaded_;
  std::map<CacheKey, Entry> entries_;
  std::map<CacheKey, int> loading_;  ///< keys some thread is decoding now
  std::list<CacheKey> lru_;          ///< front: most recently used
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
  /// Whole chunks or single planes (chosen once the grid and codec are known).
  [[nodiscard]] ReadUnit read_unit() const noexcept { return read_unit_; }
  cv::Mat read_raw(std::int64_t z) const override;
  /// Decodes only the chunks crossing `region` and copies only their overlap.
  cv::Mat read_raw_region(std::int64_t z, const cv::Rect& region) const override;

 protected:
  ChunkedSource(std::string path, std::string dataset, const SourceOptions& options)
      : SliceSource(options), path_(std::move(path)), dataset_(std::move(dataset)), cache_(options.chunk_cache_bytes) {}
  /// Called by the backend's constructor once its metadata is read.
  /// `finest`: kPlane when load_plane() decodes a plane without the whole
  /// chunk (blosc or raw chunks in C order); planes are read when the chunks
  /// crossing one z plane do not fit the cache. When they do not fit and the
  /// backend cannot decode planes (`codec`, for the message), the source warns
  /// (SourceOptions::warn) with the cache size that would hold them.
  void set_grid(VolumeShape shape, Index3 chunk, int bits, ReadUnit finest, const std::string& codec);
  /// Chunk `c` (grid index) decoded, or nullptr when it is not stored (reads as fill_value()).
  [[nodiscard]] virtual ChunkPtr load_chunk(const Index3& c) const = 0;
  /// Plane `dz` of chunk `c` (dims {1, stored height, stored width}), or
  /// nullptr when the chunk is not stored. The default decodes the whole chunk
  /// and copies the plane out: backends that set_grid(..., ReadUnit::kPlane)
  /// override it to decode less, and fall back to it for chunks they cannot.
  [[nodiscard]] virtual ChunkPtr load_plane(const Index3& c, std::int64_t dz) const;
  /// An empty plane of dims {1, height, width} (data sized for them) whose
  /// buffer goes back to the pool when the last reference is dropped.
  [[nodiscard]] std::shared_ptr<Chunk> new_plane(std::int64_t height, std::int64_t width) const;
  /// Once per source: the warning that chunks of `codec` are decoded whole
  /// again for each slice because a layer of them does not fit the cache.
  void warn_chunks_decoded_again(const std::string& codec) const;
  /// kDataLoss "chunk ... holds AxBxC voxels, the volume needs ..." naming
  /// `where` unless a chunk of `dims` covers the volume's part of chunk `c`.
  void check_covers(const Index3& c, const Index3& dims, const std::string& where) const;
  [[nodiscard]] virtual std::uint16_t fill_value() const { return 0; }
  /// Voxels of chunk `c` that lie inside the volume.
  [[nodiscard]] Index3 clipped_extent(const Index3& c) const;

  std::string path_, dataset_;
  VolumeShape shape_;
  Index3 chunk_{};
  int bits_ = 8;
  std::optional<std::array<double, 3>> resolution_;

 private:
  /// Chunks in one layer of the grid (those crossing a z plane), and the
  /// decoded bytes of a full chunk.
  [[nodiscard]] std::size_t layer_chunks() const;
  [[nodiscard]] std::size_t chunk_bytes() const;
  /// `region` of slice z (already checked) from the chunks crossing it.
  [[nodiscard]] cv::Mat assemble(std::int64_t z, const cv::Rect& region) const;
  mutable ChunkCache cache_;
  ReadUnit read_unit_ = ReadUnit::kChunk;
  mutable std::once_flag warned_;
  // Shared with the planes' deleters: a plane may outlive a read in flight.
  std::shared_ptr<BufferPool> plane_buffers_ = std::make_shared<BufferPool>(32);
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
