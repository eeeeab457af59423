#include "emt/triplets/filters.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>

#include <fmt/format.h>
#include <opencv2/imgproc.hpp>

#include "emt/common/error.hpp"

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
    case RejectReason::kRepeatedSection: return "repeated_section";
  }
  return "unknown";
}

double ncc(const cv::Mat& a, const cv::Mat& b) {
  CV_Assert(a.size() == b.size() && a.type() == b.type());
  CV_Assert(a.type() == CV_8UC1 || a.type() == CV_32FC1);
  const double n = static_cast<double>(a.total());
  double ma, mb, vaa, vbb, vab;
  if (a.type() == CV_8UC1) {
    // Exact integer sums: one pass, no conversions (this runs on every tile).
    std::uint64_t sa = 0, sb = 0, saa = 0, sbb = 0, sab = 0;
    for (int r = 0; r < a.rows; ++r) {
      const std::uint8_t* pa = a.ptr<std::uint8_t>(r);
      const std::uint8_t* pb = b.ptr<std::uint8_t>(r);
      std::uint32_t ra = 0, rb = 0, raa = 0, rbb = 0, rab = 0;  // a row of <= 66000 px cannot overflow
      for (int c = 0; c < a.cols; ++c) {
        const std::uint32_t x = pa[c], y = pb[c];
        ra += x;
        rb += y;
        raa += x * x;
        rbb += y * y;
        rab += x * y;
      }
      sa += ra; sb += rb; saa += raa; sbb += rbb; sab += rab;
    }
    ma = static_cast<double>(sa) / n;
    mb = static_cast<double>(sb) / n;
    vaa = static_cast<double>(saa) / n - ma * ma;
    vbb = static_cast<double>(sbb) / n - mb * mb;
    vab = static_cast<double>(sab) / n - ma * mb;
  } else {
    double sa = 0, sb = 0;
    for (int r = 0; r < a.rows; ++r) {
      const float* pa = a.ptr<float>(r);
      const float* pb = b.ptr<float>(r);
      for (int c = 0; c < a.cols; ++c) {
        sa += pa[c];
        sb += pb[c];
      }
    }
    ma = sa / n;
    mb = sb / n;
    vaa = vbb = vab = 0;
    for (int r = 0; r < a.rows; ++r) {
      const float* pa = a.ptr<float>(r);
      const float* pb = b.ptr<float>(r);
      for (int c = 0; c < a.cols; ++c) {
        const double x = pa[c] - ma, y = pb[c] - mb;
        vaa += x * x;
        vbb += y * y;
        vab += x * y;
      }
    }
    vaa /= n;
    vbb /= n;
    vab /= n;
  }
  if (vaa < 1e-18 || vbb < 1e-18) return 0.0;
  return vab / std::sqrt(vaa * vbb);
}

namespace {

double median_of(std::vector<double> v) {
  const std::size_t h = v.size() / 2;
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(h), v.end());
  const double upper = v[h];
  if (v.size() % 2 == 1) return upper;
  return 0.5 * (*std::max_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(h)) + upper);
}

/// ln(1 - NCC), the log dissimilarity; clamped so identical slices stay finite.
double log_dissimilarity(double ncc) { return std::log(1.0 - std::clamp(ncc, -1.0, 1.0 - 1e-4)); }

}  // namespace

RepeatedSections repeated_sections(const std::vector<double>& ncc, const std::vector<double>& sample, const FilterOptions& o) {
  RepeatedSections r;
  r.z.assign(ncc.size(), 0.0);
  r.repeated.assign(ncc.size(), false);
  if (sample.empty()) return r;
  r.median_ncc = median_of(sample);
  std::vector<double> logd(sample.size());
  std::transform(sample.begin(), sample.end(), logd.begin(), log_dissimilarity);
  r.median_log_d = median_of(logd);
  for (double& v : logd) v = std::abs(v - r.median_log_d);
  r.mad_log_d = median_of(logd);
  // 1.4826 MAD estimates the standard deviation of a normal sample.
  r.scale = std::max(1.4826 * r.mad_log_d, o.repeat_min_scale);
  r.active = static_cast<int>(sample.size()) >= o.repeat_min_pairs;
  if (!r.active) return r;
  for (std::size_t i = 0; i < ncc.size(); ++i) {
    r.z[i] = (r.median_log_d - log_dissimilarity(ncc[i])) / r.scale;
    r.repeated[i] = r.z[i] > o.repeat_max_z;
  }
  return r;
}

