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

}  // namespace

// For the small search ranges used here ((2r+1)^2 offsets of a large
// template) one dot product per offset beats matchTemplate's DFT.
cv::Mat match_template_ccoeff_normed(const cv::Mat& region, const cv::Mat& templ) {
  CV_Assert(region.type() == CV_32FC1 && templ.type() == CV_32FC1);
  CV_Assert(templ.rows >= 1 && templ.cols >= 1 && templ.rows <= region.rows && templ.cols <= region.cols);
  const int rh = region.rows - templ.rows + 1, rw = region.cols - templ.cols + 1;
  const double n = static_cast<double>(templ.total());
  cv::Scalar tmean, tsd;
  cv::meanStdDev(templ, tmean, tsd);
  cv::Mat t0;
  templ.convertTo(t0, CV_32F, 1.0, -tmean[0]);  // zero-mean template: the window mean drops out of the cross term
  const double tnorm = tsd[0] * std::sqrt(n);
  cv::Mat sum, sqsum;
  cv::integral(region, sum, sqsum, CV_64F, CV_64F);
  cv::Mat response(rh, rw, CV_32FC1);
  for (int u = 0; u < rh; ++u) {
    for (int v = 0; v < rw; ++v) {
      const cv::Rect win(v, u, templ.cols, templ.rows);
      const double cross = t0.dot(region(win));
      auto box = [&](const cv::Mat& m) {
        return m.at<double>(u + templ.rows, v + templ.cols) - m.at<double>(u, v + templ.cols) -
               m.at<double>(u + templ.rows, v) + m.at<double>(u, v);
      };
      const double s = box(sum), s2 = box(sqsum);
      const double wnorm = std::sqrt(std::max(0.0, s2 - s * s / n));
      response.at<float>(u, v) = (wnorm > 1e-9 && tnorm > 1e-9) ? static_cast<float>(cross / (wnorm * tnorm)) : 0.f;
    }
  }
  return response;
}

namespace {

/// Correlates a central template of `moving` against `reference` over offsets
/// (cy, cx) +- radius. Both images share one coordinate frame whose origin is
/// `origin` in slice coordinates; `centre` is the slice centre.
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
  Peak p = find_peak(match_template_ccoeff_normed(region, templ));
  p.y += cy - radius;
  p.x += cx - radius;
  return p;
}

bool has_coarse_level(const AlignOptions& o) { return o.coarse_factor > 1 && o.search_radius >= 2 * o.coarse_factor; }

}  // namespace

AlignmentFeatures prepare_alignment(const cv::Mat& slice, const AlignOptions& o) {
  CV_Assert(!slice.empty() && slice.type() == CV_8UC1);
  if (o.search_radius < 1 || o.coarse_factor < 1 || o.fine_window < 8) {
    throw Error(ErrorKind::kInvalidArgument, "search radius and coarse factor must be >= 1, fine window >= 8");
  }
  AlignmentFeatures f;
  f.slice_size = slice.size();
  const int f_ = o.coarse_factor;
  if (has_coarse_level(o)) {
    // Area averaging is the low-pass filter here: no separate smoothing.
    cv::resize(slice, f.coarse, cv::Size(slice.cols / f_, slice.rows / f_), 0, 0, cv::INTER_AREA);
    f.coarse.convertTo(f.coarse, CV_32F);
  }
  // Fine level: central window plus the largest offset searched, plus room
  // for the smoothing kernel so the crop's borders do not change the result.
  const int fine_radius = has_coarse_level(o) ? o.search_radius + f_ : o.search_radius;
  const int kernel = static_cast<int>(std::ceil(4 * o.smooth_sigma)) + 1;
  const int side_h = std::min(slice.rows, o.fine_window + 2 * (fine_radius + kernel));
  const int side_w = std::min(slice.cols, o.fine_window + 2 * (fine_radius + kernel));
  f.fine_origin = cv::Point((slice.cols - side_w) / 2, (slice.rows - side_h) / 2);
  slice(cv::Rect(f.fine_origin, cv::Size(side_w, side_h))).convertTo(f.fine, CV_32F);
  if (o.smooth_sigma > 0) cv::GaussianBlur(f.fine, f.fine, cv::Size(0, 0), o.smooth_sigma);
  return f;
}

Shift estimate_shift(const AlignmentFeatures& ref, const AlignmentFeatures& mov, const AlignOptions& o) {
  CV_Assert(ref.slice_size == mov.slice_size && ref.fine.size() == mov.fine.size());
  int cy = 0, cx = 0, fine_radius = o.search_radius;
  bool coarse_border = false;
  const int f = o.coarse_factor;
  if (has_coarse_level(o)) {
    const int coarse_radius = (o.search_radius + f - 1) / f;
    const Peak coarse = search(ref.coarse, mov.coarse, coarse_radius, 0, 0, std::max(ref.coarse.rows, ref.coarse.cols));
    cy = static_cast<int>(std::lround(coarse.y * f));
    cx = static_cast<int>(std::lround(coarse.x * f));
    fine_radius = f;
    coarse_border = coarse.at_border;
  }
  // The fine crops hold the central window plus margins; search inside them.
  const int kernel = static_cast<int>(std::ceil(4 * o.smooth_sigma)) + 1;
  const cv::Rect usable(kernel, kernel, ref.fine.cols - 2 * kernel, ref.fine.rows - 2 * kernel);
  const Peak fine = search(ref.fine(usable), mov.fine(usable), fine_radius, cy, cx, o.fine_window);
  Shift s;
  s.dy = fine.y;
  s.dx = fine.x;
  s.ncc = fine.value;
  s.at_border = coarse_border || (!has_coarse_level(o) && fine.at_border) || std::abs(fine.y) > o.search_radius ||
                std::abs(fine.x) > o.search_radius;
  return s;
}

Shift estimate_shift(const cv::Mat& reference, const cv::Mat& moving, const AlignOptions& options) {
  CV_Assert(reference.size() == moving.size());
  return estimate_shift(prepare_alignment(reference, options), prepare_alignment(moving, options), options);
}

}  // namespace emt::triplets
