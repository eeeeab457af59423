#pragma once
// em-phantom: a synthetic, deterministic EM-like volume with known truth.
//
// Content: cell membranes from a Voronoi tessellation whose seeds move
// smoothly with z (structures deform continuously from slice to slice),
// mitochondria-like dark ellipses and vesicle dots that drift and appear /
// vanish over z, cytoplasm texture, a point-spread blur, EM-like noise and
// slow brightness / contrast changes. Every slice is rendered at a random
// rigid sub-pixel drift (evaluated analytically, not resampled), and chosen
// or random slices get injected defects. The truth (drift per slice, every
// defect with its box and geometry) is what tests compare the pipeline to.
//
// Rendering of slice z depends only on (options, z): slices can be rendered
// in any order and in parallel with identical results.
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>

#include "emt/emio/volume_writer.hpp"

namespace emt::phantom {

enum class DefectKind { kFold, kPadding, kBlur, kMissing, kStain, kContrastFlip, kSaturated };
inline constexpr DefectKind kAllDefectKinds[] = {DefectKind::kFold,    DefectKind::kPadding, DefectKind::kBlur,
                                                 DefectKind::kMissing, DefectKind::kStain,   DefectKind::kContrastFlip,
                                                 DefectKind::kSaturated};
[[nodiscard]] const char* to_string(DefectKind kind) noexcept;
/// Parses "fold", "padding", "blur", "missing", "stain", "flip", "saturated".
[[nodiscard]] DefectKind parse_defect_kind(const std::string& name);

struct Defect {
  std::int64_t z = 0;
  DefectKind kind = DefectKind::kFold;
  cv::Rect box;              ///< affected pixels' bounding box (whole slice for global defects)
  cv::Point2d p0, p1;        ///< fold: the band's centre line (x, y)
  double width = 0;          ///< fold: band width in px
  cv::Point2d center;        ///< stain: blob centre (x, y)
  double radius = 0;         ///< stain: blob radius in px
};

struct PhantomOptions {
  std::int64_t depth = 32, height = 1536, width = 1536;
  std::uint64_t seed = 1;
  double defect_rate = 0.15;   ///< probability that a slice gets a random defect
  double max_drift = 6.0;      ///< per-slice drift drawn uniformly in [-max, max] px, y and x
  double cell_size = 96.0;     ///< mean cell diameter in px
  double noise_sigma = 10.0;   ///< Gaussian noise, grey levels (8-bit scale)
  /// Explicit defects (z, kind); when non-empty, no random defects are drawn.
  std::vector<std::pair<std::int64_t, DefectKind>> defects;
  std::vector<double> resolution_nm{40.0, 4.0, 4.0};
};

struct PhantomTruth {
  std::vector<cv::Point2d> drift;  ///< per slice, (x = dx, y = dy): content shifted by +drift
  std::vector<Defect> defects;
};

class Phantom {
 public:
  explicit Phantom(PhantomOptions options);
  [[nodiscard]] const PhantomOptions& options() const noexcept { return options_; }
  [[nodiscard]] const PhantomTruth& truth() const noexcept { return truth_; }
  /// Slice z as float intensities on the 8-bit scale (not clipped).
  [[nodiscard]] cv::Mat render_float(std::int64_t z) const;
  /// Slice z as CV_8UC1, or CV_16UC1 when bits == 16 (scaled by 257).
  [[nodiscard]] cv::Mat render(std::int64_t z, int bits = 8) const;
  /// The defects injected into slice z.
  [[nodiscard]] std::vector<Defect> defects_at(std::int64_t z) const;

 private:
  /// A mitochondrion-like ellipse or a vesicle dot, moving with z.
  struct Organelle {
    bool vesicle = false;
    double cy = 0, cx = 0;              ///< centre at z = zc
    double vy = 0, vx = 0;              ///< drift per slice
    double a = 0, b = 0, angle = 0;     ///< semi-axes, orientation (degrees)
    double spin = 0;                    ///< rotation per slice (degrees)
    double zc = 0, half_life = 1;       ///< exists for |z - zc| < half_life
    double tone = 0;                    ///< fill intensity
  };
  PhantomOptions options_;
  PhantomTruth truth_;
  std::vector<Organelle> organelles_;
};

/// Mask (CV_8UC1, 255 = affected) of the pixels a defect touches.
[[nodiscard]] cv::Mat defect_mask(const Defect& defect, cv::Size size);

[[nodiscard]] nlohmann::json truth_to_json(const Phantom& phantom);
[[nodiscard]] PhantomTruth truth_from_json(const nlohmann::json& j);

/// kZarr: an OME-Zarr 0.4 group (one level, "0"); kN5: an N5 dataset.
enum class OutputFormat { kHdf5, kPng, kTiff, kZarr, kN5 };
/// Renders every slice (TBB-parallel) and writes the volume atomically, plus
/// `truth_path` (JSON); both appear only when both are complete. Calls
/// `on_slice` after each slice (progress; it may throw to stop, and nothing
/// is left behind). `force`: an image stack may go into an existing
/// non-empty directory, replacing only its slice images.
void write_phantom(const Phantom& phantom, const std::string& out_path, OutputFormat format, int bits,
                   const std::string& truth_path, const std::function<void()>& on_slice = {}, bool force = false,
                   const emio::ChunkedWriteOptions& chunked = {});

}  // namespace emt::phantom
