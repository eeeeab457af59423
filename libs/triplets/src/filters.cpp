#include "emt/triplets/filters.hpp"

#include <algorithm>
#include <cmath>

#include <opencv2/imgproc.hpp>

namespace emt::triplets {

const char* to_string(RejectReason reason) noexcept {
  switch (reason) {
    case RejectReason::kNone: return "accepted";
    case RejectReason::kBadSlice: return "bad_slice";
    case RejectReason::kAlignment: return "alignment";
    case RejectReason::kPadding: return "padding";
    case RejectReason::kBlank: return "blank";
    case RejectReason::kDefect: return "defect";
    case RejectReason::kContinuity: return "continuity";
    case RejectReason::kBlur: return "blur";
    case RejectReason::kDuplicate: return "duplicate";
  }
  return "unknown";
}

double ncc(const cv::Mat& a, const cv::Mat& b) {
  CV_Assert(a.size() == b.size());
  cv::Mat fa, fb;
  a.convertTo(fa, CV_64F);
  b.convertTo(fb, CV_64F);
  cv::Scalar ma, sa, mb, sb;
  cv::meanStdDev(fa, ma, sa);
  cv::meanStdDev(fb, mb, sb);
  if (sa[0] < 1e-9 || sb[0] < 1e-9) return 0.0;
  const double cov = (fa - ma[0]).dot(fb - mb[0]) / static_cast<double>(fa.total());
  return cov / (sa[0] * sb[0]);
}

double sharpness(const cv::Mat& tile) {
  cv::Mat f, lap;
  tile.convertTo(f, CV_32F);
  cv::GaussianBlur(f, f, cv::Size(0, 0), 1.0);
  cv::Laplacian(f, lap, CV_32F);
  cv::Scalar mean, sd;
  cv::meanStdDev(lap, mean, sd);
  return sd[0] * sd[0];
}

namespace {

/// Fraction of the tile covered by flat blocks, and the mean grey level of those blocks.
std::pair<double, double> flat_area(const cv::Mat& tile, int block, double max_std) {
  int flat = 0, total = 0;
  double flat_sum = 0;
  for (int y = 0; y + block <= tile.rows; y += block) {
    for (int x = 0; x + block <= tile.cols; x += block) {
      cv::Scalar mean, sd;
      cv::meanStdDev(tile(cv::Rect(x, y, block, block)), mean, sd);
      ++total;
      if (sd[0] < max_std) {
        ++flat;
        flat_sum += mean[0];
      }
    }
  }
  return {total ? static_cast<double>(flat) / total : 0.0, flat ? flat_sum / flat : 0.0};
}

/// Downsampled, smoothed, normalised (zero mean, unit std) tile.
cv::Mat structure(const cv::Mat& tile, int down, double sigma) {
  cv::Mat f;
  tile.convertTo(f, CV_32F);
  if (down > 1) cv::resize(f, f, cv::Size(tile.cols / down, tile.rows / down), 0, 0, cv::INTER_AREA);
  if (sigma > 0) cv::GaussianBlur(f, f, cv::Size(0, 0), sigma);
  cv::Scalar mean, sd;
  cv::meanStdDev(f, mean, sd);
  f = (f - mean[0]) / std::max(sd[0], 1e-6);
  return f;
}

}  // namespace

TileDecision evaluate_tile(const std::array<cv::Mat, 3>& tiles, const FilterOptions& o) {
  for (const cv::Mat& t : tiles) CV_Assert(t.type() == CV_8UC1 && t.size() == tiles[0].size());
  TileDecision d;
  TileMeasures& m = d.measures;
  auto reject = [&](RejectReason r, double value, double threshold) {
    if (d.reason == RejectReason::kNone) {
      d.reason = r;
      d.value = value;
      d.threshold = threshold;
    }
  };

  // 1. Flat regions.
  double flat_max = 0, flat_level = 0;
  for (const cv::Mat& t : tiles) {
    const auto [fraction, level] = flat_area(t, o.flat_block, o.flat_std);
    if (fraction > flat_max) {
      flat_max = fraction;
      flat_level = level;
    }
  }
  m.flat_fraction = static_cast<float>(flat_max);
  if (flat_max > o.max_flat_fraction) {
    reject(flat_level < 8 ? RejectReason::kPadding : RejectReason::kBlank, flat_max, o.max_flat_fraction);
  }

  // Measures every sample gets (stored in the shard).
  std::array<cv::Mat, 3> s;
  for (int i = 0; i < 3; ++i) s[i] = structure(tiles[i], o.defect_downsample, o.defect_sigma);
  m.ncc = {static_cast<float>(ncc(s[0], s[1])), static_cast<float>(ncc(s[2], s[1]))};
  for (int i = 0; i < 3; ++i) m.sharpness[i] = static_cast<float>(sharpness(tiles[i]));

  // 2. Defects: a region of one slice that disagrees with the other two. The
  //    median of the three is the consensus; a slice's residual against it is
  //    large only where that slice is the odd one out.
  {
    const cv::Mat lo = cv::min(cv::min(s[0], s[1]), s[2]), hi = cv::max(cv::max(s[0], s[1]), s[2]);
    const cv::Mat median = s[0] + s[1] + s[2] - lo - hi;
    cv::Mat anomalous = cv::Mat::zeros(median.size(), CV_8UC1);
    for (const cv::Mat& si : s) anomalous |= cv::abs(si - median) > o.defect_residual;
    m.defect_fraction = static_cast<float>(cv::countNonZero(anomalous)) / static_cast<float>(anomalous.total());
    if (m.defect_fraction > o.max_defect_fraction) reject(RejectReason::kDefect, m.defect_fraction, o.max_defect_fraction);
  }

  // 3. Continuity.
  const double min_ncc = std::min(m.ncc[0], m.ncc[1]);
  if (min_ncc < o.min_ncc) reject(RejectReason::kContinuity, min_ncc, o.min_ncc);

  // 4. Blur difference.
  const float smin = std::min({m.sharpness[0], m.sharpness[1], m.sharpness[2]});
  const float smax = std::max({m.sharpness[0], m.sharpness[1], m.sharpness[2]});
  const double ratio = smin > 0 ? static_cast<double>(smax) / smin : 1e9;
  if (ratio > o.max_blur_ratio) reject(RejectReason::kBlur, ratio, o.max_blur_ratio);

  // 5. Duplicated section.
  m.raw_ncc = static_cast<float>(std::max(ncc(tiles[0], tiles[1]), ncc(tiles[2], tiles[1])));
  if (m.raw_ncc > o.duplicate_ncc) reject(RejectReason::kDuplicate, m.raw_ncc, o.duplicate_ncc);
  return d;
}

}  // namespace emt::triplets
