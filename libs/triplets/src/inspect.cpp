#include "emt/triplets/inspect.hpp"
#include "emt/triplets/montage.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "emt/common/atomic_file.hpp"
#include "emt/common/interrupt.hpp"
#include "emt/common/error.hpp"
#include "emt/common/output_guard.hpp"
#include "emt/common/sampling.hpp"
#include "emt/common/sha256.hpp"
#include "emt/emio/slice_source.hpp"
#include "emt/triplets/filters.hpp"
#include "emt/triplets/shard_directory.hpp"
#include "emt/triplets/shard.hpp"
#include "emt/triplets/split.hpp"

namespace emt::triplets {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

json distribution(std::vector<double> v, int bins) {
  json j;
  j["n"] = v.size();
  if (v.empty()) return j;
  std::sort(v.begin(), v.end());
  auto q = [&](double p) { return v[static_cast<std::size_t>(p * static_cast<double>(v.size() - 1))]; };
  j["min"] = v.front();
  j["p05"] = q(0.05);
  j["median"] = q(0.5);
  j["p95"] = q(0.95);
  j["max"] = v.back();
  const double lo = v.front(), hi = v.back() > v.front() ? v.back() : v.front() + 1;
  std::vector<std::int64_t> counts(static_cast<std::size_t>(bins), 0);
  for (double x : v) ++counts[std::min<std::size_t>(static_cast<std::size_t>((x - lo) / (hi - lo) * bins), static_cast<std::size_t>(bins - 1))];
  j["bins"] = {{"lo", lo}, {"hi", hi}, {"counts", counts}};
  return j;
}

}  // namespace

json summarize(const std::string& dir) {
  const ShardDirectory in(dir);
  const Manifest& manifest = in.manifest();
  const auto partitions = read_partitions(dir);
  std::map<std::string, std::map<std::string, std::int64_t>> per_source;
  std::vector<double> shift, ncc, sharp;
  for (const ShardEntry& s : manifest.shards) {
    const std::string& file = s.file;
    const auto meta = in.reader(file).read_meta();
    for (std::size_t i = 0; i < meta.size(); ++i) {
      const auto it = partitions.find({file, static_cast<std::int64_t>(i)});
      ++per_source[meta[i].source][it == partitions.end() ? (partitions.empty() ? "all" : "unassigned") : it->second];
      shift.push_back(std::hypot(meta[i].shift[0], meta[i].shift[1]));
      shift.push_back(std::hypot(meta[i].shift[2], meta[i].shift[3]));
      ncc.push_back(std::min(meta[i].ncc[0], meta[i].ncc[1]));
      sharp.push_back(meta[i].sharpness[1]);
    }
  }
  json j;
  j["dir"] = dir;
  j["triplets"] = manifest.accepted;
  j["candidates"] = manifest.candidates.value_or(0);
  j["rejected"] = manifest.rejected ? json(*manifest.rejected) : json::object();
  j["per_source"] = per_source;
  j["shift_px"] = distribution(shift, 10);
  j["min_ncc"] = distribution(ncc, 10);
  j["sharpness_middle"] = distribution(sharp, 10);
  return j;
}

std::string format_summary(const json& j) {
  std::string out = fmt::format("{}: {} triplets accepted of {} candidates\n", j.at("dir").get<std::string>(),
                                j.at("triplets").get<std::int64_t>(), j.at("candidates").get<std::int64_t>());
  out += "per source and partition:\n";
  for (const auto& [source, parts] : j.at("per_source").items()) {
    out += "  " + source + ":";
    for (const auto& [p, n] : parts.items()) out += fmt::format(" {} {}", p, n.get<std::int64_t>());
    out += "\n";
  }
  out += "rejected:\n";
  for (const auto& [reason, n] : j.at("rejected").items()) out += fmt::format("  {:<12} {}\n", reason, n.get<std::int64_t>());
  for (const char* key : {"shift_px", "min_ncc", "sharpness_middle"}) {
    const json& d = j.at(key);
    if (d.at("n").get<std::int64_t>() == 0) continue;
    out += fmt::format("{} (n {}, median {:.3g}, 5-95% {:.3g}..{:.3g}):\n", key, d.at("n").get<std::int64_t>(),
                       d.at("median").get<double>(), d.at("p05").get<double>(), d.at("p95").get<double>());
    const auto& counts = d.at("bins").at("counts");
    const double lo = d.at("bins").at("lo").get<double>(), hi = d.at("bins").at("hi").get<double>();
    std::int64_t most = 1;
    for (const auto& c : counts) most = std::max(most, c.get<std::int64_t>());
    for (std::size_t b = 0; b < counts.size(); ++b) {
      const auto c = counts[b].get<std::int64_t>();
      out += fmt::format("  {:>9.3g} | {:<40} {}\n", lo + (hi - lo) * static_cast<double>(b) / static_cast<double>(counts.size()),
                         std::string(static_cast<std::size_t>(40 * c / most), '#'), c);
    }
  }
  return out;
}

