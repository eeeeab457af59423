#pragma once
// Writers for the same layouts the sources read: CREMI-style HDF5 volumes and
// image stacks. Output appears atomically: everything goes to a temporary
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
/// A directory of `0000.png` (or .tif) files, 8 or 16 bit.
[[nodiscard]] std::unique_ptr<VolumeWriter> create_image_stack(const std::string& dir, ImageFormat format,
                                                               VolumeShape shape, int bits);

/// Replaces slice z of an existing HDF5 volume in place (same shape and
/// bit depth as the dataset). Throws kIo naming FILE:DATASET.
void overwrite_hdf5_slice(const std::string& file, const std::string& dataset, std::int64_t z, const cv::Mat& slice);

/// Encodes an image as `format` (".png", ".tif", ...; empty: the path's
/// extension) and writes it atomically (temporary, fsync, rename). Throws kIo
/// naming the path.
void write_image_atomic(const std::string& path, const cv::Mat& image, const std::string& format = {});

}  // namespace emt::emio