RepeatedSections repeated_sections(const std::vector<double>& ncc, const FilterOptions& o) { return repeated_sections(ncc, ncc, o); }

double sharpness(const cv::Mat& tile) {
  CV_Assert(tile.type() == CV_8UC1);
  // 8-bit fixed-point blur and a 16-bit Laplacian: several times faster than
  // float, and the rounding adds ~2 to a variance that is in the hundreds on EM.
  cv::Mat blurred, lap;
  cv::GaussianBlur(tile, blurred, cv::Size(7, 7), 1.0);
  cv::Laplacian(blurred, lap, CV_16S);
  cv::Scalar mean, sd;
  cv::meanStdDev(lap, mean, sd);
  return sd[0] * sd[0];
}

namespace {

/// Fraction of the tile covered by flat blocks, and the mean grey level of those blocks.
std::pair<double, double> flat_area(const cv::Mat& tile, int block, double max_std) {
  int flat = 0, total = 0;
  double flat_sum = 0;
  const double n = static_cast<double>(block) * block;
  for (int y = 0; y + block <= tile.rows; y += block) {
    for (int x = 0; x + block <= tile.cols; x += block) {
      std::uint64_t s = 0, s2 = 0;
      for (int r = y; r < y + block; ++r) {
        const std::uint8_t* p = tile.ptr<std::uint8_t>(r) + x;
        std::uint32_t rs = 0, rs2 = 0;
        for (int c = 0; c < block; ++c) {
          rs += p[c];
          rs2 += static_cast<std::uint32_t>(p[c]) * p[c];
        }
        s += rs;
        s2 += rs2;
      }
      const double mean = static_cast<double>(s) / n;
      const double var = std::max(0.0, static_cast<double>(s2) / n - mean * mean);
      ++total;
      if (std::sqrt(var) < max_std) {
        ++flat;
        flat_sum += mean;
      }
    }
  }
  return {total ? static_cast<double>(flat) / total : 0.0, flat ? flat_sum / flat : 0.0};
}

/// Downsampled, smoothed, normalised (zero mean, unit std) tile.
cv::Mat structure(const cv::Mat& tile, int down, double sigma) {
  cv::Mat f;
  if (down > 1) {
    cv::Mat small;
    cv::resize(tile, small, cv::Size(tile.cols / down, tile.rows / down), 0, 0, cv::INTER_AREA);  // 8-bit area average
    small.convertTo(f, CV_32F);
  } else {
    tile.convertTo(f, CV_32F);
  }
  if (sigma > 0) cv::GaussianBlur(f, f, cv::Size(0, 0), sigma);
  cv::Scalar mean, sd;
  cv::meanStdDev(f, mean, sd);
  f = (f - mean[0]) / std::max(sd[0], 1e-6);
  return f;
}

}  // namespace

TileDecision evaluate_tile(const std::array<cv::Mat, 3>& tiles, const FilterOptions& o) {
  for (const cv::Mat& t : tiles) {
    if (t.empty() || t.type() != CV_8UC1 || t.size() != tiles[0].size()) {
      throw Error(ErrorKind::kInvalidArgument, "evaluate_tile needs three non-empty uint8 tiles of one size");
    }
  }
  const int side = std::min(tiles[0].rows, tiles[0].cols);
  if (o.flat_block < 1 || side < o.flat_block) {
    throw Error(ErrorKind::kInvalidArgument, fmt::format("a {}x{} tile is smaller than one {} px flat block", tiles[0].cols, tiles[0].rows, o.flat_block));
  }
  if (o.defect_downsample < 1 || side / o.defect_downsample < 1) {
    throw Error(ErrorKind::kInvalidArgument, fmt::format("defect_downsample {} leaves nothing of a {} px tile", o.defect_downsample, side));
  }
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
  for (int i = 0; i < 3; ++i) {
    const auto [fraction, level] = flat_area(tiles[static_cast<std::size_t>(i)], o.flat_block, o.flat_std);
    m.slice_flat[static_cast<std::size_t>(i)] = static_cast<float>(fraction);
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
    for (int i = 0; i < 3; ++i) {
      const cv::Mat odd = cv::abs(s[static_cast<std::size_t>(i)] - median) > o.defect_residual;
      m.slice_defect[static_cast<std::size_t>(i)] = static_cast<float>(cv::countNonZero(odd)) / static_cast<float>(odd.total());
      anomalous |= odd;
    }
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
