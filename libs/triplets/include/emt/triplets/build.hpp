#pragma once
// triplet-build's pipeline: sources -> aligned, filtered, histogram-matched
// triplet shards, manifest.json and rejected.csv in an output directory.
//
// Sections larger than output.lateral_block are cut into lateral blocks,
// each handled like a sub-volume (docs/triplet-build.md#lateral-blocks).
// Phases: (1) per slice and block, in parallel: histogram (summed per
// slice), and the shift aligning slice z + step onto slice z; per source a
// reference histogram from clean slices. (2) a TBB pipeline over triplets
// (z - step, z, z + step) per block in (source, z) order ((source, slab,
// block, z) with blocks): read (bounded cache of block regions), apply
// integer shifts, tile, filter, match histograms (parallel stage), then
// append to shards in order (serial stage). Output is byte-identical for any thread count, interruptible (a
// state file records finished shards) and resumable.
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "emt/triplets/shard_directory.hpp"  // the output directory's names and files
#include "emt/triplets/spec.hpp"

namespace emt::triplets {

struct BuildOptions {
  std::string out_dir;
  bool resume = false;           ///< continue an interrupted build in out_dir
  bool force = false;            ///< replace a build of a different spec in out_dir
  bool skip_bad_slices = false;  ///< unreadable slices become rejections instead of errors
  bool quiet = false;            ///< no progress
  std::string command;           ///< manifest provenance (without run-only flags, --out, --part); not in shards
  std::string version;           ///< recorded in shards and manifest
  std::function<void(const std::string&)> warn;  ///< warning sink (stderr in the tool)
  int stop_after_shards = -1;    ///< tests: behave as if interrupted after this many shards
  /// Job arrays: this process builds part `part` (0-based) of `parts`, a
  /// contiguous share of the triplets, into OUT/parts/part-I-of-N/ (resumable
  /// like a whole build); merge_parts() then assembles OUT.
  int part = 0, parts = 1;
};

struct BuildSummary {
  std::int64_t candidates = 0;  ///< tiles considered
  std::int64_t triplets = 0;    ///< tiles accepted (written)
  std::int64_t shards = 0;
  std::map<std::string, std::int64_t> rejected;  ///< by reason
  double seconds = 0;
  double megabytes_read = 0;  ///< input slice bytes used
  [[nodiscard]] nlohmann::json to_json() const;
};

/// The totals a finished build's manifest records.
[[nodiscard]] BuildSummary summary_of(const Manifest& manifest);

/// Runs the whole build. Throws emt::Error: kAborted when interrupted (finished
/// shards kept, --resume continues), other kinds for bad input (outputs of this
/// run removed). --resume of a finished build (or of a part whose OUT is
/// merged) changes nothing and returns its summary.
[[nodiscard]] BuildSummary run_build(const BuildSpec& spec, const BuildOptions& options);

/// Assembles OUT from its complete parts (OUT/parts/part-*-of-N/, every I in
/// [0, N)): shards repacked in order, rejected.csv concatenated, manifest.json
/// written, parts/ removed. The result equals a single-process build of the
/// same spec byte for byte. OUT merged already (no parts/, a manifest): its
/// summary, nothing written. Throws kNotFound naming a missing or unfinished
/// part, kInvalidData when parts come from different specs.
[[nodiscard]] BuildSummary merge_parts(const std::string& out_dir, bool quiet = false);
/// What the last part of a job array to finish calls: merge_parts when every
/// part is finished and OUT is not merged yet; nullopt (nothing done) when a
/// part is unfinished, OUT is already merged, or another process holds OUT's
/// lock (a part finishing at the same moment, which merges instead).
[[nodiscard]] std::optional<BuildSummary> merge_parts_if_complete(const std::string& out_dir, bool quiet = false);
/// "parts/part-IIII-of-NNNN", relative to the output directory.
[[nodiscard]] std::string part_dir_name(int part, int parts);

}  // namespace emt::triplets
