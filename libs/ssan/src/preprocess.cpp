#include "emt/ssan/preprocess.hpp"

#include <opencv2/core.hpp>

#include "emt/common/error.hpp"

namespace emt::ssan {

ReferenceMode parse_reference_mode(const std::string& name) {
  if (name == "checkpoint") return ReferenceMode::kCheckpoint;
  if (name == "volume") return ReferenceMode::kVolume;
  throw Error(ErrorKind::kInvalidArgument, "--reference must be checkpoint or volume (got '" + name + "')");
}

std::string to_string(ReferenceMode m) { return m == ReferenceMode::kVolume ? "volume" : "checkpoint"; }

std::optional<triplets::Histogram> model_reference(const std::vector<triplets::PreprocessingRecord>& records) {
  const triplets::Histogram h = triplets::combined_reference(records);
  double total = 0;
  for (double c : h) total += c;
  if (!(total > 0)) return std::nullopt;
  return h;
}

std::array<std::uint8_t, 256> invert_lut(const std::array<std::uint8_t, 256>& lut) {
  std::array<std::uint8_t, 256> inv{};
  for (int v = 0; v < 256; ++v) {
    // Smallest source level whose matched value reaches v (the LUT is monotone).
    int src = 255;
    for (int s = 0; s < 256; ++s) {
      if (lut[static_cast<std::size_t>(s)] >= v) {
        src = s;
        break;
      }
    }
    inv[static_cast<std::size_t>(v)] = static_cast<std::uint8_t>(src);
  }
  return inv;
}

MatchedPair match_pair(const cv::Mat& a, const cv::Mat& b, const triplets::Histogram& reference) {
  const auto la = triplets::matching_lut(triplets::histogram_of(a, true), reference, true);
  const auto lb = triplets::matching_lut(triplets::histogram_of(b, true), reference, true);
  MatchedPair p;
  p.a = triplets::apply_lut(a, la);
  p.b = triplets::apply_lut(b, lb);
  p.inv_a = invert_lut(la);
  p.inv_b = invert_lut(lb);
  return p;
}

cv::Mat map_back(const cv::Mat& prediction, const MatchedPair& pair, double t) {
  const cv::Mat pa = triplets::apply_lut(prediction, pair.inv_a), pb = triplets::apply_lut(prediction, pair.inv_b);
  cv::Mat out;
  cv::addWeighted(pa, 1 - t, pb, t, 0, out);
  return out;
}

}  // namespace emt::ssan