std::vector<std::string> verify_directory(const std::string& dir) {
  std::vector<std::string> problems;
  const ShardDirectory in(dir);
  std::int64_t total = 0;
  for (const ShardEntry& s : in.manifest().shards) {
    throw_if_interrupted(dir);
    const fs::path p = fs::path(dir) / s.file;
    if (!fs::exists(p)) {
      problems.push_back(s.file + ": missing");
      continue;
    }
    if (sha256_file(p) != s.sha256) problems.push_back(s.file + ": SHA-256 does not match the manifest");
    try {
      const ShardReader& r = in.reader(s.file);  // checks the tile size against the manifest
      if (r.size() != s.count) problems.push_back(s.file + ": count differs from the manifest");
      (void)r.read_meta();
      total += r.size();
    } catch (const Error& e) {
      problems.push_back(s.file + ": " + e.message());
    }
  }
  if (total != in.manifest().accepted) problems.push_back("manifest totals.accepted differs from the shards' counts");
  return problems;
}

cv::Mat montage(const std::string& dir, const MontageOptions& o) {
  if (o.max_rows < 1 || o.cell < 1) {
    throw Error(ErrorKind::kInvalidArgument, fmt::format("montage rows ({}) and cell size ({}) must be >= 1", o.max_rows, o.cell));
  }
  const ShardDirectory in(dir);
  const Manifest& manifest = in.manifest();
  std::vector<cv::Mat> rows;
  if (!o.rejected) {
    const auto samples = in.samples(/*verify_checksums=*/false);
    if (samples.empty()) throw Error(ErrorKind::kInvalidData, "no accepted triplets to show", dir);
    const auto size = static_cast<std::int64_t>(samples.size());
    const std::int64_t n = std::min<std::int64_t>(size, o.max_rows);
    for (std::int64_t i = 0; i < n; ++i) {
      const SampleRef& s = samples[static_cast<std::size_t>(evenly_spaced(i, n, size))];
      const TripletSample t = in.reader(s.shard).read(s.index);
      rows.push_back(captioned_row({t.slices.begin(), t.slices.end()}, o.cell, fmt::format("{} z={} y={} x={}  ncc {:.2f}/{:.2f}", s.source, s.z, s.y, s.x, t.ncc[0], t.ncc[1]), false));
    }
  } else {
    // Rejected tiles, re-read from the sources (unaligned: at the tile origin in each slice).
    std::vector<RejectedTile> rejected;
    for (RejectedTile& t : in.rejected()) {
      if (t.reason != to_string(RejectReason::kBadSlice)) rejected.push_back(std::move(t));
    }
    if (rejected.empty()) throw Error(ErrorKind::kInvalidData, "no rejected tiles to show", dir);
    std::map<std::string, std::unique_ptr<emio::SliceSource>> sources;
    for (const ManifestSource& s : manifest.sources) {
      emio::SourceOptions so;
      so.scale = s.scale;
      sources[s.id] = emio::open_source(s.path, so, s.dataset.value_or("volumes/raw"));
    }
    const int T = in.tile_size();
    // Spread over reasons: round-robin through the reasons present.
    std::map<std::string, std::vector<std::size_t>> by_reason;
    for (std::size_t i = 0; i < rejected.size(); ++i) by_reason[rejected[i].reason].push_back(i);
    std::vector<std::size_t> chosen;
    for (std::size_t round = 0; chosen.size() < static_cast<std::size_t>(o.max_rows); ++round) {
      bool any = false;
      for (auto& [reason, list] : by_reason) {
        if (round < list.size() && chosen.size() < static_cast<std::size_t>(o.max_rows)) {
          chosen.push_back(list[round]);
          any = true;
        }
      }
      if (!any) break;
    }
    for (std::size_t i : chosen) {
      const RejectedTile& f = rejected[i];
      const auto found = sources.find(f.source);
      if (found == sources.end()) {
        throw Error(ErrorKind::kDataLoss, "rejected.csv names source '" + f.source + "', which the manifest does not list", dir);
      }
      const auto& src = found->second;
      const std::int64_t z = f.z, y = f.y, x = f.x;
      const int k = manifest.source(f.source)->step;
      const cv::Rect rect = cv::Rect(static_cast<int>(x), static_cast<int>(y), T, T) &
                            cv::Rect(0, 0, static_cast<int>(src->shape().width), static_cast<int>(src->shape().height));
      std::array<cv::Mat, 3> tiles;
      for (int s = 0; s < 3; ++s) tiles[static_cast<std::size_t>(s)] = src->read_slice(z + (s - 1) * k)(rect).clone();
      rows.push_back(captioned_row({tiles.begin(), tiles.end()}, o.cell, fmt::format("{} z={} y={} x={}  {} {:.6g} (thr {:.6g})", f.source, z, y, x, f.reason, f.value, f.threshold), true));
    }
  }
  return stack_rows(rows);
}

