#include "emt/triplets/build.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <exception>
#include <thread>
#include <filesystem>
#include <fstream>
#include <list>
#include <mutex>
#include <optional>
#include <set>
#include <unordered_map>

#include <fmt/format.h>
#include <tbb/parallel_for.h>
#include <tbb/parallel_pipeline.h>
#include <tbb/info.h>

#include "emt/common/atomic_file.hpp"
#include "emt/common/cli.hpp"
#include "emt/common/error.hpp"
#include "emt/common/output_guard.hpp"
#include "emt/common/progress.hpp"
#include "emt/common/sampling.hpp"
#include "emt/common/sha256.hpp"
#include "emt/triplets/histogram.hpp"
#include "emt/triplets/preprocessing.hpp"
#include "emt/triplets/shard.hpp"

namespace emt::triplets {
namespace fs = std::filesystem;
using nlohmann::json;

std::string shard_file_name(std::int64_t index) { return fmt::format("shard-{:05d}.h5", index); }
std::string part_dir_name(int part, int parts) { return fmt::format("parts/part-{:04d}-of-{:04d}", part, parts); }

json BuildSummary::to_json() const {
  return json{{"candidates", candidates}, {"triplets", triplets}, {"shards", shards}, {"rejected", rejected},
              {"seconds", seconds}, {"megabytes_read", megabytes_read},
              {"mb_per_s", seconds > 0 ? megabytes_read / seconds : 0.0}};
}

namespace {

constexpr const char* kRejectedPartial = "rejected.csv.partial";
constexpr const char* kRejectedHeader = "source,z,y,x,reason,value,threshold\n";

/// One opened source with everything phase 1 learns about it.
struct Source {
  SourceSpec spec;
  std::unique_ptr<emio::SliceSource> volume;
  std::vector<std::int64_t> middles;            ///< middle slices of its triplets, ascending
  std::set<std::int64_t> used;                  ///< every slice some triplet (of this part) uses
  std::set<std::int64_t> all_used;              ///< every slice some triplet of the whole build uses
  std::map<std::int64_t, Shift> forward;        ///< shift aligning z + step onto z
  std::map<std::int64_t, Histogram> histograms; ///< per used slice (zero ignored)
  std::set<std::int64_t> bad;                   ///< unreadable slices (--skip-bad-slices)
  ReferenceHistogram reference;
  std::map<std::int64_t, std::array<std::uint8_t, 256>> luts;
  std::map<std::int64_t, double> repeated;      ///< pairs (z, z + step) the repeated-section filter fires on: robust z
};

struct TripletRef {
  std::size_t source;
  std::int64_t z;
};

/// A rejected or accepted tile, in the order the serial stage consumes them.
struct TileOutcome {
  std::int64_t y = 0, x = 0;
  TileDecision decision;
  TripletSample sample;  // filled when accepted
};

struct TripletResult {
  std::size_t index = 0;
  std::vector<TileOutcome> tiles;
  bool interrupted = false;  ///< a signal arrived mid-triplet: tiles incomplete, not to be used
};

/// Bounded cache of decoded slices shared by pipeline workers.
class SliceCache {
 public:
  SliceCache(const std::vector<Source>& sources, std::size_t capacity) : sources_(sources), capacity_(capacity) {}
  cv::Mat get(std::size_t source, std::int64_t z) {
    const auto key = std::make_pair(source, z);
    {
      std::lock_guard lock(mutex_);
      for (auto it = entries_.begin(); it != entries_.end(); ++it) {
        if (it->first == key) {
          entries_.splice(entries_.begin(), entries_, it);
          return it->second;
        }
      }
    }
    cv::Mat slice = sources_[source].volume->read_slice(z);  // outside the lock: reads run in parallel
    std::lock_guard lock(mutex_);
    entries_.emplace_front(key, slice);
    while (entries_.size() > capacity_) entries_.pop_back();
    return slice;
  }

 private:
  const std::vector<Source>& sources_;
  std::size_t capacity_;
  std::mutex mutex_;
  std::list<std::pair<std::pair<std::size_t, std::int64_t>, cv::Mat>> entries_;
};

/// Writes finished shards on a background thread, in submission order, so the
/// pipeline's serial stage does not wait on HDF5, fsync and hashing. At most
/// `max_pending` shards wait in memory.
class AsyncShardWriter {
 public:
  using Job = std::function<void()>;
  explicit AsyncShardWriter(std::size_t max_pending) : max_pending_(max_pending), worker_([this] { loop(); }) {}
  ~AsyncShardWriter() {
    try {
      drain();
    } catch (...) {
    }
    {
      std::lock_guard lock(mutex_);
      done_ = true;
    }
    wake_.notify_all();
    worker_.join();
  }
  void submit(Job job) {
    std::unique_lock lock(mutex_);
    space_.wait(lock, [&] { return queue_.size() < max_pending_ || error_; });
    rethrow_locked();
    queue_.push_back(std::move(job));
    wake_.notify_all();
  }
  /// Waits until every submitted job ran; rethrows the first failure.
  void drain() {
    std::unique_lock lock(mutex_);
    space_.wait(lock, [&] { return (queue_.empty() && !busy_) || error_; });
    rethrow_locked();
  }

