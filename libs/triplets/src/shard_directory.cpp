#include "emt/triplets/shard_directory.hpp"

#include <charconv>
#include <cstdint>
#include <sstream>

#include <fmt/format.h>

#include "emt/common/atomic_file.hpp"
#include "emt/common/error.hpp"
#include "emt/common/sha256.hpp"
#include "emt/common/text.hpp"

namespace emt::triplets {
namespace fs = std::filesystem;
using nlohmann::json;

std::string shard_file_name(std::int64_t index) { return fmt::format("shard-{:05d}.h5", index); }
bool is_shard_file_name(const std::string& name) { return name.rfind("shard-", 0) == 0; }

// ---- manifest.json ----

std::int64_t Manifest::rejected_total() const {
  std::int64_t n = 0;
  if (rejected) {
    for (const auto& [reason, count] : *rejected) n += count;
  }
  return n;
}

const ManifestSource* Manifest::source(const std::string& id) const {
  for (const ManifestSource& s : sources) {
    if (s.id == id) return &s;
  }
  return nullptr;
}

json to_json(const Manifest& m) {
  // nlohmann's json object sorts its keys: the file's key order does not
  // depend on the order they are set here.
  json j;
  j["tool"] = m.tool;
  j["emtriplet_version"] = m.emtriplet_version;
  j["spec"] = m.spec;
  j["spec_sha256"] = m.spec_sha256;
  j["provenance"] = {{"command", m.command}};
  j["tile_size"] = m.tile_size;
  j["stride"] = m.stride;
  json& sources = j["sources"] = json::array();
  for (const ManifestSource& s : m.sources) {
    json e{{"id", s.id}, {"path", s.path}, {"kind", s.kind}, {"shape", s.shape}, {"bits", s.bits}, {"step", s.step},
           {"triplet_middles", s.triplet_middles}, {"bad_slices", s.bad_slices}};
    if (s.dataset) e["dataset"] = *s.dataset;
    if (s.scale != 0) e["scale"] = s.scale;
    if (s.resolution_nm) e["resolution_nm"] = *s.resolution_nm;
    e["histogram_reference_slices"] = s.histogram_reference_slices;
    sources.push_back(std::move(e));
  }
  json& shards = j["shards"] = json::array();
  for (const ShardEntry& s : m.shards) shards.push_back(json{{"file", s.file}, {"count", s.count}, {"sha256", s.sha256}});
  json& totals = j["totals"] = json::object();
  if (m.candidates) totals["candidates"] = *m.candidates;
  totals["accepted"] = m.accepted;
  if (m.rejected) {
    totals["rejected"] = m.rejected_total();
    j["rejected"] = *m.rejected;
  }
  if (m.preprocessing) {
    json& records = j["preprocessing"] = json::array();
    for (const PreprocessingRecord& r : *m.preprocessing) records.push_back(to_json(r));
  }
  if (m.partition) j["partition"] = *m.partition;
  return j;
}

namespace {

/// Typed access to a manifest's keys; every failure is one "manifest is
/// damaged: ..." error naming the file, never a JSON exception.
class Reader {
 public:
  explicit Reader(std::string origin) : origin_(std::move(origin)) {}
  [[nodiscard]] Error bad(const std::string& what) const { return Error(ErrorKind::kDataLoss, "manifest is damaged: " + what, origin_); }
  /// j[key] as T; absent: `fallback` when given, else an error.
  template <class T>
  T get(const json& j, const char* key, const std::string& where, std::optional<T> fallback = std::nullopt) const {
    const auto it = j.find(key);
    if (it == j.end()) {
      if (fallback) return *fallback;
      throw bad(where + key + " is missing");
    }
    try {
      return it->template get<T>();
    } catch (const json::exception&) {
      throw bad(where + key + " has the wrong type");
    }
  }
  [[nodiscard]] const std::string& origin() const { return origin_; }

