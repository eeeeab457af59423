#pragma once
// triplet-build's output directory over one run (private to libs/triplets):
// what may be written into it, the resume state of an interrupted build, and
// the cleanup of this run's outputs after a failure.
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "emt/common/output_guard.hpp"
#include "emt/triplets/shard_directory.hpp"

namespace emt::triplets::builder {

/// rejected.csv while the build runs (renamed at the end).
inline constexpr const char* kRejectedPartial = "rejected.csv.partial";

/// Where a build stands: the resume point and what the finished shards hold.
struct ResumePoint {
  std::size_t next_triplet = 0, next_tile = 0;   ///< the first tile not yet in a finished shard
  std::vector<ShardEntry> shards;                ///< finished shards, in order
  std::int64_t candidates = 0;                   ///< tiles considered before the resume point
  std::map<std::string, std::int64_t> rejected;  ///< by reason, before the resume point
  std::uintmax_t rejected_bytes = 0;             ///< length of rejected.csv.partial at the resume point
};

class BuildState {
 public:
  BuildState(std::filesystem::path dir, std::string spec_hash, bool force, bool resume);

  /// Claims the directory (lock held until destruction or cleanup) and
  /// either loads the state of an interrupted build (--resume: later files
  /// removed, finished shards checked) or clears the outputs of an earlier
  /// build and starts rejected.csv.partial. Throws kInvalidArgument when the
  /// directory holds something the flags do not allow replacing, kDataLoss
  /// when the resume state or a finished shard is damaged.
  void open();

  [[nodiscard]] const std::filesystem::path& dir() const noexcept { return dir_; }
  [[nodiscard]] const std::string& spec_hash() const noexcept { return spec_hash_; }
  /// open() found this spec's build finished and was asked to --resume:
  /// nothing to do (a requeued job, a rerun script).
  [[nodiscard]] bool finished() const noexcept { return finished_; }
  /// The progress loaded by open() (zero for a fresh build).
  [[nodiscard]] const ResumePoint& start() const noexcept { return start_; }

  /// Records the resume point after `point.shards.back()` was written.
  void save(const ResumePoint& point) const;
  /// A file this run created (removed again by remove_outputs_of_this_run).
  void written(const std::filesystem::path& path) { written_.push_back(path); }
  /// Finishes rejected.csv (fsync, rename) and removes the state: after the
  /// manifest was written, the build is complete.
  void commit_rejected() const;
  void remove_state() const;
  /// After a failure: removes what this run wrote (and the partial list and
  /// state of a fresh build), releases the lock, removes the directory if this
  /// run created it and it is empty.
  void remove_outputs_of_this_run();

 private:
  std::filesystem::path dir_;
  std::string spec_hash_;
  bool force_, resume_;
  ResumePoint start_;
  bool resumed_ = false, created_partial_ = false, created_dir_ = false, finished_ = false;
  std::unique_ptr<OutputLock> lock_;  // held for the whole run: a second build on dir_ fails at once
  std::vector<std::filesystem::path> written_;
};

}  // namespace emt::triplets::builder