 private:
  void rethrow_locked() {
    if (error_) {
      auto e = error_;
      error_ = nullptr;
      std::rethrow_exception(e);
    }
  }
  void loop() {
    while (true) {
      Job job;
      {
        std::unique_lock lock(mutex_);
        wake_.wait(lock, [&] { return !queue_.empty() || done_; });
        if (queue_.empty()) return;
        job = std::move(queue_.front());
        queue_.pop_front();
        busy_ = true;
      }
      try {
        if (!error_) job();
      } catch (...) {
        std::lock_guard lock(mutex_);
        error_ = std::current_exception();
      }
      {
        std::lock_guard lock(mutex_);
        busy_ = false;
      }
      space_.notify_all();
    }
  }
  std::size_t max_pending_;
  std::mutex mutex_;
  std::condition_variable wake_, space_;
  std::deque<Job> queue_;
  bool busy_ = false, done_ = false;
  std::exception_ptr error_;
  std::thread worker_;
};

/// Tile origins along one axis inside [lo, hi), centred in the valid range.
std::vector<std::int64_t> tile_origins(std::int64_t lo, std::int64_t hi, int tile, int stride) {
  std::vector<std::int64_t> out;
  const std::int64_t span = hi - lo;
  if (span < tile) return out;
  const std::int64_t n = (span - tile) / stride + 1;
  const std::int64_t offset = lo + (span - tile - (n - 1) * stride) / 2;
  for (std::int64_t i = 0; i < n; ++i) out.push_back(offset + i * stride);
  return out;
}

bool is_data_error(const Error& e) {
  return e.kind() == ErrorKind::kDataLoss || e.kind() == ErrorKind::kInvalidData || e.kind() == ErrorKind::kNotFound;
}

/// Canonical description of what determines the output; its hash guards --resume.
std::string canonical_spec(const BuildSpec& spec) {
  std::string s = spec.text + "\n#--- sources as run ---\n";
  for (const SourceSpec& src : spec.sources) {
    s += fmt::format("{}|{}|{}|{}:{}|", src.id, src.path, src.dataset, src.z.start ? std::to_string(*src.z.start) : "",
                     src.z.stop ? std::to_string(*src.z.stop) : "");
    for (auto k : src.skip) s += std::to_string(k) + ",";
    s += fmt::format("|{}\n", src.step);
    if (src.scale != 0) s += fmt::format("scale {}\n", src.scale);  // absent for 0: older hashes stay valid
  }
  return s;
}

class Builder {
 public:
  Builder(const BuildSpec& spec, const BuildOptions& options)
      : spec_(spec), opt_(options),
        dir_(options.parts > 1 ? fs::path(options.out_dir) / part_dir_name(options.part, options.parts) : fs::path(options.out_dir)) {
    if (options.parts < 1 || options.part < 0 || options.part >= options.parts) {
      throw Error(ErrorKind::kInvalidArgument, fmt::format("--part {}/{}: need 0 <= I < N", options.part, options.parts));
    }
  }

  BuildSummary run() {
    const auto start = std::chrono::steady_clock::now();
    open_sources();
    restrict_to_part();
    std::vector<fs::path> inputs;
    for (const Source& s : sources_) inputs.emplace_back(s.volume->path());
    refuse_output_overlapping_inputs(dir_, inputs, "--out");
    try {
      prepare_output_dir();
      analyse_slices();
      build_triplets();
    } catch (const Error& e) {
      // An interruption keeps finished shards for --resume; before the first
      // one there is nothing to resume, so it cleans up like a failure.
      if (e.kind() != ErrorKind::kAborted || shards_.empty()) remove_outputs_of_this_run();
      throw;
    } catch (...) {
      remove_outputs_of_this_run();
      throw;
    }
    summary_.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return summary_;
  }

 private:
  void warn(const std::string& s) const {
    if (opt_.warn) opt_.warn(s);
  }

