#pragma once
// The shard directory: the on-disk dataset triplet-build writes and every
// later tool reads (triplet-split, -inspect, -export, --merge, ssan-train,
// ssan-eval). This header owns its file names, manifest.json (typed, with its
// JSON conversion), the split files, rejected.csv and the cache of open
// shard readers, so no other file parses them. Formats: docs/formats.md.
//
//   DIR/manifest.json       what the build holds (Manifest); written last: its
//                           presence marks a finished build
//   DIR/shard-NNNNN.h5      the triplets (shard.hpp)
//   DIR/rejected.csv        every dropped tile (RejectedTile)
//   DIR/splits/NAME.txt     "SHARD INDEX" per line (triplet-split)
//
// Tile size has one source of truth, the manifest's `tile_size`: a shard
// whose tiles differ from it (or whose `tile_size` attribute differs from its
// /triplets shape, see ShardReader) is an error naming the file.
#include <array>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "emt/triplets/preprocessing.hpp"
#include "emt/triplets/shard.hpp"

namespace emt::triplets {

// ---- names inside a shard directory ----
inline constexpr const char* kManifestFile = "manifest.json";
inline constexpr const char* kRejectedFile = "rejected.csv";
inline constexpr const char* kStateFile = ".triplet-build-state.json";  ///< triplet-build's resume point
inline constexpr const char* kSplitsDir = "splits";
inline constexpr const char* kPartitionNames[3] = {"train", "val", "test"};
/// "shard-00012.h5"
[[nodiscard]] std::string shard_file_name(std::int64_t index);
/// True for the names shard_file_name() gives (and only those start "shard-").
[[nodiscard]] bool is_shard_file_name(const std::string& name);

// ---- manifest.json ----
struct ShardEntry {
  std::string file;        ///< a plain file name inside the directory
  std::int64_t count = 0;  ///< triplets it holds
  std::string sha256;      ///< of the whole file
};

/// One input volume of the build, as it was opened.
struct ManifestSource {
  std::string id, path, kind;
  std::optional<std::string> dataset;  ///< HDF5 sources only
  int scale = 0;                       ///< resolution level (written only when not 0)
  std::vector<std::int64_t> shape;     ///< depth, height, width
  int bits = 8;
  int step = 1;                        ///< triplets are (z - step, z, z + step)
  std::int64_t triplet_middles = 0;
  std::vector<std::int64_t> bad_slices;
  std::optional<std::array<double, 3>> resolution_nm;
  std::vector<std::int64_t> histogram_reference_slices;
};

struct Manifest {
  std::string tool = "triplet-build";  ///< "triplet-split --materialize" for a materialized partition
  std::string emtriplet_version;
  std::string spec;                    ///< the resolved spec text
  std::string spec_sha256;             ///< guards --resume and --merge
  std::string command;                 ///< provenance: the command line (never in shards)
  int tile_size = 0;                   ///< the one tile size of every shard
  int stride = 0;
  std::vector<ManifestSource> sources;
  std::vector<ShardEntry> shards;
  std::optional<std::int64_t> candidates;  ///< tiles considered (absent in a materialized partition)
  std::int64_t accepted = 0;
  std::optional<std::map<std::string, std::int64_t>> rejected;  ///< by reason (absent in a materialized partition)
  std::optional<std::vector<PreprocessingRecord>> preprocessing;  ///< per source (absent before the record existed)
  std::optional<std::string> partition;  ///< which partition a materialized one is

