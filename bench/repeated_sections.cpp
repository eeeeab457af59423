// The repeated-section filter (triplets::repeated_sections) on a real stack,
// optionally with an injected duplicate: slice Z copied over its neighbour
// Z + step in memory (plus Gaussian noise of --noise grey levels for a
// "re-imaged" section rather than a byte copy). Computes the neighbour-pair
// alignment NCC exactly as triplet-build's slice analysis does (the spec's
// [align] options, pairs (z, z + step)) and prints one JSON object: the
// stack statistics, the z of the injected pair, the largest z elsewhere and
// every pair the filter fires on. For comparison it also gives the robust z of
// the raw NCC (median / MAD of NCC itself), which saturates near 1.
//
//   bench_repeated_sections SPEC [--inject Z] [--noise SIGMA] [--step K]
// bench/repeated_sections.sh runs it on the real stacks in ../shared/data.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>

#include "emt/emio/slice_source.hpp"
#include "emt/triplets/align.hpp"
#include "emt/triplets/filters.hpp"
#include "emt/triplets/spec.hpp"

namespace {

double median_of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t h = v.size() / 2;
  return v.size() % 2 ? v[h] : 0.5 * (v[h - 1] + v[h]);
}

}  // namespace

int main(int argc, char** argv) {
  using namespace emt;
  if (argc < 2) {
    std::fprintf(stderr, "usage: bench_repeated_sections SPEC [--inject Z] [--noise SIGMA] [--step K]\n");
    return 2;
  }
  const triplets::BuildSpec spec = triplets::load_spec(argv[1]);
  std::optional<std::int64_t> inject;
  double noise = 0;
  int step = spec.sources.at(0).step;
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string key = argv[i];
    if (key == "--inject") inject = std::atoll(argv[i + 1]);
    else if (key == "--noise") noise = std::atof(argv[i + 1]);
    else if (key == "--step") step = std::atoi(argv[i + 1]);
    else {
      std::fprintf(stderr, "bench_repeated_sections: error: unknown option %s\n", key.c_str());
      return 2;
    }
  }
  const triplets::SourceSpec& src = spec.sources.at(0);
  const auto volume = emio::open_source(src.path, {}, src.dataset);
  const std::int64_t depth = volume->shape().depth;
  std::vector<triplets::AlignmentFeatures> features;
  for (std::int64_t z = 0; z < depth; ++z) {
    cv::Mat slice = volume->read_slice(inject && z == *inject + step ? *inject : z);
    if (inject && z == *inject + step && noise > 0) {
      cv::Mat n(slice.size(), CV_32F);
      cv::RNG rng(7);
      rng.fill(n, cv::RNG::NORMAL, 0.0, noise);
      cv::Mat f;
      slice.convertTo(f, CV_32F);
      cv::Mat(f + n).convertTo(slice, CV_8U);  // saturating
    }
    features.push_back(triplets::prepare_alignment(slice, spec.align));
  }
  std::vector<double> ncc;
  for (std::int64_t z = 0; z + step < depth; ++z) {
    ncc.push_back(triplets::estimate_shift(features[static_cast<std::size_t>(z)], features[static_cast<std::size_t>(z + step)], spec.align).ncc);
  }
  const triplets::RepeatedSections r = triplets::repeated_sections(ncc, spec.filters);
  // Raw-NCC robust z for comparison.
  const double med = median_of(ncc);
  std::vector<double> dev;
  for (double v : ncc) dev.push_back(std::abs(v - med));
  const double raw_scale = std::max(1.4826 * median_of(dev), 1e-9);

  nlohmann::json out{{"stack", src.path}, {"step", step}, {"pairs", ncc.size()}, {"median_ncc", r.median_ncc},
                     {"median_log_d", r.median_log_d}, {"mad_log_d", r.mad_log_d}, {"scale", r.scale},
                     {"threshold_z", spec.filters.repeat_max_z}, {"raw_ncc_mad", median_of(dev)}};
  double max_else = -1e300, max_raw_else = -1e300;
  std::int64_t argmax = -1;
  nlohmann::json fired = nlohmann::json::array();
  for (std::size_t i = 0; i < ncc.size(); ++i) {
    const auto z = static_cast<std::int64_t>(i);
    if (r.repeated[i]) fired.push_back({{"pair", {z, z + step}}, {"ncc", ncc[i]}, {"z", r.z[i]}});
    if (inject && z == *inject) {
      out["injected"] = {{"pair", {z, z + step}}, {"noise", noise}, {"ncc", ncc[i]}, {"z", r.z[i]}, {"raw_ncc_z", (ncc[i] - med) / raw_scale}};
      continue;
    }
    if (r.z[i] > max_else) {
      max_else = r.z[i];
      argmax = z;
    }
    max_raw_else = std::max(max_raw_else, (ncc[i] - med) / raw_scale);
  }
  out["max_z_elsewhere"] = {{"pair", {argmax, argmax + step}}, {"ncc", ncc[static_cast<std::size_t>(argmax)]}, {"z", max_else}};
  out["max_raw_ncc_z_elsewhere"] = max_raw_else;
  out["fired"] = fired;
  std::cout << out.dump() << "\n";
  return 0;
}
