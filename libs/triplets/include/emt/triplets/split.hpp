#pragma once
// triplet-split: train / val / test partitions of a shard directory without
// leakage between them.
//
// Default grouping (z-block): per source, the triplets' middle slices are cut
// into contiguous blocks of `block` slices; whole blocks are assigned to
// partitions (deterministically by seed, stratified per source, greedily
// towards the ratios). Where two neighbouring blocks land in different
// partitions, triplets of the later block that would share a slice with the
// earlier one (middles within 2 * step) are dropped as a guard band, so no
// slice of a test triplet appears in a training triplet. `none` assigns
// triplets individually (the paper's plain random split; leaks).
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "emt/triplets/shard_directory.hpp"  // SampleRef, split files, the partition names

namespace emt::triplets {

enum class Grouping { kZBlock, kNone };

struct SplitOptions {
  std::array<double, 3> ratios{3, 1, 1};
  std::uint64_t seed = 0;
  Grouping grouping = Grouping::kZBlock;
  int block = 0;              ///< middles per z-block; 0: max(2 step + 1, min(8 step, z span / 10)) per source
  bool materialize = false;   ///< also write DIR/{train,val,test}/ shard sets
};

/// Parses "3:1:1"; throws kInvalidArgument when it does not parse or sums to 0.
[[nodiscard]] std::array<double, 3> parse_ratios(const std::string& text);
/// Parses "z-block:N", "z-block" or "none".
void parse_grouping(const std::string& text, SplitOptions& options);

struct SplitResult {
  std::array<std::vector<SampleRef>, 3> partitions;  ///< sorted by (shard, index)
  std::int64_t guard_dropped = 0;
  std::int64_t groups = 0;
  nlohmann::json report;  ///< what split.json holds
};

/// Computes the split (pure: no files written). Throws kInvalidArgument for
/// negative ratios, ratios summing to 0 or a negative block.
[[nodiscard]] SplitResult compute_split(const std::vector<SampleRef>& samples, const SplitOptions& options);

/// Runs the whole tool: reads DIR, writes DIR/splits/* atomically (and the
/// materialized shard sets when asked). Returns the report.
[[nodiscard]] SplitResult run_split(const std::string& dir, const SplitOptions& options);

}  // namespace emt::triplets
