// triplet-build --merge: assembles the parts of a job-array build
// (OUT/parts/part-I-of-N/, each a complete build of a contiguous share of the
// triplets) into the output a single process would have written.
#include <filesystem>
#include <iterator>
#include <optional>
#include <regex>

#include <fmt/format.h>

#include "emt/common/error.hpp"
#include "emt/common/output_guard.hpp"
#include "emt/common/progress.hpp"
#include "emt/common/sha256.hpp"
#include "emt/triplets/build.hpp"
#include "emt/triplets/shard.hpp"

namespace emt::triplets {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

/// N of the parts OUT/parts holds (part-I-of-N); nullopt when none. Throws
/// kInvalidData for parts of different splits.
std::optional<int> split_of(const fs::path& out) {
  const fs::path root = out / "parts";
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return std::nullopt;
  const std::regex name("part-(\\d{4})-of-(\\d{4})");
  int parts = -1;
  for (const auto& e : fs::directory_iterator(root)) {
    std::smatch m;
    const std::string n = e.path().filename().string();
    if (!std::regex_match(n, m, name)) continue;
    const int count = std::stoi(m[2]);
    if (parts >= 0 && count != parts) {
      throw Error(ErrorKind::kInvalidData, fmt::format("parts of different splits ({} and {} parts) in one directory", parts, count), root.string());
    }
    parts = count;
  }
  if (parts < 1) return std::nullopt;
  return parts;
}

/// The parts under OUT/parts, checked complete and from one spec; index = part.
std::vector<Manifest> read_parts(const fs::path& out) {
  const std::optional<int> split = split_of(out);
  if (!split) throw Error(ErrorKind::kNotFound, "no parts to merge (run triplet-build --part I/N first)", (out / "parts").string());
  const int parts = *split;
  std::vector<Manifest> manifests;
  for (int i = 0; i < parts; ++i) {
    const fs::path dir = out / part_dir_name(i, parts);
    if (!fs::exists(dir / kManifestFile)) {
      throw Error(ErrorKind::kNotFound, fmt::format("part {} of {} is missing or unfinished (no {})", i, parts, kManifestFile), dir.string());
    }
    manifests.push_back(read_manifest(dir.string()));
    const json a = to_json(manifests.back()), b = to_json(manifests.front());
    for (const char* key : {"spec_sha256", "spec", "tile_size", "emtriplet_version", "sources", "preprocessing"}) {
      if (a.value(key, json()) != b.value(key, json())) {
        throw Error(ErrorKind::kInvalidData, fmt::format("part {} differs from part 0 in '{}' (built from another spec or version?)", i, key),
                    dir.string());
      }
    }
  }
  return manifests;
}

}  // namespace