  /// The total of `rejected` (0 when absent).
  [[nodiscard]] std::int64_t rejected_total() const;
  /// The source of that id, or nullptr.
  [[nodiscard]] const ManifestSource* source(const std::string& id) const;
};

[[nodiscard]] nlohmann::json to_json(const Manifest& manifest);
/// Parses and checks a manifest; throws kDataLoss "manifest is damaged: ..."
/// naming `origin` for a wrong type, a missing required key or a shard entry
/// that is not a plain file name. Keys it does not know are ignored.
[[nodiscard]] Manifest manifest_from_json(const nlohmann::json& j, const std::string& origin);

/// DIR/manifest.json, parsed; throws kNotFound (no manifest: not a finished
/// build) or kDataLoss (not valid JSON, or damaged) naming the file.
[[nodiscard]] Manifest read_manifest(const std::string& dir);
/// Writes DIR/manifest.json atomically (the last file of a build).
void write_manifest(const std::filesystem::path& dir, const Manifest& manifest);

// ---- rejected.csv ----
inline constexpr const char* kRejectedHeader = "source,z,y,x,reason,value,threshold\n";
struct RejectedTile {
  std::string source;
  std::int64_t z = 0, y = 0, x = 0;  ///< middle slice and tile origin
  std::string reason;                ///< to_string(RejectReason)
  double value = 0, threshold = 0;
};
/// One line of rejected.csv, newline included (values with 6 significant digits).
[[nodiscard]] std::string format_rejected_row(const RejectedTile& row);
/// Every row of a rejected.csv file; kNotFound when absent, kDataLoss naming
/// the file and line for a malformed row.
[[nodiscard]] std::vector<RejectedTile> read_rejected_file(const std::filesystem::path& path);
/// Writes rows as a complete rejected.csv atomically.
void write_rejected_file(const std::filesystem::path& path, const std::vector<RejectedTile>& rows);

// ---- split files ----
/// DIR/splits/NAME.txt
[[nodiscard]] std::string split_file_path(const std::string& dir, const std::string& name);
/// The (shard file, index) entries of DIR/splits/NAME.txt in file order;
/// throws kNotFound naming the file when it does not exist, kInvalidData
/// naming it and the line when a line is not "SHARD INDEX".
[[nodiscard]] std::vector<std::pair<std::string, std::int64_t>> read_split_file(const std::string& dir, const std::string& name);
/// Writes DIR/splits/NAME.txt atomically from its entries.
void write_split_file(const std::string& dir, const std::string& name, const std::vector<std::pair<std::string, std::int64_t>>& entries);
/// The partition of each (shard, index) listed in DIR/splits/{train,val,test}.txt
/// (those present; empty when the directory was never split).
[[nodiscard]] std::map<std::pair<std::string, std::int64_t>, std::string> read_partitions(const std::string& dir);

/// What a shard directory holds that other tools must never write over
/// (manifest, rejected.csv, state, shards, splits/, materialized
/// partitions): the inputs for emt::refuse_output_overlapping_inputs.
[[nodiscard]] std::vector<std::filesystem::path> shard_directory_inputs(const std::string& dir);

// ---- the directory, opened ----
/// One triplet of a shard directory.
struct SampleRef {
  std::string shard;  ///< file name inside the directory
  std::int64_t index = 0;
  std::string source;
  std::int64_t z = 0, y = 0, x = 0;
  int step = 1;
};

/// A finished shard directory: its manifest, read once, and its shards,
/// each opened once on first use and kept open (thread-safe).
class ShardDirectory {
 public:
  /// Reads DIR/manifest.json; kNotFound when DIR or the manifest is missing.
  explicit ShardDirectory(std::string dir);
  ShardDirectory(const ShardDirectory&) = delete;
  ShardDirectory& operator=(const ShardDirectory&) = delete;

  [[nodiscard]] const std::string& dir() const noexcept { return dir_; }
  [[nodiscard]] const Manifest& manifest() const noexcept { return manifest_; }
  [[nodiscard]] int tile_size() const noexcept { return manifest_.tile_size; }
  /// The reader of shard file `file`, opened on first use. Throws kNotFound
  /// when it is missing, kInvalidData when its tiles are not the manifest's size.
  [[nodiscard]] const ShardReader& reader(const std::string& file) const;
  /// Every triplet in manifest order with its metadata. Checks each shard's
  /// presence and count against the manifest, and its SHA-256 when asked
  /// (kDataLoss naming the file on mismatch).
  [[nodiscard]] std::vector<SampleRef> samples(bool verify_checksums) const;
  /// DIR/rejected.csv, parsed.
  [[nodiscard]] std::vector<RejectedTile> rejected() const;

 private:
  std::string dir_;
  Manifest manifest_;
  mutable std::mutex mutex_;
  mutable std::map<std::string, std::unique_ptr<ShardReader>> readers_;
};

/// ShardDirectory(dir).samples(verify_checksums).
[[nodiscard]] std::vector<SampleRef> read_shard_directory(const std::string& dir, bool verify_checksums = true);

}  // namespace emt::triplets
