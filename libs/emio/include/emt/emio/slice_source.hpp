#pragma once
// SliceSource: a stack of 2-D slices you can read by z.
//
// One interface, thin backends that add only what differs:
//   - Hdf5VolumeSource: CREMI-style HDF5, any dataset path (default
//     `volumes/raw`), z-y-x, uint8 or uint16; reads one slice (hyperslab) at a
//     time, never the whole volume; `resolution` attribute (z, y, x nm) read
//     when present.
//   - ImageStackSource: a directory or glob of PNG/TIFF files in natural sort
//     order, or one multipage TIFF; 8 or 16 bit grey.
//   - Chunked volumes (Zarr v2 and v3, OME-Zarr 0.4 and 0.5, N5, Neuroglancer precomputed):
//     a slice is assembled from the chunks that cross it; decoded chunks are
//     kept in a per-source cache bounded by SourceOptions::chunk_cache_bytes,
//     so consecutive slices decode each chunk once (docs/formats.md).
// Every backend returns 8-bit slices: 16-bit data is mapped to 8 bit by robust
// volume-wide percentiles (Uint16Mapping), computed once from sample slices
// so contrast does not change from slice to slice.
//
// read_slice() is thread-safe. Errors are emt::Error naming the file (and
// dataset/index): kNotFound, kDataLoss (truncated/corrupt), kInvalidData (wrong
// dtype, rank, size).
#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

namespace emt::emio {

struct VolumeShape {
  std::int64_t depth = 0, height = 0, width = 0;
};

/// How 16-bit input becomes 8 bit: [low, high] percentiles of a sample of
/// slices map linearly onto [0, 255], clipping outside.
struct Uint16Mapping {
  double low_percentile = 0.5;
  double high_percentile = 99.5;
  int sample_slices = 8;  ///< evenly spaced slices used for the percentiles
  /// Slices of more than sample_side^2 pixels are sampled in their central
  /// sample_side x sample_side region (at most): a 100k x 100k section would
  /// otherwise be read whole eight times before the first slice is returned.
  std::int64_t sample_side = 8192;
};

struct SourceOptions {
  Uint16Mapping uint16;
  /// Decoded chunks kept per chunked source. Sequential z reads decode each
  /// chunk once when the chunks crossing one z plane fit in it; when they do
  /// not, blosc and raw chunks in C order are decoded a z plane at a time
  /// (the cache then holds planes), others whole, again for each slice.
  std::size_t chunk_cache_bytes = std::size_t{512} << 20;
  /// Resolution level of an OME-Zarr multiscale group or a precomputed volume
  /// (0: full resolution). `PATH:N` in the path says the same.
  int scale = 0;
  /// Where a source's warnings go (e.g. a cache too small for the chunks
  /// crossing a plane); unset: a "warning: ..." line on stderr.
  std::function<void(const std::string&)> warn;
};

/// What a chunked source's cache did so far (tests, benchmarks, reports).
struct ChunkCacheStats {
  std::uint64_t loads = 0;        ///< chunks (or planes) read and decoded (missing chunks included)
  std::uint64_t plane_loads = 0;  ///< of those, single z planes of a chunk
  std::uint64_t hits = 0;       ///< chunk requests answered from the cache
  std::uint64_t evictions = 0;  ///< chunks dropped to stay within the budget
  std::size_t bytes_held = 0;   ///< decoded bytes in the cache now
  std::size_t peak_bytes = 0;   ///< most decoded bytes ever held at once
};

enum class SourceKind { kHdf5, kImageStack, kMultipageTiff, kZarr, kOmeZarr, kN5, kPrecomputed };
[[nodiscard]] const char* to_string(SourceKind kind) noexcept;

class SliceSource {
 public:
  virtual ~SliceSource() = default;
  [[nodiscard]] virtual SourceKind kind() const noexcept = 0;
  [[nodiscard]] virtual VolumeShape shape() const noexcept = 0;
  /// Bits per sample of the stored data (8 or 16).
  [[nodiscard]] virtual int bits() const noexcept = 0;
  /// Where slice z lives, for error messages: "FILE:DATASET[z]" or the image path.
  [[nodiscard]] virtual std::string location(std::int64_t z) const = 0;
  /// The path the source was opened from.
  [[nodiscard]] virtual std::string path() const = 0;
  /// The dataset inside its container (HDF5 dataset, Zarr/N5 array given as
  /// CONTAINER:DATASET, OME-Zarr level path); empty for image stacks.
  [[nodiscard]] virtual std::string dataset() const { return {}; }
  /// Voxel size (z, y, x) in nm when the data says so.
  [[nodiscard]] virtual std::optional<std::array<double, 3>> resolution_nm() const { return std::nullopt; }
  /// Chunk cache counters of chunked sources; nullopt for the others.
  [[nodiscard]] virtual std::optional<ChunkCacheStats> chunk_cache_stats() const { return std::nullopt; }

