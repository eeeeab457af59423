#include "emt/triplets/split.hpp"

#include <algorithm>
#include <filesystem>
#include <map>
#include <random>
#include <set>

#include <fmt/format.h>

#include "emt/common/atomic_file.hpp"
#include "emt/common/interrupt.hpp"
#include "emt/common/error.hpp"
#include "emt/common/output_guard.hpp"
#include "emt/common/random.hpp"
#include "emt/common/sha256.hpp"
#include "emt/common/text.hpp"
#include "emt/triplets/shard.hpp"

namespace emt::triplets {
namespace fs = std::filesystem;
using nlohmann::json;

std::array<double, 3> parse_ratios(const std::string& text) {
  const auto parts = split(text, ':');
  if (parts.size() != 3) throw Error(ErrorKind::kInvalidArgument, "--ratios must be TRAIN:VAL:TEST, like 3:1:1, not '" + text + "'");
  std::array<double, 3> r{};
  double sum = 0;
  for (int i = 0; i < 3; ++i) {
    r[i] = parse_double(parts[i], "--ratios");
    if (r[i] < 0) throw Error(ErrorKind::kInvalidArgument, "--ratios must not be negative: '" + text + "'");
    sum += r[i];
  }
  if (sum <= 0) throw Error(ErrorKind::kInvalidArgument, "--ratios sum to zero: '" + text + "'");
  for (double& v : r) v /= sum;
  return r;
}

void parse_grouping(const std::string& text, SplitOptions& o) {
  if (text == "none") {
    o.grouping = Grouping::kNone;
    return;
  }
  if (text == "z-block") {
    o.grouping = Grouping::kZBlock;
    return;
  }
  if (text.rfind("z-block:", 0) == 0) {
    o.grouping = Grouping::kZBlock;
    o.block = static_cast<int>(parse_int(text.substr(8), "--group z-block:N"));
    if (o.block < 1) throw Error(ErrorKind::kInvalidArgument, "--group z-block:N needs N >= 1");
    return;
  }
  throw Error(ErrorKind::kInvalidArgument, "--group must be z-block:N, z-block or none, not '" + text + "'");
}

namespace {

std::uint64_t string_seed(const std::string& s) {
  std::uint64_t h = 1469598103934665603ULL;  // FNV-1a
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ULL;
  return h;
}

}  // namespace

SplitResult compute_split(const std::vector<SampleRef>& samples, const SplitOptions& o) {
  SplitResult result;
  std::array<double, 3> ratio = o.ratios;
  double rsum = ratio[0] + ratio[1] + ratio[2];
  // Written so that NaN fails too.
  if (!(ratio[0] >= 0 && ratio[1] >= 0 && ratio[2] >= 0 && rsum > 0 && rsum < 1e300)) {
    throw Error(ErrorKind::kInvalidArgument, fmt::format("split ratios must be >= 0 and not all 0, not {}:{}:{}", ratio[0], ratio[1], ratio[2]));
  }
  if (o.block < 0) throw Error(ErrorKind::kInvalidArgument, fmt::format("z-block size must be >= 0 (0: automatic), not {}", o.block));
  for (double& r : ratio) r /= rsum;
  std::vector<int> assignment(samples.size(), -1);
  std::int64_t max_group = 1;

  if (o.grouping == Grouping::kNone) {
    std::vector<std::size_t> order(samples.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    portable_shuffle(order, o.seed);
    const double n = static_cast<double>(order.size());
    const auto cut1 = static_cast<std::size_t>(std::llround(ratio[0] * n)), cut2 = static_cast<std::size_t>(std::llround((ratio[0] + ratio[1]) * n));
    for (std::size_t k = 0; k < order.size(); ++k) assignment[order[k]] = k < cut1 ? 0 : k < cut2 ? 1 : 2;
    result.groups = static_cast<std::int64_t>(samples.size());
  } else {
    // Per source: blocks of consecutive middles.
    std::map<std::string, std::vector<std::size_t>> by_source;
    for (std::size_t i = 0; i < samples.size(); ++i) by_source[samples[i].source].push_back(i);
    std::int64_t total_blocks = 0;
    struct Block {
      std::int64_t first_z, last_z;
      std::vector<std::size_t> members;
      int partition = -1;
    };
    std::map<std::string, std::vector<Block>> blocks_of;
    for (auto& [source, idx] : by_source) {
      const int step = samples[idx.front()].step;
      std::int64_t zmin = samples[idx.front()].z, zmax = zmin;
      for (auto i : idx) {
        zmin = std::min(zmin, samples[i].z);
        zmax = std::max(zmax, samples[i].z);
      }
      // Default: 8 x step middles per block (guard bands then cost ~1/8 of the
      // data), smaller for short stacks so a source still gives ~10 blocks.
      const int block = o.block > 0 ? o.block
                                    : static_cast<int>(std::max<std::int64_t>(2 * step + 1, std::min<std::int64_t>(8 * step, (zmax - zmin + 1) / 10)));
      if (block < 2 * step + 1) {
        throw Error(ErrorKind::kInvalidArgument,
                    fmt::format("z-block of {} middles is too small for step {}: need at least {}", block, step, 2 * step + 1));
      }
      std::map<std::int64_t, Block> blocks;
      for (auto i : idx) {
        Block& b = blocks[(samples[i].z - zmin) / block];
        if (b.members.empty()) b.first_z = b.last_z = samples[i].z;
        b.first_z = std::min(b.first_z, samples[i].z);
        b.last_z = std::max(b.last_z, samples[i].z);
        b.members.push_back(i);
      }
      auto& list = blocks_of[source];
      for (auto& [k, b] : blocks) list.push_back(std::move(b));
      total_blocks += static_cast<std::int64_t>(list.size());
    }
    if (total_blocks < 3) {
      throw Error(ErrorKind::kInvalidData,
                  fmt::format("only {} z-block group(s), need at least 3 for three partitions (use a smaller --group z-block:N)", total_blocks));
    }
    result.groups = total_blocks;
    for (auto& [source, list] : blocks_of) {
      // Greedy towards the ratios, blocks in a seeded random order; stratified per source.
      std::vector<std::size_t> order(list.size());
      for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
      portable_shuffle(order, o.seed ^ string_seed(source));
      std::array<double, 3> have{0, 0, 0};
      double total = 0;
      for (std::size_t k : order) {
        const double w = static_cast<double>(list[k].members.size());
        max_group = std::max<std::int64_t>(max_group, static_cast<std::int64_t>(w));
        int best = 0;
        double best_deficit = -1e300;
        for (int p = 0; p < 3; ++p) {
          if (ratio[p] <= 0) continue;
          const double deficit = ratio[p] * (total + w) - have[p];
          if (deficit > best_deficit + 1e-9) {
            best_deficit = deficit;
            best = p;
          }
        }
        list[k].partition = best;
        have[best] += w;
        total += w;
      }
      // Guard bands: the later of two neighbouring blocks in different
      // partitions loses the triplets that would share a slice with the earlier.
      const int step = samples[list.front().members.front()].step;
      for (std::size_t k = 0; k < list.size(); ++k) {
        for (auto i : list[k].members) assignment[i] = list[k].partition;
        if (k == 0 || list[k - 1].partition == list[k].partition) continue;
        for (auto i : list[k].members) {
          if (samples[i].z - list[k - 1].last_z <= 2 * step) {
            assignment[i] = -1;
            ++result.guard_dropped;
          }
        }
      }
    }
  }

  std::map<std::string, std::array<std::int64_t, 3>> per_source;
  for (std::size_t i = 0; i < samples.size(); ++i) {
    if (assignment[i] < 0) continue;
    result.partitions[static_cast<std::size_t>(assignment[i])].push_back(samples[i]);
    ++per_source[samples[i].source][static_cast<std::size_t>(assignment[i])];
  }
  for (auto& part : result.partitions) {
    std::sort(part.begin(), part.end(), [](const SampleRef& a, const SampleRef& b) {
      return std::tie(a.shard, a.index) < std::tie(b.shard, b.index);
    });
  }
  json& r = result.report;
  r["ratios"] = {o.ratios[0], o.ratios[1], o.ratios[2]};
  r["seed"] = o.seed;
  r["grouping"] = o.grouping == Grouping::kNone ? "none" : "z-block";
  if (o.grouping == Grouping::kZBlock) r["block"] = o.block > 0 ? json(o.block) : json("auto: max(2 step + 1, min(8 step, z span / 10))");
  r["groups"] = result.groups;
  r["largest_group"] = max_group;
  r["guard_dropped"] = result.guard_dropped;
  const double kept = static_cast<double>(samples.size() - static_cast<std::size_t>(result.guard_dropped));
  for (int p = 0; p < 3; ++p) {
    r["counts"][kPartitionNames[p]] = result.partitions[static_cast<std::size_t>(p)].size();
    r["achieved_ratios"][kPartitionNames[p]] = kept > 0 ? static_cast<double>(result.partitions[static_cast<std::size_t>(p)].size()) / kept : 0.0;
  }
  for (const auto& [source, c] : per_source) r["per_source"][source] = {{"train", c[0]}, {"val", c[1]}, {"test", c[2]}};
  return result;
}

namespace {

/// True when DIR/NAME is absent or a partition an earlier --materialize wrote.
bool is_materialized_partition_or_absent(const fs::path& p) {
  if (!fs::exists(p)) return true;
  try {
    return read_manifest(p.string()).tool == "triplet-split --materialize";
  } catch (const std::exception&) {
    return false;
  }
}

void materialize(const ShardDirectory& in, const std::string& name, const std::vector<SampleRef>& part) {
  const fs::path final_dir = fs::path(in.dir()) / name;
  // Written into NAME.tmp/ and moved into place; it replaces only a partition
  // this tool wrote before (all of it is ours), never a user's directory.
  StagedDirectory staged(final_dir, /*force=*/true, [](const std::string&) { return true; });
  const fs::path tmp = staged.path();
  const Manifest& manifest = in.manifest();
  const std::size_t per_shard = manifest.shards.empty() ? 64 : std::max<std::int64_t>(1, manifest.shards[0].count);
  Manifest m = manifest;
  m.tool = "triplet-split --materialize";
  m.partition = name;
  m.shards.clear();
  m.candidates.reset();
  m.accepted = static_cast<std::int64_t>(part.size());
  m.rejected.reset();
  std::vector<TripletSample> pending;
  ShardAttributes attr;
  auto flush = [&] {
    const std::string file = shard_file_name(static_cast<std::int64_t>(m.shards.size()));
    write_shard((tmp / file).string(), pending, attr);
    m.shards.push_back({file, static_cast<std::int64_t>(pending.size()), sha256_file(tmp / file)});
    pending.clear();
  };
  for (const SampleRef& s : part) {
    throw_if_interrupted(final_dir.string());
    const ShardReader& reader = in.reader(s.shard);
    attr = reader.attributes();
    pending.push_back(reader.read(s.index));
    if (pending.size() == per_shard) flush();
  }
  if (!pending.empty()) flush();
  write_manifest(tmp, m);
  staged.commit();
}

}  // namespace

SplitResult run_split(const std::string& dir, const SplitOptions& o) {
  const ShardDirectory in(dir);
  const auto samples = in.samples(/*verify_checksums=*/true);
  SplitResult result = compute_split(samples, o);
  const fs::path out = fs::path(dir) / kSplitsDir;
  if (o.materialize) {
    for (const char* name : kPartitionNames) {
      if (!is_materialized_partition_or_absent(fs::path(dir) / name)) {
        throw Error(ErrorKind::kInvalidArgument, "exists and is not a partition --materialize wrote; it is not replaced (move it away)",
                    (fs::path(dir) / name).string());
      }
    }
  }
  ensure_writable_directory(out);
  for (int p = 0; p < 3; ++p) {
    std::vector<std::pair<std::string, std::int64_t>> entries;
    for (const SampleRef& s : result.partitions[static_cast<std::size_t>(p)]) entries.emplace_back(s.shard, s.index);
    write_split_file(dir, kPartitionNames[p], entries);
  }
  write_file_atomic(out / "split.json", result.report.dump(2) + "\n");
  if (o.materialize) {
    for (int p = 0; p < 3; ++p) materialize(in, kPartitionNames[p], result.partitions[static_cast<std::size_t>(p)]);
  }
  return result;
}

}  // namespace emt::triplets
