#include "emt/triplets/preprocessing.hpp"

#include "emt/common/error.hpp"
#include "emt/triplets/shard_directory.hpp"

namespace emt::emio {
// Missing keys keep their defaults: a record written by an older version
// (fewer options) still reads.
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Uint16Mapping, low_percentile, high_percentile, sample_slices, sample_side)
}  // namespace emt::emio

namespace emt::triplets {
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(AlignOptions, search_radius, coarse_factor, fine_window, smooth_sigma)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(FilterOptions, flat_block, flat_std, max_flat_fraction, defect_downsample,
                                                defect_sigma, defect_residual, max_defect_fraction, min_ncc,
                                                max_blur_ratio, duplicate_ncc, repeat_max_z, repeat_min_scale,
                                                repeat_min_pairs, repeat_sample_pairs)

using nlohmann::json;

json to_json(const PreprocessingRecord& r) {
  json j{{"source", r.source_id}, {"step", r.step},          {"tile_size", r.tile_size}, {"uint16", r.uint16},
         {"align", r.align},      {"filters", r.filters},    {"histogram_matching", r.histogram_matching}};
  if (r.histogram_matching) {
    // Round-trip precision (nlohmann writes max_digits10): the reference is reproduced bit for bit.
    j["reference_counts"] = r.reference;
    j["reference_slices"] = r.reference_slices;
  }
  return j;
}

PreprocessingRecord preprocessing_from_json(const json& j, const std::string& origin) {
  PreprocessingRecord r;
  try {
    r.source_id = j.at("source").get<std::string>();
    r.step = j.at("step").get<int>();
    r.tile_size = j.at("tile_size").get<int>();
    r.uint16 = j.value("uint16", r.uint16);
    r.align = j.value("align", r.align);
    r.filters = j.value("filters", r.filters);
    r.histogram_matching = j.at("histogram_matching").get<bool>();
    if (r.histogram_matching) {
      const auto counts = j.at("reference_counts").get<std::vector<double>>();
      if (counts.size() != r.reference.size()) {
        throw Error(ErrorKind::kInvalidData, "preprocessing record: reference_counts must have 256 values", origin);
      }
      double total = 0;
      for (std::size_t v = 0; v < counts.size(); ++v) {
        if (!(counts[v] >= 0)) throw Error(ErrorKind::kInvalidData, "preprocessing record: negative reference count", origin);
        r.reference[v] = counts[v];
        total += counts[v];
      }
      if (!(total > 0)) throw Error(ErrorKind::kInvalidData, "preprocessing record: empty reference histogram", origin);
      r.reference_slices = j.value("reference_slices", std::vector<std::int64_t>{});
    }
  } catch (const json::exception& e) {
    throw Error(ErrorKind::kInvalidData, std::string("preprocessing record: ") + e.what(), origin);
  }
  if (r.step < 1 || r.tile_size < 1) throw Error(ErrorKind::kInvalidData, "preprocessing record: step and tile_size must be positive", origin);
  return r;
}

std::vector<PreprocessingRecord> read_preprocessing(const std::string& shard_dir) {
  return read_manifest(shard_dir).preprocessing.value_or(std::vector<PreprocessingRecord>{});
}

Histogram combined_reference(const std::vector<PreprocessingRecord>& records) {
  Histogram sum{};
  int n = 0;
  for (const auto& r : records) {
    if (!r.histogram_matching) continue;
    double total = 0;
    for (double c : r.reference) total += c;
    if (!(total > 0)) continue;
    for (std::size_t v = 0; v < sum.size(); ++v) sum[v] += r.reference[v] / total;
    ++n;
  }
  if (n > 1) {
    for (double& c : sum) c /= n;
  }
  return sum;
}

}  // namespace emt::triplets