 private:
  std::string origin_;
};

/// An integer key (nlohmann would turn 1.5 into 1 without a word); absent: `fallback`.
std::int64_t get_int(const Reader& r, const json& j, const char* key, const std::string& where, std::int64_t fallback, std::int64_t lo = INT32_MIN,
                     std::int64_t hi = INT32_MAX) {
  const auto it = j.find(key);
  if (it == j.end()) return fallback;
  if (!it->is_number_integer() || (!it->is_number_unsigned() && it->get<std::int64_t>() < lo) ||
      (it->is_number_unsigned() && it->get<std::uint64_t>() > static_cast<std::uint64_t>(hi))) {
    throw r.bad(fmt::format("{}{} is not an integer in [{}, {}]", where, key, lo, hi));
  }
  return it->get<std::int64_t>();
}

}  // namespace

Manifest manifest_from_json(const json& j, const std::string& origin) {
  const Reader r(origin);
  if (!j.is_object()) throw r.bad("not a JSON object");
  Manifest m;
  m.tool = r.get<std::string>(j, "tool", "", std::string("triplet-build"));
  m.emtriplet_version = r.get<std::string>(j, "emtriplet_version", "", std::string());
  m.spec = r.get<std::string>(j, "spec", "", std::string());
  m.spec_sha256 = r.get<std::string>(j, "spec_sha256", "", std::string());
  if (j.contains("provenance")) {
    if (!j["provenance"].is_object()) throw r.bad("'provenance' is not an object");
    m.command = r.get<std::string>(j["provenance"], "command", "provenance.", std::string());
  }
  // The one tile size of the directory: required (no silent 512).
  if (!j.contains("tile_size")) throw r.bad("'tile_size' is missing");
  m.tile_size = static_cast<int>(get_int(r, j, "tile_size", "", 0, 1, 1 << 20));
  m.stride = static_cast<int>(get_int(r, j, "stride", "", 0, 0, 1 << 30));

  if (!j.contains("shards") || !j["shards"].is_array()) throw r.bad("'shards' is not a list");
  for (const json& s : j["shards"]) {
    if (!s.is_object() || !s.contains("file") || !s["file"].is_string() || !s.contains("count") || !s["count"].is_number_integer() ||
        (!s["count"].is_number_unsigned() && s["count"].get<std::int64_t>() < 0) || !s.contains("sha256") || !s["sha256"].is_string()) {
      throw r.bad("a 'shards' entry lacks a string 'file', a count >= 0 or a string 'sha256'");
    }
    ShardEntry e{s["file"].get<std::string>(), s["count"].get<std::int64_t>(), s["sha256"].get<std::string>()};
    if (e.file.empty() || e.file.find('/') != std::string::npos || e.file == "." || e.file == "..") {
      throw r.bad("shard name '" + e.file + "' is not a file name");
    }
    m.shards.push_back(std::move(e));
  }

  if (j.contains("sources")) {
    if (!j["sources"].is_array()) throw r.bad("'sources' is not a list");
    for (const json& s : j["sources"]) {
      if (!s.is_object() || !s.contains("id") || !s["id"].is_string()) throw r.bad("a 'sources' entry lacks a string 'id'");
      ManifestSource src;
      src.id = s["id"].get<std::string>();
      const std::string where = "sources." + src.id + ".";
      src.path = r.get<std::string>(s, "path", where, std::string());
      src.kind = r.get<std::string>(s, "kind", where, std::string());
      if (s.contains("dataset")) src.dataset = r.get<std::string>(s, "dataset", where);
      src.scale = static_cast<int>(get_int(r, s, "scale", where, 0, 0, 64));
      src.shape = r.get<std::vector<std::int64_t>>(s, "shape", where, std::vector<std::int64_t>{});
      src.bits = static_cast<int>(get_int(r, s, "bits", where, 8, 1, 64));
      src.step = static_cast<int>(get_int(r, s, "step", where, 1, 1, 1'000'000));
      src.triplet_middles = get_int(r, s, "triplet_middles", where, 0, 0, INT64_MAX);
      src.bad_slices = r.get<std::vector<std::int64_t>>(s, "bad_slices", where, std::vector<std::int64_t>{});
      if (s.contains("resolution_nm")) src.resolution_nm = r.get<std::array<double, 3>>(s, "resolution_nm", where);
      src.histogram_reference_slices = r.get<std::vector<std::int64_t>>(s, "histogram_reference_slices", where, std::vector<std::int64_t>{});
      m.sources.push_back(std::move(src));
    }
  }

  if (!j.contains("totals") || !j["totals"].is_object()) throw r.bad("'totals' is missing");
  for (const auto& [key, value] : j["totals"].items()) {
    if (!value.is_number_integer()) throw r.bad("totals." + key + " is not an integer");
  }
  if (j["totals"].contains("candidates")) m.candidates = get_int(r, j["totals"], "candidates", "totals.", 0, 0, INT64_MAX);
  m.accepted = get_int(r, j["totals"], "accepted", "totals.", 0, 0, INT64_MAX);
  if (j.contains("rejected")) {
    if (!j["rejected"].is_object()) throw r.bad("'rejected' is not an object");
    std::map<std::string, std::int64_t> by_reason;
    for (const auto& [key, value] : j["rejected"].items()) {
      if (!value.is_number_integer()) throw r.bad("rejected." + key + " is not an integer");
      by_reason[key] = value.get<std::int64_t>();
    }
    m.rejected = std::move(by_reason);
  }
  if (j.contains("preprocessing")) {
    if (!j["preprocessing"].is_array()) throw r.bad("'preprocessing' is not a list");
    m.preprocessing.emplace();
    for (const json& p : j["preprocessing"]) m.preprocessing->push_back(preprocessing_from_json(p, origin));
  }
  if (j.contains("partition")) m.partition = r.get<std::string>(j, "partition", "");
  return m;
}

Manifest read_manifest(const std::string& dir) {
  const fs::path path = fs::path(dir) / kManifestFile;
  if (!fs::exists(path)) throw Error(ErrorKind::kNotFound, "no manifest.json: not a finished triplet-build output", dir);
  json j;
  try {
    j = json::parse(read_file(path));
  } catch (const json::exception& e) {
    throw Error(ErrorKind::kDataLoss, std::string("manifest is not valid JSON: ") + e.what(), path.string());
  }
  return manifest_from_json(j, path.string());
}

void write_manifest(const fs::path& dir, const Manifest& manifest) { write_file_atomic(dir / kManifestFile, to_json(manifest).dump(2) + "\n"); }

// ---- rejected.csv ----

std::string format_rejected_row(const RejectedTile& t) {
  return fmt::format("{},{},{},{},{},{:.6g},{:.6g}\n", t.source, t.z, t.y, t.x, t.reason, t.value, t.threshold);
}

namespace {

bool parse_int64(const std::string& s, std::int64_t& out) {
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return !s.empty() && ec == std::errc() && end == s.data() + s.size();
}

bool parse_number(const std::string& s, double& out) {
  // Written by fmt's {:.6g}: digits, sign, exponent, or inf / nan.
  try {
    std::size_t used = 0;
    out = std::stod(s, &used);
    return !s.empty() && used == s.size();
  } catch (const std::exception&) {
    return false;
  }
}

}  // namespace

std::vector<RejectedTile> read_rejected_file(const fs::path& path) {
  if (!fs::exists(path)) throw Error(ErrorKind::kNotFound, "no rejected.csv", path.string());
  std::istringstream in(read_file(path));
  std::string line;
  if (!std::getline(in, line) || line + "\n" != kRejectedHeader) {
    throw Error(ErrorKind::kDataLoss, "rejected.csv does not start with its header line", path.string());
  }
  std::vector<RejectedTile> rows;
  for (int number = 2; std::getline(in, line); ++number) {
    std::vector<std::string> f;
    std::istringstream fields(line);
    for (std::string item; std::getline(fields, item, ',');) f.push_back(item);
    RejectedTile t;
    if (f.size() != 7 || f[0].empty() || f[4].empty() || !parse_int64(f[1], t.z) || !parse_int64(f[2], t.y) || !parse_int64(f[3], t.x) ||
        !parse_number(f[5], t.value) || !parse_number(f[6], t.threshold)) {
      throw Error(ErrorKind::kDataLoss, fmt::format("line {} is not 'source,z,y,x,reason,value,threshold'", number), path.string());
    }
    t.source = f[0];
    t.reason = f[4];
    rows.push_back(std::move(t));
  }
  return rows;
}

void write_rejected_file(const fs::path& path, const std::vector<RejectedTile>& rows) {
  std::string text = kRejectedHeader;
  for (const RejectedTile& t : rows) text += format_rejected_row(t);
  write_file_atomic(path, text);
}

// ---- split files ----

std::string split_file_path(const std::string& dir, const std::string& name) { return (fs::path(dir) / kSplitsDir / (name + ".txt")).string(); }

std::vector<std::pair<std::string, std::int64_t>> read_split_file(const std::string& dir, const std::string& name) {
  const std::string path = split_file_path(dir, name);
  if (!fs::exists(path)) throw Error(ErrorKind::kNotFound, "no such split (run triplet-split first)", path);
  std::vector<std::pair<std::string, std::int64_t>> out;
  std::istringstream in(read_file(path));
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    if (trim(line).empty()) continue;
    // "FILE INDEX" and nothing else: a damaged list must not silently shrink a split.
    std::istringstream fields(line);
    std::string file, index, extra;
    fields >> file >> index >> extra;
    std::int64_t value = -1;
    if (!extra.empty() || !parse_int64(index, value) || value < 0) {
      throw Error(ErrorKind::kInvalidData, fmt::format("line {} is not 'SHARD INDEX': '{}'", number, trim(line)), path);
    }
    out.emplace_back(file, value);
  }
  return out;
}

