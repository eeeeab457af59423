#include "emt/triplets/align.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>
#include <opencv2/imgproc.hpp>

#include "emt/common/error.hpp"

namespace emt::triplets {
namespace {

/// Peak of a correlation map with parabolic sub-pixel refinement.
struct Peak {
  double y, x, value;
  bool at_border;
};

Peak find_peak(const cv::Mat& response) {
  cv::Point loc;
  double max_value;
  cv::minMaxLoc(response, nullptr, &max_value, nullptr, &loc);
  auto refine = [](float left, float centre, float right) {
    const double denom = static_cast<double>(left) - 2.0 * centre + right;
    if (std::abs(denom) < 1e-12) return 0.0;
    return std::clamp(0.5 * (static_cast<double>(left) - right) / denom, -0.5, 0.5);
  };
  double sx = 0, sy = 0;
  const bool border = loc.x == 0 || loc.y == 0 || loc.x == response.cols - 1 || loc.y == response.rows - 1;
  if (loc.x > 0 && loc.x < response.cols - 1) {
    sx = refine(response.at<float>(loc.y, loc.x - 1), response.at<float>(loc), response.at<float>(loc.y, loc.x + 1));
  }
  if (loc.y > 0 && loc.y < response.rows - 1) {
    sy = refine(response.at<float>(loc.y - 1, loc.x), response.at<float>(loc), response.at<float>(loc.y + 1, loc.x));
  }
  return {loc.y + sy, loc.x + sx, max_value, border};
}

/// Correlates the central part of `moving` against `reference` over offsets
/// [-radius, radius] around (cy, cx); returns the shift at the peak.
Peak search(const cv::Mat& reference, const cv::Mat& moving, int radius, int cy, int cx, int window) {
  const int margin = radius + std::max(std::abs(cy), std::abs(cx));
  const int h = std::min(reference.rows - 2 * margin, window), w = std::min(reference.cols - 2 * margin, window);
  if (h < 8 || w < 8) {
    throw Error(ErrorKind::kInvalidArgument,
                fmt::format("image {}x{} too small for alignment search radius {}", reference.cols, reference.rows, radius));
  }
  const int ty = (reference.rows - h) / 2, tx = (reference.cols - w) / 2;
  const cv::Mat templ = moving(cv::Rect(tx, ty, w, h));
  // moving(ty + a, tx + b) ~ reference(ty + dy + a, tx + dx + b): search dy in cy +- radius.
  const cv::Mat region = reference(cv::Rect(tx + cx - radius, ty + cy - radius, w + 2 * radius, h + 2 * radius));
  cv::Mat response;
  cv::matchTemplate(region, templ, response, cv::TM_CCOEFF_NORMED);
  Peak p = find_peak(response);
  p.y += cy - radius;
  p.x += cx - radius;
  return p;
}

}  // namespace

Shift estimate_shift(const cv::Mat& reference, const cv::Mat& moving, const AlignOptions& options) {
  CV_Assert(!reference.empty() && reference.type() == CV_8UC1 && moving.type() == CV_8UC1);
  CV_Assert(reference.size() == moving.size());
  if (options.search_radius < 1 || options.coarse_factor < 1) throw Error(ErrorKind::kInvalidArgument, "search radius and coarse factor must be >= 1");
  cv::Mat ref, mov;
  reference.convertTo(ref, CV_32F);
  moving.convertTo(mov, CV_32F);
  if (options.smooth_sigma > 0) {
    cv::GaussianBlur(ref, ref, cv::Size(0, 0), options.smooth_sigma);
    cv::GaussianBlur(mov, mov, cv::Size(0, 0), options.smooth_sigma);
  }
  int cy = 0, cx = 0, fine_radius = options.search_radius;
  bool coarse_border = false;
  const int f = options.coarse_factor;
  if (f > 1 && options.search_radius >= 2 * f) {
    // Coarse: whole image at 1/f resolution, then refine +-(f) px at full resolution.
    cv::Mat ref_small, mov_small;
    cv::resize(ref, ref_small, cv::Size(), 1.0 / f, 1.0 / f, cv::INTER_AREA);
    cv::resize(mov, mov_small, cv::Size(), 1.0 / f, 1.0 / f, cv::INTER_AREA);
    const int coarse_radius = (options.search_radius + f - 1) / f;
    const Peak coarse = search(ref_small, mov_small, coarse_radius, 0, 0, std::max(ref_small.rows, ref_small.cols));
    cy = static_cast<int>(std::lround(coarse.y * f));
    cx = static_cast<int>(std::lround(coarse.x * f));
    fine_radius = f;
    coarse_border = coarse.at_border;
  }
  const Peak fine = search(ref, mov, fine_radius, cy, cx, options.fine_window);
  Shift s;
  s.dy = fine.y;
  s.dx = fine.x;
  s.ncc = fine.value;
  s.at_border = coarse_border || (f <= 1 && fine.at_border) ||
                std::abs(fine.y) > options.search_radius || std::abs(fine.x) > options.search_radius;
  return s;
}

}  // namespace emt::triplets
