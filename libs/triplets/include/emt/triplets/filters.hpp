#pragma once
// Tile filters: decide whether an aligned triplet tile is a usable training
// sample, and record why not. Each filter has one threshold (FilterOptions,
// set from the data spec) and one reason; the first filter that fires wins,
// in the order evaluate_tile checks them (docs/triplet-build.md's table).
// One filter judges section pairs against the whole stack rather than tiles:
// repeated_sections.
#include <array>
#include <cstddef>
#include <string>
#include <vector>

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
  kRepeatedSection,  ///< a neighbour pair far more alike than the stack's pairs: section re-imaged or duplicated
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
  // Repeated sections, relative to the stack (repeated_sections): a pair of
  // neighbours (z, z + step) whose alignment NCC is an outlier towards 1
  // among the stack's pairs. Dissimilarity d = 1 - NCC; the robust z of a
  // pair is (ln median(d) - ln d) / (1.4826 MAD(ln d)): how many robust
  // standard deviations closer the pair is than the stack's pairs usually are,
  // on a log scale, so it reads the same where neighbours reach 0.2 (ssTEM)
  // and 0.95 (isotropic FIB-SEM).
  double repeat_max_z = 6.0;        ///< reject the triplets of a pair whose robust z exceeds this
  double repeat_min_scale = 0.05;   ///< floor of 1.4826 MAD(ln d): a near-constant series does not turn noise into outliers
  int repeat_min_pairs = 8;         ///< fewer pairs than this: no stack statistic, the filter does not fire
  int repeat_sample_pairs = 64;     ///< evenly spaced pairs the stack statistic is taken from (the same for every --part)
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

/// Robust statistics of a stack's neighbour-pair NCC series (alignment NCC
/// of (z, z + step)) and which pairs are repeated sections.
struct RepeatedSections {
  double median_ncc = 0;   ///< median of the series
  double median_log_d = 0; ///< median of ln(1 - NCC)
  double mad_log_d = 0;    ///< median absolute deviation of ln(1 - NCC)
  double scale = 0;        ///< max(1.4826 MAD, repeat_min_scale): the robust standard deviation used
  bool active = false;     ///< the sample had at least repeat_min_pairs pairs
  std::vector<double> z;   ///< robust z of each pair of `ncc` (0 when not active)
  std::vector<bool> repeated;  ///< z > repeat_max_z (never when not active)
};

/// Judges each pair of `ncc` against the statistics of `sample` (the stack's
/// pairs, or an evenly spaced subset of them; may include the judged pairs:
/// median and MAD ignore a few outliers). NCC values are clamped to
/// [-1, 1 - 1e-4] so an exact duplicate gives a large finite z.
[[nodiscard]] RepeatedSections repeated_sections(const std::vector<double>& ncc, const std::vector<double>& sample,
                                                 const FilterOptions& options);
/// The same with the series as its own sample.
[[nodiscard]] RepeatedSections repeated_sections(const std::vector<double>& ncc, const FilterOptions& options);

/// Sharpness used by the blur filter: variance of the Laplacian after a
/// Gaussian of sigma 1 (7x7, 8-bit), so pixel noise does not dominate.
[[nodiscard]] double sharpness(const cv::Mat& tile);
/// Normalised cross-correlation of two equal-size images (0 when either is flat).
[[nodiscard]] double ncc(const cv::Mat& a, const cv::Mat& b);

}  // namespace emt::triplets
