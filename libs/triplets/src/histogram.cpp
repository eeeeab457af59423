#include "emt/triplets/histogram.hpp"

#include <algorithm>
#include <cmath>

#include <opencv2/core.hpp>

namespace emt::triplets {

Histogram histogram_of(const cv::Mat& image, bool ignore_zero) {
  CV_Assert(image.type() == CV_8UC1);
  std::array<std::uint64_t, 256> counts{};
  for (int r = 0; r < image.rows; ++r) {
    const std::uint8_t* p = image.ptr<std::uint8_t>(r);
    for (int c = 0; c < image.cols; ++c) ++counts[p[c]];
  }
  if (ignore_zero) counts[0] = 0;
  Histogram h{};
  for (int v = 0; v < 256; ++v) h[static_cast<std::size_t>(v)] = static_cast<double>(counts[static_cast<std::size_t>(v)]);
  return h;
}

std::array<double, 256> matching_values(const Histogram& source, const Histogram& reference) {
  // Reference points: (cumulative quantile, level) for levels present.
  std::vector<double> ref_q, ref_v;
  double ref_total = 0;
  for (double c : reference) ref_total += c;
  double acc = 0;
  for (int v = 0; v < 256; ++v) {
    if (reference[static_cast<std::size_t>(v)] <= 0) continue;
    acc += reference[static_cast<std::size_t>(v)];
    ref_q.push_back(acc / ref_total);
    ref_v.push_back(v);
  }
  std::array<double, 256> out{};
  if (ref_q.empty()) {
    for (int v = 0; v < 256; ++v) out[static_cast<std::size_t>(v)] = v;
    return out;
  }
  double src_total = 0;
  for (double c : source) src_total += c;
  acc = 0;
  for (int v = 0; v < 256; ++v) {
    // Absent levels use the quantile of the level below: the matched curve stays monotone.
    acc += source[static_cast<std::size_t>(v)];
    const double q = src_total > 0 ? acc / src_total : static_cast<double>(v) / 255.0;
    // numpy.interp: clamp outside, linear between points.
    double value;
    if (q <= ref_q.front()) {
      value = ref_v.front();
    } else if (q >= ref_q.back()) {
      value = ref_v.back();
    } else {
      const auto it = std::upper_bound(ref_q.begin(), ref_q.end(), q);
      const std::size_t hi = static_cast<std::size_t>(it - ref_q.begin()), lo = hi - 1;
      const double t = (q - ref_q[lo]) / (ref_q[hi] - ref_q[lo]);
      value = ref_v[lo] + t * (ref_v[hi] - ref_v[lo]);
    }
    out[static_cast<std::size_t>(v)] = value;
  }
  return out;
}

std::array<std::uint8_t, 256> matching_lut(const Histogram& source, const Histogram& reference, bool keep_zero) {
  const auto values = matching_values(source, reference);
  std::array<std::uint8_t, 256> lut{};
  for (std::size_t v = 0; v < 256; ++v) lut[v] = static_cast<std::uint8_t>(std::clamp(std::lround(values[v]), 0L, 255L));
  if (keep_zero) lut[0] = 0;
  return lut;
}

cv::Mat apply_lut(const cv::Mat& image, const std::array<std::uint8_t, 256>& lut) {
  CV_Assert(image.type() == CV_8UC1);
  cv::Mat table(1, 256, CV_8UC1, const_cast<std::uint8_t*>(lut.data()));
  cv::Mat out;
  cv::LUT(image, table, out);
  return out;
}

ReferenceHistogram reference_histogram(const std::vector<Histogram>& slices, double tolerance) {
  struct Stats {
    double total, mean, sd;
  };
  std::vector<Stats> stats;
  for (const Histogram& h : slices) {
    double n = 0, s = 0, s2 = 0;
    for (int v = 0; v < 256; ++v) {
      n += h[static_cast<std::size_t>(v)];
      s += v * h[static_cast<std::size_t>(v)];
      s2 += double(v) * v * h[static_cast<std::size_t>(v)];
    }
    const double mean = n > 0 ? s / n : 0;
    stats.push_back({n, mean, n > 0 ? std::sqrt(std::max(0.0, s2 / n - mean * mean)) : 0});
  }
  auto median = [](std::vector<double> v) {
    if (v.empty()) return 0.0;
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2), v.end());
    return v[v.size() / 2];
  };
  std::vector<double> means, sds;
  for (const Stats& s : stats) {
    if (s.total > 0 && s.sd > 1) {
      means.push_back(s.mean);
      sds.push_back(s.sd);
    }
  }
  const double mean_med = median(means), sd_med = median(sds);
  ReferenceHistogram ref;
  for (std::size_t i = 0; i < slices.size(); ++i) {
    const Stats& s = stats[i];
    const bool blank = s.total <= 0 || s.sd <= 1;
    const bool outlier = std::abs(s.mean - mean_med) > tolerance * mean_med || std::abs(s.sd - sd_med) > tolerance * sd_med;
    if (blank || outlier) continue;
    for (std::size_t v = 0; v < 256; ++v) ref.counts[v] += slices[i][v] / s.total;  // each slice weighs the same
    ref.used.push_back(i);
  }
  return ref;
}

}  // namespace emt::triplets
