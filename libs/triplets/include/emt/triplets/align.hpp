#pragma once
// Rigid alignment of one slice onto another by template matching
// (normalised cross-correlation: the TM_CCOEFF_NORMED score of
// cv::matchTemplate, computed by our own match_template_ccoeff_normed, one
// dot product per offset, which beats matchTemplate's DFT for the small
// search ranges used here; tests check the two agree on real slices),
// coarse-to-fine with sub-pixel peak refinement.
//
// Coarse: whole slices downsampled by `coarse_factor` (area averaging), search
// +-radius/f. Fine: the central `fine_window` px (Gaussian-smoothed against
// pixel noise) at full resolution, +-f px around the coarse estimate.
// Each slice's features are computed once (prepare_alignment) and reused for
// both pairs it belongs to.
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
  int search_radius = 16;     ///< largest |dy|, |dx| searched, px
  int coarse_factor = 4;      ///< coarse search on images downsampled by this (1 = full resolution only)
  int fine_window = 512;      ///< side of the central region used for the full-resolution refinement
  double smooth_sigma = 1.0;  ///< Gaussian pre-smoothing of the fine region
};

/// What alignment needs of one slice; computed once per slice.
struct AlignmentFeatures {
  cv::Mat coarse;       ///< CV_32F, downsampled (empty when no coarse level)
  cv::Mat fine;         ///< CV_32F, smoothed central crop
  cv::Point fine_origin;  ///< where `fine` starts in the slice
  cv::Size slice_size;
};

/// Zero-normalised cross-correlation of `templ` at every offset inside
/// `image` (both CV_32FC1, templ no larger than image): the
/// (H - h + 1) x (W - w + 1) CV_32FC1 map cv::matchTemplate gives with
/// TM_CCOEFF_NORMED, except 0 (not NaN or 1) where the template or the window
/// is flat. Cost: one h x w dot product per offset, so use it for small
/// searches (a few hundred offsets), not whole-image matching.
[[nodiscard]] cv::Mat match_template_ccoeff_normed(const cv::Mat& image, const cv::Mat& templ);

[[nodiscard]] AlignmentFeatures prepare_alignment(const cv::Mat& slice, const AlignOptions& options);
/// Shift aligning the `moving` slice onto the `reference` slice.
[[nodiscard]] Shift estimate_shift(const AlignmentFeatures& reference, const AlignmentFeatures& moving,
                                   const AlignOptions& options);
/// Convenience: prepares both (CV_8UC1, same size) and estimates.
/// Throws kInvalidArgument when the images are too small for the radius.
[[nodiscard]] Shift estimate_shift(const cv::Mat& reference, const cv::Mat& moving, const AlignOptions& options = {});

}  // namespace emt::triplets