  // ---- sources ----
  void open_sources() {
    if (spec_.sources.empty()) throw Error(ErrorKind::kInvalidArgument, "no sources: give [source.ID] sections in the spec or --source PATH");
    std::set<std::string> ids;
    for (const SourceSpec& ss : spec_.sources) {
      if (!ids.insert(ss.id).second) throw Error(ErrorKind::kInvalidArgument, "duplicate source id '" + ss.id + "'");
      Source s;
      s.spec = ss;
      emio::SourceOptions so;
      so.uint16 = spec_.uint16;
      so.chunk_cache_bytes = static_cast<std::size_t>(spec_.cache_mb) << 20;
      so.scale = ss.scale;
      s.volume = emio::open_source(ss.path, so, ss.dataset);
      const auto shape = s.volume->shape();
      if (shape.height < spec_.tile_size || shape.width < spec_.tile_size) {
        throw Error(ErrorKind::kInvalidData,
                    fmt::format("volume is {}x{}, smaller than one {}x{} tile", shape.width, shape.height, spec_.tile_size, spec_.tile_size),
                    ss.path);
      }
      // Not a structured binding: C++17 lambdas cannot capture those (clang refuses; the fuzz build uses it).
      const auto range = ss.z.resolve(shape.depth);
      const std::int64_t first = range.first, last = range.second;
      for (std::int64_t z : ss.skip) {
        if (z < 0 || z >= shape.depth) {
          throw Error(ErrorKind::kInvalidArgument, fmt::format("[source.{}] skip entry {} is outside the volume (depth {})", ss.id, z, shape.depth),
                      ss.path);
        }
      }
      const std::set<std::int64_t> skip(ss.skip.begin(), ss.skip.end());
      auto usable = [&](std::int64_t z) { return z >= first && z < last && !skip.count(z); };
      for (std::int64_t z = first; z < last; ++z) {
        if (usable(z - ss.step) && usable(z) && usable(z + ss.step)) {
          s.middles.push_back(z);
          s.used.insert({z - ss.step, z, z + ss.step});
        }
      }
      if (s.middles.empty()) {
        throw Error(ErrorKind::kInvalidData,
                    fmt::format("no triplet possible: {} usable slice(s) in z range [{}, {}) with step {} (need at least 3 spaced by the step)",
                                last - first - static_cast<std::int64_t>(skip.size()), first, last, ss.step),
                    ss.path);
      }
      sources_.push_back(std::move(s));
    }
    for (std::size_t i = 0; i < sources_.size(); ++i) {
      for (std::int64_t z : sources_[i].middles) triplets_.push_back({i, z});
    }
  }

  // ---- job-array parts (--part I/N) ----
  /// Keeps the triplets of part I of N (contiguous in (source, z) order) and
  /// the slices they and the reference histograms need. Everything a part
  /// computes is what the whole build computes for those triplets, so the
  /// parts merged (merge_parts) equal the single-process output byte for byte.
  void restrict_to_part() {
    for (Source& s : sources_) s.all_used = s.used;
    if (opt_.parts <= 1) return;
    if (opt_.skip_bad_slices) {
      // Which slices are bad is known only after reading them all, and it
      // moves the reference histogram's slices: a part cannot know it alone.
      throw Error(ErrorKind::kInvalidArgument, "--skip-bad-slices cannot be combined with --part");
    }
    const std::size_t n = triplets_.size(), parts = static_cast<std::size_t>(opt_.parts), i = static_cast<std::size_t>(opt_.part);
    const std::size_t begin = n * i / parts, end = n * (i + 1) / parts;
    triplets_ = std::vector<TripletRef>(triplets_.begin() + static_cast<std::ptrdiff_t>(begin), triplets_.begin() + static_cast<std::ptrdiff_t>(end));
    for (std::size_t si = 0; si < sources_.size(); ++si) {
      Source& s = sources_[si];
      std::set<std::int64_t> needed;
      for (const TripletRef& t : triplets_) {
        if (t.source == si) needed.insert({t.z - s.spec.step, t.z, t.z + s.spec.step});
      }
      if (spec_.histogram_matching) {
        const auto ref = reference_candidates(s);
        needed.insert(ref.begin(), ref.end());
      }
      for (std::int64_t z : repeat_sample_pairs(s)) needed.insert({z, z + s.spec.step});
      s.used = std::move(needed);
    }
  }

  /// The slices sampled for a source's reference histogram: evenly spaced
  /// over its readable slices.
  std::vector<std::int64_t> reference_candidates(const Source& s) const {
    std::vector<std::int64_t> readable;
    for (std::int64_t z : s.all_used) {
      if (!s.bad.count(z)) readable.push_back(z);
    }
    const std::size_t n = std::min<std::size_t>(readable.size(), static_cast<std::size_t>(spec_.reference_slices));
    std::vector<std::int64_t> picks;
    for (std::size_t i = 0; i < n; ++i) {
      picks.push_back(readable[n == 1 ? readable.size() / 2 : i * (readable.size() - 1) / (n - 1)]);
    }
    return picks;
  }

  /// First slices of the pairs (z, z + step) the repeated-section statistic is
  /// taken from: evenly spaced over every pair of the whole build, so each
  /// --part judges its pairs against the same sample.
  std::vector<std::int64_t> repeat_sample_pairs(const Source& s) const {
    std::vector<std::int64_t> pairs;
    for (std::int64_t z : s.all_used) {
      if (s.all_used.count(z + s.spec.step)) pairs.push_back(z);
    }
    const auto n = std::min<std::int64_t>(static_cast<std::int64_t>(pairs.size()), spec_.filters.repeat_sample_pairs);
    std::vector<std::int64_t> picks;
    for (std::int64_t i = 0; i < n; ++i) picks.push_back(pairs[static_cast<std::size_t>(evenly_spaced(i, n, static_cast<std::int64_t>(pairs.size())))]);
    return picks;
  }