void write_split_file(const std::string& dir, const std::string& name, const std::vector<std::pair<std::string, std::int64_t>>& entries) {
  std::string text;
  for (const auto& [file, index] : entries) text += file + " " + std::to_string(index) + "\n";
  ensure_writable_directory(fs::path(dir) / kSplitsDir);
  write_file_atomic(split_file_path(dir, name), text);
}

std::map<std::pair<std::string, std::int64_t>, std::string> read_partitions(const std::string& dir) {
  std::map<std::pair<std::string, std::int64_t>, std::string> out;
  for (const char* name : kPartitionNames) {
    if (!fs::exists(split_file_path(dir, name))) continue;
    for (const auto& entry : read_split_file(dir, name)) out[entry] = name;
  }
  return out;
}

std::vector<fs::path> shard_directory_inputs(const std::string& dir) {
  std::vector<fs::path> out;
  const fs::path d(dir);
  for (const char* name : {kManifestFile, kRejectedFile, kStateFile, kSplitsDir}) out.push_back(d / name);
  for (const char* name : kPartitionNames) out.push_back(d / name);
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(d, ec)) {
    if (is_shard_file_name(e.path().filename().string())) out.push_back(e.path());
  }
  return out;
}

// ---- the directory, opened ----

ShardDirectory::ShardDirectory(std::string dir) : dir_(std::move(dir)) {
  if (!fs::is_directory(dir_)) throw Error(ErrorKind::kNotFound, "no such directory", dir_);
  manifest_ = read_manifest(dir_);
}