std::int64_t export_triplets(const std::string& dir, const std::string& out, const ExportOptions& o) {
  refuse_output_overlapping_inputs(out, shard_directory_inputs(dir), "--out");
  check_output_directory(out, o.force);
  OutputLock lock(out);
  const ShardDirectory in(dir);
  const auto samples = in.samples(/*verify_checksums=*/true);
  const auto partitions = read_partitions(dir);
  // A split line naming no triplet of the manifest is an error, as in ssan-train:
  // exporting fewer triplets than the split lists would go unnoticed.
  {
    std::set<std::pair<std::string, std::int64_t>> known;
    for (const SampleRef& s : samples) known.insert({s.shard, s.index});
    for (const auto& [entry, part] : partitions) {
      if (!known.count(entry)) {
        throw Error(ErrorKind::kInvalidData, fmt::format("split lists '{} {}', which is not a triplet of the manifest", entry.first, entry.second),
                    split_file_path(dir, part));
      }
    }
  }
  // Written into OUT.tmp/ and moved into place: an existing OUT (--force)
  // loses only what an export writes; a failure or a signal leaves nothing.
  StagedDirectory staged(out, o.force, [](const std::string& name) {
    return name == "sequences" || name.rfind("tri_", 0) == 0 || name == "train" || name == "val" || name == "test";
  });
  const fs::path tmp = staged.path();
  std::map<std::string, std::string> lists;  // partition -> list text
  std::map<std::string, int> shard_number;
  std::int64_t n = 0;
  for (const SampleRef& s : samples) {
    throw_if_interrupted(out);
    const auto it = partitions.find({s.shard, s.index});
    const std::string part = it != partitions.end() ? it->second : (partitions.empty() ? "train" : "");
    if (part.empty()) continue;  // dropped by the split's guard bands
    if (!shard_number.count(s.shard)) {
      const int number = static_cast<int>(shard_number.size()) + 1;
      shard_number[s.shard] = number;
    }
    const TripletSample t = in.reader(s.shard).read(s.index);
    std::array<cv::Mat, 3> images;
    for (int k = 0; k < 3; ++k) {
      if (o.rgb) {
        cv::cvtColor(t.slices[static_cast<std::size_t>(k)], images[static_cast<std::size_t>(k)], cv::COLOR_GRAY2BGR);
      } else {
        images[static_cast<std::size_t>(k)] = t.slices[static_cast<std::size_t>(k)];
      }
    }
    std::vector<fs::path> files;
    if (o.format == ExportFormat::kVimeo) {
      const std::string seq = fmt::format("{:05d}/{:04d}", shard_number[s.shard], s.index + 1);
      const fs::path d = tmp / "sequences" / seq;
      fs::create_directories(d);
      files = {d / "im1.png", d / "im2.png", d / "im3.png"};
      lists[part] += seq + "\n";
    } else {
      const fs::path d = tmp / part;
      fs::create_directories(d);
      for (int k = 1; k <= 3; ++k) files.push_back(d / fmt::format("{}_{}_{}_{}_{}.png", s.source, s.z, s.y, s.x, k));
    }
    for (int k = 0; k < 3; ++k) {
      // Encode, then write with a checked write: cv::imwrite does not report a full disk.
      std::vector<unsigned char> bytes;
      if (!cv::imencode(".png", images[static_cast<std::size_t>(k)], bytes)) {
        throw Error(ErrorKind::kIo, "cannot encode image", files[static_cast<std::size_t>(k)].string());
      }
      write_file(files[static_cast<std::size_t>(k)], std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
    }
    ++n;
  }
  if (o.format == ExportFormat::kVimeo) {
    write_file(tmp / "tri_trainlist.txt", lists["train"]);
    write_file(tmp / "tri_vallist.txt", lists["val"]);
    write_file(tmp / "tri_testlist.txt", lists["test"]);
  }
  throw_if_interrupted(out);
  staged.commit();
  return n;
}

}  // namespace emt::triplets
