#pragma once
// The preprocessing contract between the data and the model.
//
// triplet-build turns each source into training triplets through a fixed
// chain: 16-bit -> 8-bit mapping, slice step, alignment, filters, histogram
// matching to a per-source reference, tiling. A model only knows intensities
// and geometry as that chain delivered them, so the chain's parameters travel
// with the data: one PreprocessingRecord per source in manifest.json, copied
// by ssan-train into the checkpoint, and used by ssan-interpolate / ssan-eval
// to prepare a new volume the way the training data was prepared (its
// neighbours matched to the training reference, the prediction mapped back to
// the volume's own intensities). docs/formats.md describes the JSON.
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "emt/emio/slice_source.hpp"
#include "emt/triplets/align.hpp"
#include "emt/triplets/filters.hpp"
#include "emt/triplets/histogram.hpp"

namespace emt::triplets {

struct PreprocessingRecord {
  std::string source_id;
  int step = 1;                 ///< triplets are (z - step, z, z + step)
  int tile_size = 512;
  emio::Uint16Mapping uint16;   ///< how 16-bit input became 8 bit
  AlignOptions align;
  FilterOptions filters;
  bool histogram_matching = false;      ///< false: slices were used as read (no reference)
  Histogram reference{};                ///< the reference: summed per-slice level frequencies (valid with histogram_matching)
  std::vector<std::int64_t> reference_slices;  ///< the slices it was summed from
};

[[nodiscard]] nlohmann::json to_json(const PreprocessingRecord& record);
/// Parses one record; throws kInvalidData naming `origin` and the bad key.
/// Keys added by later versions may be absent (their defaults apply).
[[nodiscard]] PreprocessingRecord preprocessing_from_json(const nlohmann::json& j, const std::string& origin);

/// The records of a shard directory's manifest.json (empty for a build that
/// predates the record). Throws kNotFound / kInvalidData naming the file.
[[nodiscard]] std::vector<PreprocessingRecord> read_preprocessing(const std::string& shard_dir);

/// The one reference a model's inputs are matched to: the records' references,
/// each normalised to unit mass, averaged (a model trained on several sources
/// saw each matched to its own). Empty counts (all zero) when no record has one.
[[nodiscard]] Histogram combined_reference(const std::vector<PreprocessingRecord>& records);

}  // namespace emt::triplets
