#pragma once
// Rigid alignment of one slice onto another by template matching
// (normalised cross-correlation, cv::matchTemplate TM_CCOEFF_NORMED),
// coarse-to-fine with sub-pixel peak refinement.
#include <opencv2/core.hpp>

namespace emt::triplets {

/// Translation that aligns `moving` onto `reference`:
/// aligned(y, x) = moving(y - dy, x - dx).
struct Shift {
  double dy = 0, dx = 0;
  double ncc = 0;          ///< correlation at the peak, in [-1, 1]
  bool at_border = false;  ///< peak on the edge of the search window: |shift| may exceed the radius
};

struct AlignOptions {
  int search_radius = 16;  ///< largest |dy|, |dx| searched, px
  int coarse_factor = 4;   ///< coarse search on images downsampled by this (1 = full resolution only)
  int fine_window = 1024;  ///< side of the central region used for the full-resolution refinement
  double smooth_sigma = 1.0;  ///< Gaussian pre-smoothing against pixel noise
};

/// Estimates the shift of `moving` relative to `reference` (same size, CV_8UC1).
/// Throws kInvalidArgument when the images are too small for the radius.
[[nodiscard]] Shift estimate_shift(const cv::Mat& reference, const cv::Mat& moving, const AlignOptions& options = {});

}  // namespace emt::triplets
