#pragma once
// Histogram specification (matching) of 8-bit images to a reference
// histogram, with the same interpolation rule as
// skimage.exposure.match_histograms: each source grey level's cumulative
// quantile is mapped to the reference's grey level by linear interpolation
// between the reference's (quantile, value) points.
//
// The pipeline matches every slice to one reference histogram per source
// volume, built from clean slices (reference_histogram()), so the same step
// applies at inference time when the middle slice is unknown.
#include <array>
#include <cstdint>
#include <vector>

#include <opencv2/core.hpp>

namespace emt::triplets {

using Histogram = std::array<double, 256>;

/// Grey-level counts of a CV_8UC1 image; with `ignore_zero`, value 0 (padding)
/// is not counted.
[[nodiscard]] Histogram histogram_of(const cv::Mat& image, bool ignore_zero = false);

/// The lookup table mapping source levels to matched levels (rounded to the
/// nearest integer). Levels absent from the source map by the same rule.
/// With `keep_zero`, level 0 maps to 0 (padding stays black).
[[nodiscard]] std::array<std::uint8_t, 256> matching_lut(const Histogram& source, const Histogram& reference,
                                                         bool keep_zero = false);

/// Unrounded matched values for the levels present in `source` (what skimage
/// returns, as float); for tests against the reference implementation.
[[nodiscard]] std::array<double, 256> matching_values(const Histogram& source, const Histogram& reference);

/// Applies a LUT to a CV_8UC1 image.
[[nodiscard]] cv::Mat apply_lut(const cv::Mat& image, const std::array<std::uint8_t, 256>& lut);

/// Reference for a volume: the summed histograms of the given slices after
/// dropping outliers (blank slices, and slices whose mean or standard deviation
/// is more than `tolerance` (relative) away from the median slice's), ignoring
/// zero-valued padding. Returns the reference and the indices of the slices used.
struct ReferenceHistogram {
  Histogram counts{};
  std::vector<std::size_t> used;
};
[[nodiscard]] ReferenceHistogram reference_histogram(const std::vector<Histogram>& slice_histograms,
                                                     double tolerance = 0.25);

}  // namespace emt::triplets
