#include "builder/state.hpp"

#include <nlohmann/json.hpp>

#include "emt/common/atomic_file.hpp"
#include "emt/common/error.hpp"
#include "emt/common/sha256.hpp"

namespace emt::triplets::builder {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

/// triplet-build's own names in its output directory.
bool is_own_entry(const std::string& name) {
  return is_shard_file_name(name) || name == kManifestFile || name == kRejectedFile || name == kStateFile || name == kRejectedPartial ||
         name == kSplitsDir || name == "train" || name == "val" || name == "test" || name == "parts" ||
         (name.size() > 4 && name.compare(name.size() - 4, 4, ".tmp") == 0);
}

}  // namespace

BuildState::BuildState(fs::path dir, std::string spec_hash, bool force, bool resume)
    : dir_(std::move(dir)), spec_hash_(std::move(spec_hash)), force_(force), resume_(resume) {}

void BuildState::open() {
  if (!force_) {
    // A directory that is not a (partial) build of ours is written into only with --force.
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir_, ec)) {
      if (!is_own_entry(e.path().filename().string())) {
        throw Error(ErrorKind::kInvalidArgument,
                    "output directory holds files triplet-build did not write; give --force to add a build beside them (they are never touched)",
                    dir_.string());
      }
    }
  }
  created_dir_ = create_output_directory(dir_);
  ensure_writable_directory(dir_);
  lock_ = std::make_unique<OutputLock>(dir_);
  const bool has_manifest = fs::exists(dir_ / kManifestFile), has_state = fs::exists(dir_ / kStateFile);
  auto other_hash = [&](const fs::path& p) {
    try {
      return json::parse(read_file(p)).value("spec_sha256", std::string());
    } catch (const json::exception&) {
      return std::string("unreadable");
    }
  };
  bool has_shards = false;
  for (const auto& e : fs::directory_iterator(dir_)) has_shards |= is_shard_file_name(e.path().filename().string());
  if (!force_) {
    if (has_state && other_hash(dir_ / kStateFile) != spec_hash_) {
      throw Error(ErrorKind::kInvalidArgument, "directory holds an unfinished build of a different spec; use --force to replace it", dir_.string());
    }
    if (has_state && !resume_) {
      throw Error(ErrorKind::kInvalidArgument, "directory holds an unfinished build; rerun with --resume to finish it (or --force to start over)",
                  dir_.string());
    }
    if (has_manifest && other_hash(dir_ / kManifestFile) != spec_hash_) {
      throw Error(ErrorKind::kInvalidArgument, "directory holds shards from a different spec; use --force to replace them", dir_.string());
    }
    if (has_shards && !has_manifest && !has_state) {
      throw Error(ErrorKind::kInvalidArgument, "directory holds shard files of unknown origin; use --force to replace them", dir_.string());
    }
  }
  if (resume_ && !force_ && has_manifest && !has_state) {
    finished_ = true;  // of this spec (checked above): kept as it is
    return;
  }
  if (resume_ && has_state && !force_) {
    try {
      const json state = json::parse(read_file(dir_ / kStateFile));
      start_.next_triplet = state.at("next_triplet").get<std::size_t>();
      start_.next_tile = state.at("next_tile").get<std::size_t>();
      for (const json& sh : state.at("shards")) {
        start_.shards.push_back({sh.at("file").get<std::string>(), sh.at("count").get<std::int64_t>(), sh.at("sha256").get<std::string>()});
      }
      start_.candidates = state.at("candidates").get<std::int64_t>();
      start_.rejected = state.at("rejected").get<std::map<std::string, std::int64_t>>();
      start_.rejected_bytes = state.at("rejected_bytes").get<std::uintmax_t>();
    } catch (const json::exception& e) {
      throw Error(ErrorKind::kDataLoss, std::string("resume state is damaged (use --force to start over): ") + e.what(), (dir_ / kStateFile).string());
    }
    // Anything past the last recorded shard is from the interrupted run.
    for (const auto& e : fs::directory_iterator(dir_)) {
      const std::string name = e.path().filename().string();
      bool recorded = false;
      for (const ShardEntry& s : start_.shards) recorded |= s.file == name;
      if ((is_shard_file_name(name) && !recorded) || (e.path().extension() == ".tmp")) fs::remove(e.path());
    }
    for (const ShardEntry& s : start_.shards) {
      const fs::path p = dir_ / s.file;
      if (!fs::exists(p) || sha256_file(p) != s.sha256) {
        throw Error(ErrorKind::kDataLoss, "finished shard is missing or changed since the interruption; use --force to start over", p.string());
      }
    }
    fs::resize_file(dir_ / kRejectedPartial, start_.rejected_bytes);
    resumed_ = true;
    return;
  }
  // Fresh build: clear our previous outputs.
  for (const auto& e : fs::directory_iterator(dir_)) {
    const std::string name = e.path().filename().string();
    if (is_shard_file_name(name) || name == kManifestFile || name == kRejectedFile || name == kStateFile || name == kRejectedPartial ||
        e.path().extension() == ".tmp") {
      fs::remove(e.path());
    }
  }
  // Splits and materialized partitions describe the old shards: drop them.
  for (const char* derived : {kSplitsDir, "train", "val", "test"}) {
    const fs::path p = dir_ / derived;
    if (fs::is_directory(p) && (std::string(derived) == kSplitsDir || fs::exists(p / kManifestFile))) fs::remove_all(p);
  }
  write_file_atomic(dir_ / kRejectedPartial, kRejectedHeader);
  start_.rejected_bytes = std::string(kRejectedHeader).size();
  created_partial_ = true;
  // The state exists before the first shard does: a build killed (SIGKILL)
  // between a shard's rename and its first save() must still be resumable,
  // not a directory of "shard files of unknown origin".
  save(start_);
}

void BuildState::save(const ResumePoint& p) const {
  json shards = json::array();
  for (const ShardEntry& s : p.shards) shards.push_back(json{{"file", s.file}, {"count", s.count}, {"sha256", s.sha256}});
  json state{{"spec_sha256", spec_hash_}, {"next_triplet", p.next_triplet}, {"next_tile", p.next_tile}, {"shards", shards},
             {"candidates", p.candidates}, {"rejected", p.rejected}, {"rejected_bytes", p.rejected_bytes}};
  write_file_atomic(dir_ / kStateFile, state.dump(1) + "\n");
}

void BuildState::commit_rejected() const {
  const fs::path partial = dir_ / kRejectedPartial;
  fsync_path(partial);
  fs::rename(partial, dir_ / kRejectedFile);
}

void BuildState::remove_state() const {
  std::error_code ec;
  fs::remove(dir_ / kStateFile, ec);
}

void BuildState::remove_outputs_of_this_run() {
  if (!lock_) return;  // failed before the directory was ours: nothing of this run is in it
  std::error_code ec;
  for (const auto& f : written_) fs::remove(f, ec);
  if (!resumed_ && created_partial_) {  // a fresh build of this run: its state and partial list are ours
    fs::remove(dir_ / kStateFile, ec);
    fs::remove(dir_ / kRejectedPartial, ec);
  }
  for (const auto& e : fs::directory_iterator(dir_, ec)) {
    if (e.path().extension() == ".tmp") fs::remove(e.path(), ec);
  }
  lock_.reset();
  if (created_dir_) remove_if_empty(dir_);
}

}  // namespace emt::triplets::builder
