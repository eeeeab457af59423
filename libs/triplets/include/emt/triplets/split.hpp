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
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace emt::triplets {

enum class Grouping { kZBlock, kNone };
enum class Partition { kTrain = 0, kVal = 1, kTest = 2 };
inline constexpr const char* kPartitionNames[3] = {"train", "val", "test"};

struct SplitOptions {
  std::array<double, 3> ratios{3, 1, 1};
  std::uint64_t seed = 0;
  Grouping grouping = Grouping::kZBlock;
  int block = 0;              ///< middles per z-block; 0 = 16 * step of the source
  bool materialize = false;   ///< also write DIR/{train,val,test}/ shard sets
};

/// Parses "3:1:1"; throws kInvalidArgument when it does not parse or sums to 0.
[[nodiscard]] std::array<double, 3> parse_ratios(const std::string& text);
/// Parses "z-block:N", "z-block" or "none".
void parse_grouping(const std::string& text, SplitOptions& options);

/// One triplet of a shard directory.
struct SampleRef {
  std::string shard;  ///< file name inside the directory
  std::int64_t index = 0;
  std::string source;
  std::int64_t z = 0, y = 0, x = 0;
  int step = 1;
};

/// DIR/manifest.json, parsed; throws kNotFound (no manifest: not a finished
/// build) or kDataLoss (not valid JSON, or a field the tools use missing or
/// of the wrong type) naming the file.
[[nodiscard]] nlohmann::json read_manifest(const std::string& dir);

/// What a triplet-build output directory holds that other tools must never
/// write over (manifest, rejected.csv, state, shards, splits/, materialized
/// partitions): the inputs for emt::refuse_output_overlapping_inputs.
[[nodiscard]] std::vector<std::filesystem::path> shard_directory_inputs(const std::string& dir);

/// The (shard file, index) entries of DIR/splits/NAME.txt in file order;
/// throws kNotFound naming the file when it does not exist, kInvalidData
/// naming it and the line when a line is not "SHARD INDEX".
[[nodiscard]] std::vector<std::pair<std::string, std::int64_t>> read_split_file(const std::string& dir, const std::string& name);
/// DIR/splits/NAME.txt
[[nodiscard]] std::string split_file_path(const std::string& dir, const std::string& name);

/// Reads manifest.json and every shard's metadata, verifying each shard's
/// SHA-256 against the manifest (kDataLoss naming the file on mismatch).
[[nodiscard]] std::vector<SampleRef> read_shard_directory(const std::string& dir, bool verify_checksums = true);

struct SplitResult {
  std::array<std::vector<SampleRef>, 3> partitions;  ///< sorted by (shard, index)
  std::int64_t guard_dropped = 0;
  std::int64_t groups = 0;
  nlohmann::json report;  ///< what split.json holds
};

/// Computes the split (pure: no files written).
[[nodiscard]] SplitResult compute_split(const std::vector<SampleRef>& samples, const SplitOptions& options);

/// Runs the whole tool: reads DIR, writes DIR/splits/* atomically (and the
/// materialized shard sets when asked). Returns the report.
[[nodiscard]] SplitResult run_split(const std::string& dir, const SplitOptions& options);

}  // namespace emt::triplets
