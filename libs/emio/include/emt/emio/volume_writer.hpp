#pragma once
// Writers for the same layouts the sources read: CREMI-style HDF5 volumes,
// image stacks, Zarr v2 / OME-Zarr 0.4 and N5. Output appears atomically: everything goes to a temporary
// name (FILE.tmp, DIR.tmp/) and commit() renames it into place; a writer
// destroyed uncommitted removes its temporary.
#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include <opencv2/core.hpp>

#include "emt/emio/slice_source.hpp"

namespace emt::emio {

class VolumeWriter {
 public:
  virtual ~VolumeWriter() = default;
  /// Writes slice z (CV_8UC1 or CV_16UC1 matching `bits`, shape height x width).
  virtual void write_slice(std::int64_t z, const cv::Mat& slice) = 0;
  /// Makes the output visible under its final name. Every slice must be written.
  virtual void commit() = 0;
};

/// HDF5 volume `dataset` (z, y, x), chunked one slice per chunk, with a
/// `resolution` attribute (z, y, x nm) when given.
[[nodiscard]] std::unique_ptr<VolumeWriter> create_hdf5_volume(const std::string& file, const std::string& dataset,
                                                               VolumeShape shape, int bits,
                                                               std::optional<std::array<double, 3>> resolution_nm);

enum class ImageFormat { kPng, kTiff };
/// A directory of `0000.png` (or .tif) files, 8 or 16 bit, written into
/// DIR.tmp/ and moved into place at commit (emt::StagedDirectory). An
/// existing non-empty DIR needs `force`, and then only its slice images
/// (digits + extension) are replaced; other files in it stay.
[[nodiscard]] std::unique_ptr<VolumeWriter> create_image_stack(const std::string& dir, ImageFormat format,
                                                               VolumeShape shape, int bits, bool force = false);

/// Chunk compression of the Zarr and N5 writers (each the Debian library's).
enum class Compression { kNone, kZlib, kGzip, kZstd, kBlosc, kXz };
/// "none", "zlib", "gzip", "zstd", "blosc", "xz"; kInvalidArgument otherwise.
[[nodiscard]] Compression parse_compression(const std::string& name);

struct ChunkedWriteOptions {
  std::array<std::int64_t, 3> chunks{64, 256, 256};  ///< z, y, x voxels per chunk
  Compression compression = Compression::kBlosc;
  int level = 5;                    ///< zlib/gzip 1-9, zstd 1-19, blosc 0-9, xz 0-9
  std::string blosc_cname = "lz4";  ///< blosc inner codec: blosclz, lz4, lz4hc, zlib, zstd
  int blosc_shuffle = 1;            ///< 0 none, 1 byte, 2 bit
  std::optional<std::array<double, 3>> resolution_nm;
  // Zarr only: layout variants other writers produce.
  char dimension_separator = '.';  ///< '.' or '/'
  bool fortran_order = false;
  bool big_endian = false;  ///< 16-bit samples stored >u2
};

/// A Zarr v2 array at `dir` (uint8 or uint16, edge chunks padded with 0; the
/// voxel size goes to .zattrs `resolution`), or with `ome` an OME-Zarr 0.4
/// group whose single level "0" is that array. Holds one layer of chunks
/// (chunks[0] slices) in memory; slices may arrive in any order.
[[nodiscard]] std::unique_ptr<VolumeWriter> create_zarr_volume(const std::string& dir, VolumeShape shape, int bits,
                                                               const ChunkedWriteOptions& options, bool ome,
                                                               bool force = false);
/// An N5 dataset at `dir` (edge blocks clipped, as the Java reference writes
/// them; voxel size as `pixelResolution`). Zarr-only options are ignored.
/// Both: an existing non-empty DIR needs `force`, and then only the names the
/// writer makes (metadata, chunk files) are replaced, as for image stacks.
[[nodiscard]] std::unique_ptr<VolumeWriter> create_n5_volume(const std::string& dir, VolumeShape shape, int bits,
                                                             const ChunkedWriteOptions& options, bool force = false);

/// Replaces slice z of an existing HDF5 volume in place (same shape and
/// bit depth as the dataset). Throws kIo naming FILE:DATASET.
void overwrite_hdf5_slice(const std::string& file, const std::string& dataset, std::int64_t z, const cv::Mat& slice);

/// Encodes an image as `format` (".png", ".tif", ...; empty: the path's
/// extension) and writes it atomically (temporary, fsync, rename). Throws kIo
/// naming the path.
void write_image_atomic(const std::string& path, const cv::Mat& image, const std::string& format = {});

}  // namespace emt::emio
