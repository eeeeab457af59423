#pragma once
// The model's half of the preprocessing contract (triplets/preprocessing.hpp):
// a model's two input slices are histogram-matched to the reference its
// training data was matched to, and its prediction is mapped back to the
// intensities of the volume it is applied to. ssan-interpolate and ssan-eval
// prepare their inputs through this, so a model applied to a darker or
// differently stained volume sees the intensities it was trained on.
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

#include "emt/triplets/histogram.hpp"
#include "emt/triplets/preprocessing.hpp"

namespace emt::ssan {

/// Which reference the inputs are matched to.
enum class ReferenceMode {
  kCheckpoint,  ///< the training data's (the checkpoint's preprocessing records): the contract
  kVolume,      ///< one computed from the volume at hand (the behaviour before the contract)
};
[[nodiscard]] ReferenceMode parse_reference_mode(const std::string& name);
[[nodiscard]] std::string to_string(ReferenceMode m);

/// The reference a model's inputs are matched to, from its records; nullopt
/// when none carries one (matching was off, or the checkpoint predates records).
[[nodiscard]] std::optional<triplets::Histogram> model_reference(const std::vector<triplets::PreprocessingRecord>& records);

/// Inverse of a monotone matching LUT: for each matched level, the smallest
/// source level that reaches it.
[[nodiscard]] std::array<std::uint8_t, 256> invert_lut(const std::array<std::uint8_t, 256>& lut);

/// Two neighbours matched to a reference, with the maps that undo each.
struct MatchedPair {
  cv::Mat a, b;                          ///< CV_8UC1, matched (zero padding stays zero)
  std::array<std::uint8_t, 256> inv_a{}, inv_b{};
};
[[nodiscard]] MatchedPair match_pair(const cv::Mat& a, const cv::Mat& b, const triplets::Histogram& reference);

/// A prediction made from a MatchedPair, back in the neighbours' intensities:
/// each neighbour's inverse map, weighted by distance (t = 0 at a, 1 at b).
[[nodiscard]] cv::Mat map_back(const cv::Mat& prediction, const MatchedPair& pair, double t);

}  // namespace emt::ssan
