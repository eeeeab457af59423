#pragma once
// Tile filters: decide whether an aligned triplet tile is a usable training
// sample, and record why not. Each filter has one threshold (FilterOptions,
// set from the data spec) and one reason; the first filter that fires wins,
// in the order evaluate_tile runs them: flat (padding / blank), defect,
// continuity, blur, duplicate. (kBadSlice and kAlignment are decided by
// triplet-build around the filters: alignment only when none fires.)
#include <array>
#include <string>

#include <opencv2/core.hpp>

namespace emt::triplets {

enum class RejectReason {
  kNone,
  kBadSlice,    ///< a slice could not be read (--skip-bad-slices)
  kAlignment,   ///< alignment peak at the edge of the search window
  kPadding,     ///< flat black (zero) region: padding, missing data
  kBlank,       ///< flat non-black region: blank or saturated slice
  kDefect,      ///< local region of one slice that disagrees with both others (fold, stain, crack, flip)
  kContinuity,  ///< a neighbour correlates weakly with the middle slice
  kBlur,        ///< sharpness differs too much between slices
  kDuplicate,   ///< a neighbour is (nearly) identical to the middle: section imaged twice
};
[[nodiscard]] const char* to_string(RejectReason reason) noexcept;

struct FilterOptions {
  // Flat regions (padding, blank, saturated): on blocks of flat_block px.
  int flat_block = 16;
  double flat_std = 1.0;            ///< a block whose grey-level std is below this is flat
  double max_flat_fraction = 0.01;  ///< reject when any slice has more flat area than this fraction
  // Defects: per-pixel residual of each slice against the median of the three,
  // on tiles normalised to zero mean and unit std, downsampled by
  // defect_downsample and smoothed by defect_sigma (structure, not noise).
  int defect_downsample = 4;
  double defect_sigma = 1.0;
  double defect_residual = 2.0;       ///< |residual| in tile-std units counted as anomalous
  double max_defect_fraction = 0.004; ///< reject when more of the tile than this is anomalous
  // Continuity: NCC of each neighbour to the middle, on the downsampled tiles.
  double min_ncc = 0.3;
  // Blur: sharpness = variance of the Laplacian after a sigma-1 Gaussian.
  double max_blur_ratio = 2.0;      ///< reject when max/min sharpness over the three exceeds this
  // Duplicates: NCC of the raw (unsmoothed) tiles; independent noise keeps
  // real neighbours well below 1.
  double duplicate_ncc = 0.985;
};

struct TileMeasures {
  std::array<float, 2> ncc{};        ///< continuity NCC of slices 0 and 2 to slice 1
  std::array<float, 3> sharpness{};  ///< per slice
  float flat_fraction = 0;           ///< max over slices
  float defect_fraction = 0;         ///< fraction of anomalous pixels
  float raw_ncc = 0;                 ///< max raw-tile NCC of a neighbour to the middle
  std::array<float, 3> slice_flat{};    ///< flat fraction of each slice
  std::array<float, 3> slice_defect{};  ///< anomalous fraction attributable to each slice
};

struct TileDecision {
  RejectReason reason = RejectReason::kNone;
  double value = 0, threshold = 0;  ///< the measured value and the threshold it crossed
  TileMeasures measures;
  [[nodiscard]] bool accepted() const noexcept { return reason == RejectReason::kNone; }
};

/// Evaluates the filters on three aligned CV_8UC1 tiles of equal size.
/// Throws kInvalidArgument for empty or mismatched tiles, or a tile smaller
/// than options.flat_block.
[[nodiscard]] TileDecision evaluate_tile(const std::array<cv::Mat, 3>& tiles, const FilterOptions& options);

/// Sharpness used by the blur filter: variance of the Laplacian after a
/// Gaussian of sigma 1 (7x7, 8-bit), so pixel noise does not dominate.
[[nodiscard]] double sharpness(const cv::Mat& tile);
/// Normalised cross-correlation of two equal-size images (0 when either is flat).
[[nodiscard]] double ncc(const cv::Mat& a, const cv::Mat& b);

}  // namespace emt::triplets