  /// Slice z as CV_8UC1 (height x width). Thread-safe.
  [[nodiscard]] cv::Mat read_slice(std::int64_t z) const;
  /// Slice z as stored (CV_8UC1 or CV_16UC1). Thread-safe.
  [[nodiscard]] virtual cv::Mat read_raw(std::int64_t z) const = 0;

  /// The part `region` of slice z as CV_8UC1 (same 16-bit mapping as
  /// read_slice). Lets callers work on sections too large to hold whole.
  /// Throws kInvalidArgument when the region is empty or leaves the slice.
  [[nodiscard]] cv::Mat read_region(std::int64_t z, const cv::Rect& region) const;
  /// The part `region` of slice z as stored. The default reads the slice and
  /// crops it; backends that can read less (HDF5 hyperslabs, chunked
  /// volumes) override it so memory and I/O follow the region.
  [[nodiscard]] virtual cv::Mat read_raw_region(std::int64_t z, const cv::Rect& region) const;

 protected:
  explicit SliceSource(SourceOptions options) : options_(options) {}
  void check_index(std::int64_t z) const;
  /// check_index plus: region non-empty and inside the slice.
  void check_region(std::int64_t z, const cv::Rect& region) const;
  SourceOptions options_;

 private:
  /// 16-bit data mapped through the volume's window (computed on first use).
  [[nodiscard]] cv::Mat to_8bit(cv::Mat raw, std::int64_t z) const;
  /// Lazily computed 16-bit -> 8-bit window (low, high).
  mutable std::once_flag window_once_;
  mutable std::pair<double, double> window_{0.0, 65535.0};
};

/// Opens a source from a path, detecting its kind:
///   FILE.h5 or FILE.h5:dataset/path  -> HDF5 (also any file with the HDF5 signature)
///   DIR with .zarray / zarr.json     -> Zarr v2 / v3 array
///   DIR with OME `multiscales`       -> OME-Zarr 0.4 / 0.5 (level options.scale, or DIR:N)
///   DIR with attributes.json         -> N5 dataset
///   DIR with info (`scales`)         -> Neuroglancer precomputed (scale options.scale, or DIR:N);
///                                       also file://DIR and precomputed://file://DIR
///   CONTAINER:dataset/path           -> the Zarr/N5 array CONTAINER/dataset/path
///   Zarr / N5 group                  -> its `default_dataset` array
///   DIRECTORY                        -> every *.png, *.tif, *.tiff in it
///   PATTERN with * ? [               -> the glob's matches
///   FILE.tif / FILE.tiff             -> multipage TIFF
///   gs://, s3://, http(s)://         -> kInvalidArgument: network sources are not supported yet
/// `default_dataset` is used for HDF5 and Zarr/N5 groups when the path names none.
[[nodiscard]] std::unique_ptr<SliceSource> open_source(const std::string& path, const SourceOptions& options = {},
                                                       const std::string& default_dataset = "volumes/raw");

[[nodiscard]] std::unique_ptr<SliceSource> open_hdf5_volume(const std::string& file, const std::string& dataset,
                                                            const SourceOptions& options = {});
/// Image files in the given order (the caller sorts).
[[nodiscard]] std::unique_ptr<SliceSource> open_image_stack(std::vector<std::string> files,
                                                            const SourceOptions& options = {});
[[nodiscard]] std::unique_ptr<SliceSource> open_multipage_tiff(const std::string& file,
                                                               const SourceOptions& options = {});

/// Chunked volumes (see docs/formats.md for what each supports).
[[nodiscard]] std::unique_ptr<SliceSource> open_zarr_array(const std::string& dir, const SourceOptions& options = {},
                                                           const std::string& dataset = {});
[[nodiscard]] std::unique_ptr<SliceSource> open_ome_zarr(const std::string& dir, const SourceOptions& options = {});
[[nodiscard]] std::unique_ptr<SliceSource> open_n5_dataset(const std::string& dir, const SourceOptions& options = {},
                                                           const std::string& dataset = {});
[[nodiscard]] std::unique_ptr<SliceSource> open_precomputed(const std::string& dir, const SourceOptions& options = {});

/// Files of a directory (PNG/TIFF) or glob, in natural sort order.
[[nodiscard]] std::vector<std::string> list_image_files(const std::string& dir_or_glob);

}  // namespace emt::emio