  /// Marks the pairs whose NCC is an outlier towards 1 against the stack's
  /// sample (repeated_sections): a section imaged twice or copied.
  void find_repeated_sections(Source& s) const {
    std::vector<double> sample, series;
    std::vector<std::int64_t> pair_z;
    for (std::int64_t z : repeat_sample_pairs(s)) {
      if (const auto it = s.forward.find(z); it != s.forward.end()) sample.push_back(it->second.ncc);  // bad slices have no pair
    }
    for (const auto& [z, shift] : s.forward) {
      pair_z.push_back(z);
      series.push_back(shift.ncc);
    }
    const RepeatedSections r = repeated_sections(series, sample, spec_.filters);
    for (std::size_t i = 0; i < series.size(); ++i) {
      if (!r.repeated[i]) continue;
      s.repeated[pair_z[i]] = r.z[i];
      warn(fmt::format("source {}: sections {} and {} are far more alike than the stack's neighbours (NCC {:.4f}, median {:.4f}; "
                       "robust z {:.1f} > {}): their triplets are rejected as repeated_section",
                       s.spec.id, pair_z[i], pair_z[i] + s.spec.step, series[i], r.median_ncc, r.z[i], spec_.filters.repeat_max_z));
    }
  }

  // ---- output directory, resume state ----
  /// triplet-build's own names in its output directory.
  static bool is_own_entry(const std::string& name) {
    return name.rfind("shard-", 0) == 0 || name == kManifestFile || name == kRejectedFile || name == kStateFile || name == kRejectedPartial ||
           name == "splits" || name == "train" || name == "val" || name == "test" || name == "parts" ||
           (name.size() > 4 && name.compare(name.size() - 4, 4, ".tmp") == 0);
  }