namespace {

/// merge_parts once OUT's lock is held.
BuildSummary merge_locked(const std::string& out_dir, bool quiet) {
  const fs::path out(out_dir);
  const std::vector<Manifest> parts = read_parts(out);
  if (fs::exists(out / kManifestFile)) throw Error(ErrorKind::kInvalidArgument, "already holds a finished build", out_dir);
  const int parts_n = static_cast<int>(parts.size());
  const BuildSpec spec = parse_spec(parts.front().spec, (out / part_dir_name(0, parts_n) / kManifestFile).string());

  std::vector<fs::path> written;
  auto cleanup = [&] {
    std::error_code ec;
    for (const auto& p : written) fs::remove(p, ec);
  };
  BuildSummary summary;
  // manifest.json: part 0's, with the shards and totals of all parts (what a single process writes).
  Manifest manifest = parts.front();
  manifest.shards.clear();
  try {
    // Shards: the parts' samples in part order, repacked spec.shard_size to a shard.
    std::int64_t total = 0;
    for (const Manifest& m : parts) {
      for (const ShardEntry& s : m.shards) total += s.count;
    }
    Progress progress("triplet-build: merging", total, "triplets", quiet);
    std::vector<TripletSample> pending;
    std::optional<ShardAttributes> attributes;
    auto flush = [&] {
      const fs::path path = out / shard_file_name(static_cast<std::int64_t>(manifest.shards.size()));
      write_shard(path.string(), pending, *attributes);
      written.push_back(path);
      manifest.shards.push_back({path.filename().string(), static_cast<std::int64_t>(pending.size()), sha256_file(path)});
      pending.clear();
    };
    for (int i = 0; i < parts_n; ++i) {
      for (const ShardEntry& s : parts[static_cast<std::size_t>(i)].shards) {
        const ShardReader reader((out / part_dir_name(i, parts_n) / s.file).string());
        if (!attributes) {
          attributes = reader.attributes();
          attributes->compress = spec.compress;  // a property of the dataset, not read back as an attribute
        }
        for (std::int64_t k = 0; k < reader.size(); ++k) {
          pending.push_back(reader.read(k));
          if (pending.size() == static_cast<std::size_t>(spec.shard_size)) flush();
          progress.tick();
        }
      }
    }
    if (!pending.empty()) flush();
    progress.finish();

    // rejected.csv: every part's rows in order.
    std::vector<RejectedTile> rejected;
    for (int i = 0; i < parts_n; ++i) {
      auto rows = read_rejected_file(out / part_dir_name(i, parts_n) / kRejectedFile);
      rejected.insert(rejected.end(), std::make_move_iterator(rows.begin()), std::make_move_iterator(rows.end()));
    }
    write_rejected_file(out / kRejectedFile, rejected);
    written.push_back(out / kRejectedFile);

    std::map<std::string, std::int64_t> rejected_by_reason;
    std::int64_t candidates = 0;
    for (const Manifest& m : parts) {
      candidates += m.candidates.value_or(0);
      if (m.rejected) {
        for (const auto& [reason, n] : *m.rejected) rejected_by_reason[reason] += n;
      }
    }
    manifest.candidates = candidates;
    manifest.accepted = total;
    manifest.rejected = rejected_by_reason;
    write_manifest(out, manifest);
    summary.candidates = candidates;
    summary.triplets = total;
    summary.shards = static_cast<std::int64_t>(manifest.shards.size());
    summary.rejected = rejected_by_reason;
  } catch (...) {
    cleanup();
    throw;
  }
  std::error_code ec;
  fs::remove_all(out / "parts", ec);  // only our own parts live there
  return summary;
}

/// True when every part of the split OUT/parts holds has its manifest.
bool all_parts_finished(const fs::path& out) {
  std::optional<int> parts;
  try {
    parts = split_of(out);
  } catch (const Error&) {
    return false;  // mixed splits: --merge says what is wrong
  }
  if (!parts) return false;
  std::error_code ec;
  for (int i = 0; i < *parts; ++i) {
    if (!fs::exists(out / part_dir_name(i, *parts) / kManifestFile, ec)) return false;
  }
  return true;
}

}  // namespace

BuildSummary merge_parts(const std::string& out_dir, bool quiet) {
  const OutputLock lock(out_dir);  // no build or other merge into OUT meanwhile
  const fs::path out(out_dir);
  if (!split_of(out) && fs::exists(out / kManifestFile)) {
    // Merged already (by the last part to finish): a job that merges after
    // the array, as scripts written for --merge do, finds its work done.
    return summary_of(read_manifest(out_dir));
  }
  return merge_locked(out_dir, quiet);
}

std::optional<BuildSummary> merge_parts_if_complete(const std::string& out_dir, bool quiet) {
  const fs::path out(out_dir);
  if (!all_parts_finished(out) || fs::exists(out / kManifestFile)) return std::nullopt;
  const auto lock = OutputLock::try_lock(out);
  if (!lock) return std::nullopt;  // another part, finishing at the same time, merges
  // It may have merged (and removed the parts) between the look above and the lock.
  if (fs::exists(out / kManifestFile)) return std::nullopt;
  return merge_locked(out_dir, quiet);
}

}  // namespace emt::triplets