const ShardReader& ShardDirectory::reader(const std::string& file) const {
  std::lock_guard lock(mutex_);
  auto& r = readers_[file];
  if (!r) {
    const fs::path path = fs::path(dir_) / file;
    if (!fs::exists(path)) throw Error(ErrorKind::kNotFound, "shard listed in the manifest is missing", path.string());
    auto opened = std::make_unique<ShardReader>(path.string());
    if (opened->tile_size() != manifest_.tile_size) {
      throw Error(ErrorKind::kInvalidData,
                  fmt::format("shard holds {0}x{0} tiles but manifest.json says tile_size {1}", opened->tile_size(), manifest_.tile_size),
                  path.string());
    }
    r = std::move(opened);
  }
  return *r;
}

std::vector<SampleRef> ShardDirectory::samples(bool verify) const {
  std::vector<SampleRef> out;
  for (const ShardEntry& s : manifest_.shards) {
    const fs::path path = fs::path(dir_) / s.file;
    if (!fs::exists(path)) throw Error(ErrorKind::kNotFound, "shard listed in the manifest is missing", path.string());
    if (verify && sha256_file(path) != s.sha256) {
      throw Error(ErrorKind::kDataLoss, "shard SHA-256 does not match the manifest (corrupt or modified)", path.string());
    }
    const ShardReader& r = reader(s.file);
    if (r.size() != s.count) throw Error(ErrorKind::kDataLoss, "shard holds a different number of triplets than the manifest says", path.string());
    const auto meta = r.read_meta();
    for (std::size_t i = 0; i < meta.size(); ++i) {
      const ManifestSource* src = manifest_.source(meta[i].source);
      out.push_back({s.file, static_cast<std::int64_t>(i), meta[i].source, meta[i].z, meta[i].y, meta[i].x, src ? src->step : 1});
    }
  }
  return out;
}

std::vector<RejectedTile> ShardDirectory::rejected() const { return read_rejected_file(fs::path(dir_) / kRejectedFile); }

std::vector<SampleRef> read_shard_directory(const std::string& dir, bool verify_checksums) { return ShardDirectory(dir).samples(verify_checksums); }

}  // namespace emt::triplets