  void prepare_output_dir() {
    if (!opt_.force) {
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
    spec_hash_ = sha256_hex(canonical_spec(spec_));
    const bool has_manifest = fs::exists(dir_ / kManifestFile), has_state = fs::exists(dir_ / kStateFile);
    auto other_hash = [&](const fs::path& p) {
      try {
        return json::parse(read_file(p)).value("spec_sha256", std::string());
      } catch (const json::exception&) {
        return std::string("unreadable");
      }
    };
    bool has_shards = false;
    for (const auto& e : fs::directory_iterator(dir_)) {
      has_shards |= e.path().filename().string().rfind("shard-", 0) == 0;
    }
    if (!opt_.force) {
      if (has_state && other_hash(dir_ / kStateFile) != spec_hash_) {
        throw Error(ErrorKind::kInvalidArgument, "directory holds an unfinished build of a different spec; use --force to replace it", dir_.string());
      }
      if (has_state && !opt_.resume) {
        throw Error(ErrorKind::kInvalidArgument, "directory holds an unfinished build; rerun with --resume to finish it (or --force to start over)", dir_.string());
      }
      if (has_manifest && other_hash(dir_ / kManifestFile) != spec_hash_) {
        throw Error(ErrorKind::kInvalidArgument, "directory holds shards from a different spec; use --force to replace them", dir_.string());
      }
      if (has_shards && !has_manifest && !has_state) {
        throw Error(ErrorKind::kInvalidArgument, "directory holds shard files of unknown origin; use --force to replace them", dir_.string());
      }
    }
    if (opt_.resume && has_state && !opt_.force) {
      try {
        const json state = json::parse(read_file(dir_ / kStateFile));
        next_triplet_ = state.at("next_triplet").get<std::size_t>();
        next_tile_ = state.at("next_tile").get<std::size_t>();
        shards_ = state.at("shards");
        summary_.candidates = state.at("candidates").get<std::int64_t>();
        summary_.rejected = state.at("rejected").get<std::map<std::string, std::int64_t>>();
        rejected_bytes_ = state.at("rejected_bytes").get<std::uintmax_t>();
        for (const auto& sh : shards_) {
          (void)sh.at("file").get<std::string>();
          (void)sh.at("sha256").get<std::string>();
        }
      } catch (const json::exception& e) {
        throw Error(ErrorKind::kDataLoss, std::string("resume state is damaged (use --force to start over): ") + e.what(),
                    (dir_ / kStateFile).string());
      }
      // Anything past the last recorded shard is from the interrupted run.
      for (const auto& e : fs::directory_iterator(dir_)) {
        const std::string name = e.path().filename().string();
        const bool ours = name.rfind("shard-", 0) == 0;
        bool recorded = false;
        for (const auto& s : shards_) recorded |= s.at("file").get<std::string>() == name;
        if ((ours && !recorded) || (e.path().extension() == ".tmp")) fs::remove(e.path());
      }
      for (const auto& s : shards_) {
        const fs::path p = dir_ / s.at("file").get<std::string>();
        if (!fs::exists(p) || sha256_file(p) != s.at("sha256").get<std::string>()) {
          throw Error(ErrorKind::kDataLoss, "finished shard is missing or changed since the interruption; use --force to start over", p.string());
        }
      }
      fs::resize_file(dir_ / kRejectedPartial, rejected_bytes_);
      resumed_ = true;
      return;
    }
    // Fresh build: clear our previous outputs.
    for (const auto& e : fs::directory_iterator(dir_)) {
      const std::string name = e.path().filename().string();
      if (name.rfind("shard-", 0) == 0 || name == kManifestFile || name == kRejectedFile || name == kStateFile ||
          name == kRejectedPartial || e.path().extension() == ".tmp") {
        fs::remove(e.path());
      }
    }
    // Splits and materialized partitions describe the old shards: drop them.
    for (const char* derived : {"splits", "train", "val", "test"}) {
      const fs::path p = dir_ / derived;
      if (fs::is_directory(p) && (std::string(derived) == "splits" || fs::exists(p / kManifestFile))) fs::remove_all(p);
    }
    write_file_atomic(dir_ / kRejectedPartial, kRejectedHeader);
    rejected_bytes_ = std::string(kRejectedHeader).size();
    created_partial_ = true;
  }

  void remove_outputs_of_this_run() {
    if (!lock_) return;  // failed before the directory was ours: nothing of this run is in it
    std::error_code ec;
    for (const auto& f : written_this_run_) fs::remove(f, ec);
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

  // ---- phase 1: histograms, shifts, references ----
  // Slices are processed in z-order chunks: each slice is read and prepared
  // once (histogram, alignment features), pairs (z, z + step) are matched
  // from the prepared features, and only the last `step` slices' features
  // are carried to the next chunk, so memory does not grow with depth.
  void analyse_slices() {
    std::int64_t total = 0;
    for (const Source& s : sources_) total += static_cast<std::int64_t>(s.used.size());
    Progress progress("triplet-build: aligning", total, "slices", opt_.quiet);
    const std::size_t chunk = 4 * static_cast<std::size_t>(std::max(1, tbb::this_task_arena::max_concurrency()));
    std::mutex error_mutex;
    std::optional<Error> first_error;
    auto guarded = [&](auto&& f) {
      try {
        if (!interrupt_requested()) f();
      } catch (const Error& e) {
        std::lock_guard lock(error_mutex);
        if (!first_error) first_error = e;
      }
    };
    for (Source& s : sources_) {
      const std::vector<std::int64_t> used(s.used.begin(), s.used.end());
      const int k = s.spec.step;
      std::map<std::int64_t, AlignmentFeatures> available;
      for (std::size_t c0 = 0; c0 < used.size(); c0 += chunk) {
        const std::size_t n = std::min(chunk, used.size() - c0);
        std::vector<std::optional<AlignmentFeatures>> features(n);
        std::vector<std::optional<Histogram>> hist(n);
        tbb::parallel_for(std::size_t{0}, n, [&](std::size_t i) {
          guarded([&] {
            const std::int64_t z = used[c0 + i];
            try {
              const cv::Mat slice = s.volume->read_slice(z);
              hist[i] = histogram_of(slice, /*ignore_zero=*/true);
              features[i] = prepare_alignment(slice, spec_.align);
            } catch (const Error& e) {
              if (!opt_.skip_bad_slices || !is_data_error(e)) throw;
            }
            progress.tick();
          });
        });
        if (first_error) throw *first_error;
        for (std::size_t i = 0; i < n; ++i) {
          const std::int64_t z = used[c0 + i];
          if (!hist[i]) {
            s.bad.insert(z);
            warn(fmt::format("unreadable slice skipped: {}", s.volume->location(z)));
            continue;
          }
          s.histograms[z] = *hist[i];
          available[z] = std::move(*features[i]);
        }
        std::vector<std::int64_t> pairs;
        for (const auto& [z, f] : available) {
          if (available.count(z + k) && !s.forward.count(z)) pairs.push_back(z);
        }
        std::vector<Shift> shifts(pairs.size());
        tbb::parallel_for(std::size_t{0}, pairs.size(), [&](std::size_t i) {
          guarded([&] { shifts[i] = estimate_shift(available.at(pairs[i]), available.at(pairs[i] + k), spec_.align); });
        });
        if (first_error) throw *first_error;
        for (std::size_t i = 0; i < pairs.size(); ++i) s.forward[pairs[i]] = shifts[i];
        const std::int64_t last = used[c0 + n - 1];
        for (auto it = available.begin(); it != available.end();) it = it->first + k <= last ? available.erase(it) : std::next(it);
        if (interrupt_requested()) throw Error(ErrorKind::kAborted, "interrupted before any shard was written", dir_.string());
      }
    }
    progress.finish();
    for (Source& s : sources_) find_repeated_sections(s);
    for (Source& s : sources_) {
      if (!spec_.histogram_matching) continue;
      // Reference: evenly spaced readable slices, outliers (defective slices) dropped.
      const std::vector<std::int64_t> sample_z = reference_candidates(s);
      std::vector<Histogram> sample;
      for (std::int64_t z : sample_z) sample.push_back(s.histograms.at(z));
      s.reference = reference_histogram(sample);
      if (s.reference.used.empty()) {
        warn("source " + s.spec.id + ": no clean slice for a reference histogram; histogram matching disabled for it");
        continue;
      }
      for (auto& idx : s.reference.used) idx = static_cast<std::size_t>(sample_z[idx]);
      for (const auto& [z, h] : s.histograms) s.luts[z] = matching_lut(h, s.reference.counts, /*keep_zero=*/true);
    }
    resolved_spec_ = resolved_spec_text();
  }

  std::string resolved_spec_text() const {
    std::string t = spec_.text;
    if (!t.empty() && t.back() != '\n') t += '\n';
    t += "\n# --- resolved by triplet-build ---\n";
    for (const Source& s : sources_) {
      const auto shape = s.volume->shape();
      t += fmt::format("[resolved.source.{}]\npath = {}\nkind = {}\nshape = {}x{}x{}\nstep = {}\n", s.spec.id, s.spec.path,
                       emio::to_string(s.volume->kind()), shape.depth, shape.height, shape.width, s.spec.step);
      if (!s.reference.used.empty()) {
        // Reference histogram as parts per million, so inference can match to it.
        double total = 0;
        for (double c : s.reference.counts) total += c;
        t += "histogram_reference_slices = ";
        for (std::size_t i = 0; i < s.reference.used.size(); ++i) t += (i ? "," : "") + std::to_string(s.reference.used[i]);
        t += "\nhistogram_reference_ppm = ";
        for (std::size_t v = 0; v < 256; ++v) t += (v ? "," : "") + std::to_string(std::llround(1e6 * s.reference.counts[v] / total));
        t += "\n";
      }
    }
    return t;
  }

  // ---- phase 2: tiles and shards ----
  TripletResult process(std::size_t index, SliceCache& cache) {
    const TripletRef ref = triplets_[index];
    const Source& s = sources_[ref.source];
    const int k = s.spec.step, T = spec_.tile_size;
    const std::int64_t zs[3] = {ref.z - k, ref.z, ref.z + k};
    TripletResult result;
    result.index = index;
    const auto shape = s.volume->shape();

    bool bad_slice = false, misaligned = false;
    for (auto z : zs) bad_slice |= s.bad.count(z) > 0;
    // Integer shifts (no resampling: the outer slices keep their native sharpness).
    int dy[3] = {0, 0, 0}, dx[3] = {0, 0, 0};
    Shift back, fwd;
    std::optional<double> repeat_z;  // a pair of this triplet is a repeated section: its robust z
    if (!bad_slice) {
      // forward[z - k] aligns z onto z - k; invert it to align z - k onto z.
      back = s.forward.at(zs[0]);
      fwd = s.forward.at(zs[1]);
      dy[0] = static_cast<int>(-std::lround(back.dy));
      dx[0] = static_cast<int>(-std::lround(back.dx));
      dy[2] = static_cast<int>(std::lround(fwd.dy));
      dx[2] = static_cast<int>(std::lround(fwd.dx));
      misaligned = back.at_border || fwd.at_border;
      for (std::int64_t pair : {zs[0], zs[1]}) {
        if (const auto it = s.repeated.find(pair); it != s.repeated.end()) repeat_z = std::max(repeat_z.value_or(it->second), it->second);
      }
      const int r = spec_.align.search_radius;
      for (int* v : {&dy[0], &dx[0], &dy[2], &dx[2]}) *v = std::clamp(*v, -r, r);
    }
    const std::int64_t y_lo = std::max({0, dy[0], dy[2]}), y_hi = std::min<std::int64_t>({shape.height, shape.height + dy[0], shape.height + dy[2]});
    const std::int64_t x_lo = std::max({0, dx[0], dx[2]}), x_hi = std::min<std::int64_t>({shape.width, shape.width + dx[0], shape.width + dx[2]});
    const auto ys = tile_origins(y_lo, y_hi, T, spec_.stride), xs = tile_origins(x_lo, x_hi, T, spec_.stride);

    std::array<cv::Mat, 3> slices;
    if (!bad_slice) {
      for (int i = 0; i < 3; ++i) slices[static_cast<std::size_t>(i)] = cache.get(ref.source, zs[i]);
    }
    for (auto y : ys) {
      // A dense stride makes one triplet thousands of tiles: poll per row so
      // a signal stops the build within a second, not after the triplet.
      if (interrupt_requested()) {
        result.interrupted = true;
        result.tiles.clear();
        return result;
      }
      for (auto x : xs) {
        TileOutcome out;
        out.y = y;
        out.x = x;
        if (bad_slice) {
          out.decision.reason = RejectReason::kBadSlice;
        } else if (repeat_z) {
          out.decision.reason = RejectReason::kRepeatedSection;
          out.decision.value = *repeat_z;
          out.decision.threshold = spec_.filters.repeat_max_z;
        } else {
          std::array<cv::Mat, 3> tiles;
          for (int i = 0; i < 3; ++i) {
            tiles[static_cast<std::size_t>(i)] = slices[static_cast<std::size_t>(i)](cv::Rect(static_cast<int>(x - dx[i]), static_cast<int>(y - dy[i]), T, T));
          }
          out.decision = evaluate_tile(tiles, spec_.filters);
          // A failed alignment usually comes from a defective slice, which the
          // filters name better; it is the reason only when they see nothing.
          if (out.decision.accepted() && misaligned) {
            out.decision.reason = RejectReason::kAlignment;
            out.decision.value = std::max({std::abs(back.dy), std::abs(back.dx), std::abs(fwd.dy), std::abs(fwd.dx)});
            out.decision.threshold = spec_.align.search_radius;
          }
          if (out.decision.accepted()) {
            TripletSample& smp = out.sample;
            for (int i = 0; i < 3; ++i) {
              const auto lut = s.luts.find(zs[i]);
              smp.slices[static_cast<std::size_t>(i)] =
                  lut != s.luts.end() ? apply_lut(tiles[static_cast<std::size_t>(i)], lut->second) : tiles[static_cast<std::size_t>(i)].clone();
            }
            smp.source = s.spec.id;
            smp.z = ref.z;
            smp.y = y;
            smp.x = x;
            smp.shift = {static_cast<float>(dy[0]), static_cast<float>(dx[0]), static_cast<float>(dy[2]), static_cast<float>(dx[2])};
            smp.ncc = out.decision.measures.ncc;
            smp.sharpness = out.decision.measures.sharpness;
          }
        }
        result.tiles.push_back(std::move(out));
      }
    }
    return result;
  }

  /// Records the resume point; `shards`, `rejected` counts and byte length are
  /// those at the cut of the shard just written.
  void save_state(std::size_t next_triplet, std::size_t next_tile, const std::map<std::string, std::int64_t>& rejected,
                  std::int64_t candidates, std::uintmax_t rejected_bytes) {
    json state{{"spec_sha256", spec_hash_}, {"next_triplet", next_triplet}, {"next_tile", next_tile}, {"shards", shards_},
               {"candidates", candidates}, {"rejected", rejected}, {"rejected_bytes", rejected_bytes}};
    write_file_atomic(dir_ / kStateFile, state.dump(1) + "\n");
  }

  /// Hands the pending samples to the writer thread with the resume point
  /// that holds once they are on disk.
  void submit_shard(AsyncShardWriter& writer, std::vector<TripletSample>& pending, std::size_t next_triplet, std::size_t next_tile) {
    const std::string name = shard_file_name(submitted_shards_++);
    auto samples = std::make_shared<std::vector<TripletSample>>(std::move(pending));
    pending.clear();
    const auto rejected = summary_.rejected;
    const auto candidates = summary_.candidates;
    const auto rejected_bytes = rejected_bytes_;
    writer.submit([this, name, samples, rejected, candidates, rejected_bytes, next_triplet, next_tile] {
      const fs::path path = dir_ / name;
      ShardAttributes attr;
      attr.tile_size = spec_.tile_size;
      attr.spec = resolved_spec_;
      attr.version = opt_.version;
      // No command in shards: their bytes depend only on the data and the spec
      // (the command is the manifest's provenance).
      attr.compress = spec_.compress;
      write_shard(path.string(), *samples, attr);
      written_this_run_.push_back(path);
      shards_.push_back(json{{"file", name}, {"count", samples->size()}, {"sha256", sha256_file(path)}});
      if (next_triplet < triplets_.size() || next_tile > 0) save_state(next_triplet, next_tile, rejected, candidates, rejected_bytes);
    });
  }

  void build_triplets() {
    const std::size_t threads = static_cast<std::size_t>(std::max(1, tbb::this_task_arena::max_concurrency()));
    const std::size_t tokens = 3 * threads;
    SliceCache cache(sources_, 3 * tokens + 4);
    std::ofstream rejected(dir_ / kRejectedPartial, std::ios::binary | std::ios::app);
    if (!rejected) throw Error(ErrorKind::kIo, "cannot append to " + std::string(kRejectedPartial), dir_.string());
    std::vector<TripletSample> pending;
    std::size_t next = next_triplet_;
    bool stopped = false;
    Progress progress("triplet-build: tiling", static_cast<std::int64_t>(triplets_.size()), "triplets", opt_.quiet);
    progress.tick(static_cast<std::int64_t>(next_triplet_));
    std::int64_t shards_this_run = 0;
    submitted_shards_ = static_cast<std::int64_t>(shards_.size());
    AsyncShardWriter writer(2);

    tbb::parallel_pipeline(
        tokens,
        tbb::make_filter<void, std::size_t>(tbb::filter_mode::serial_in_order,
                                            [&](tbb::flow_control& fc) -> std::size_t {
                                              if (next >= triplets_.size() || stopped || interrupt_requested()) {
                                                fc.stop();
                                                return 0;
                                              }
                                              return next++;
                                            }) &
            tbb::make_filter<std::size_t, TripletResult>(tbb::filter_mode::parallel,
                                                         [&](std::size_t i) { return process(i, cache); }) &
            tbb::make_filter<TripletResult, void>(tbb::filter_mode::serial_in_order, [&](TripletResult r) {
              // After a signal nothing more is consumed: the state file holds
              // the resume point of the last shard handed to the writer.
              if (r.interrupted || interrupt_requested()) stopped = true;
              if (stopped) return;
              const Source& s = sources_[triplets_[r.index].source];
              const std::size_t first_tile = r.index == next_triplet_ ? next_tile_ : 0;
              for (std::size_t t = first_tile; t < r.tiles.size(); ++t) {
                if (interrupt_requested()) {
                  stopped = true;
                  return;
                }
                TileOutcome& o = r.tiles[t];
                ++summary_.candidates;
                if (o.decision.accepted()) {
                  pending.push_back(std::move(o.sample));
                } else {
                  const std::string reason = to_string(o.decision.reason);
                  ++summary_.rejected[reason];
                  const std::string row = fmt::format("{},{},{},{},{},{:.6g},{:.6g}\n", s.spec.id, triplets_[r.index].z, o.y, o.x,
                                                      reason, o.decision.value, o.decision.threshold);
                  rejected << row;
                  rejected_bytes_ += row.size();
                }
                if (pending.size() == static_cast<std::size_t>(spec_.shard_size)) {
                  rejected.flush();
                  // Resume point: the tile after this one.
                  submit_shard(writer, pending, t + 1 < r.tiles.size() ? r.index : r.index + 1, t + 1 < r.tiles.size() ? t + 1 : 0);
                  ++shards_this_run;
                  if (opt_.stop_after_shards >= 0 && shards_this_run >= opt_.stop_after_shards) {
                    stopped = true;
                    return;
                  }
                }
              }
              progress.tick();
            }));
    rejected.close();
    if (!(stopped || interrupt_requested()) && !pending.empty()) submit_shard(writer, pending, triplets_.size(), 0);
    writer.drain();  // finished shards are on disk (and in the state) before we report anything
    if (stopped || interrupt_requested()) {
      throw Error(ErrorKind::kAborted,
                  fmt::format("interrupted after {} finished shard(s); rerun with --resume to finish", shards_.size()), dir_.string());
    }
    progress.finish();
    finish();
  }

  /// The preprocessing contract of each source (preprocessing.hpp): what a
  /// model trained on these shards needs to prepare a new volume the same way.
  json preprocessing_records() const {
    json records = json::array();
    for (const Source& s : sources_) {
      PreprocessingRecord r;
      r.source_id = s.spec.id;
      r.step = s.spec.step;
      r.tile_size = spec_.tile_size;
      r.uint16 = spec_.uint16;
      r.align = spec_.align;
      r.filters = spec_.filters;
      r.histogram_matching = spec_.histogram_matching && !s.reference.used.empty();
      if (r.histogram_matching) {
        r.reference = s.reference.counts;
        r.reference_slices.assign(s.reference.used.begin(), s.reference.used.end());
      }
      records.push_back(to_json(r));
    }
    return records;
  }

  void finish() {
    // rejected.csv, then manifest.json (its presence marks a complete build), then drop the state.
    fs::path partial = dir_ / kRejectedPartial;
    fsync_path(partial);
    fs::rename(partial, dir_ / kRejectedFile);
    json manifest;
    manifest["tool"] = "triplet-build";
    manifest["emtriplet_version"] = opt_.version;
    manifest["spec"] = resolved_spec_;
    manifest["spec_sha256"] = spec_hash_;
    manifest["provenance"] = {{"command", opt_.command}};
    manifest["tile_size"] = spec_.tile_size;
    manifest["stride"] = spec_.stride;
    auto& srcs = manifest["sources"] = json::array();
    for (const Source& s : sources_) {
      const auto shape = s.volume->shape();
      json j{{"id", s.spec.id}, {"path", s.spec.path}, {"kind", emio::to_string(s.volume->kind())},
             {"shape", {shape.depth, shape.height, shape.width}}, {"bits", s.volume->bits()}, {"step", s.spec.step},
             {"triplet_middles", s.middles.size()}, {"bad_slices", s.bad}};
      if (s.volume->kind() == emio::SourceKind::kHdf5) j["dataset"] = s.spec.dataset;
      if (s.spec.scale != 0) j["scale"] = s.spec.scale;
      if (auto r = s.volume->resolution_nm()) j["resolution_nm"] = *r;
      j["histogram_reference_slices"] = s.reference.used;
      srcs.push_back(j);
    }
    std::int64_t accepted = 0;
    for (const auto& s : shards_) accepted += s.at("count").get<std::int64_t>();
    manifest["shards"] = shards_;
    std::int64_t rejected = 0;
    for (const auto& [reason, n] : summary_.rejected) rejected += n;
    manifest["totals"] = {{"candidates", summary_.candidates}, {"accepted", accepted}, {"rejected", rejected}};
    manifest["rejected"] = summary_.rejected;
    manifest["preprocessing"] = preprocessing_records();
    write_file_atomic(dir_ / kManifestFile, manifest.dump(2) + "\n");
    std::error_code ec;
    fs::remove(dir_ / kStateFile, ec);
    summary_.triplets = accepted;
    summary_.shards = static_cast<std::int64_t>(shards_.size());
    double bytes = 0;
    for (const Source& s : sources_) {
      const auto shape = s.volume->shape();
      bytes += static_cast<double>(s.used.size()) * static_cast<double>(shape.height * shape.width) * (s.volume->bits() / 8);
    }
    summary_.megabytes_read = bytes / 1e6;
  }

  const BuildSpec& spec_;
  const BuildOptions& opt_;
  fs::path dir_;
  std::vector<Source> sources_;
  std::vector<TripletRef> triplets_;
  std::string spec_hash_, resolved_spec_;
  json shards_ = json::array();
  std::size_t next_triplet_ = 0, next_tile_ = 0;
  std::int64_t submitted_shards_ = 0;
  std::uintmax_t rejected_bytes_ = 0;
  bool resumed_ = false, created_partial_ = false, created_dir_ = false;
  std::unique_ptr<OutputLock> lock_;  // held for the whole run: a second build on dir_ fails at once
  std::vector<fs::path> written_this_run_;
  BuildSummary summary_;
};

}  // namespace

BuildSummary run_build(const BuildSpec& spec, const BuildOptions& options) { return Builder(spec, options).run(); }

}  // namespace emt::triplets
