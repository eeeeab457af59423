// triplet-build's pipeline, put together: planning (builder/plan), the output
// directory and resume state (builder/state), phase 1 (builder/analysis), phase
// 2's tiler (builder/tiler) in a TBB pipeline whose serial stage fills shards,
// written in order by a background writer (builder/writer), then rejected.csv
// and manifest.json.
#include "emt/triplets/build.hpp"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>

#include <fmt/format.h>
#include <tbb/info.h>
#include <tbb/task_arena.h>
#include <tbb/parallel_pipeline.h>

#include "builder/analysis.hpp"
#include "builder/plan.hpp"
#include "builder/state.hpp"
#include "builder/tiler.hpp"
#include "builder/writer.hpp"
#include "emt/common/atomic_file.hpp"
#include "emt/common/error.hpp"
#include "emt/common/interrupt.hpp"
#include "emt/common/output_guard.hpp"
#include "emt/common/progress.hpp"
#include "emt/common/sha256.hpp"
#include "emt/triplets/preprocessing.hpp"
#include "emt/triplets/shard.hpp"

namespace emt::triplets {
namespace fs = std::filesystem;
using nlohmann::json;

std::string part_dir_name(int part, int parts) { return fmt::format("parts/part-{:04d}-of-{:04d}", part, parts); }

BuildSummary summary_of(const Manifest& m) {
  BuildSummary summary;
  summary.candidates = m.candidates.value_or(0);
  summary.triplets = m.accepted;
  summary.shards = static_cast<std::int64_t>(m.shards.size());
  summary.rejected = m.rejected.value_or(std::map<std::string, std::int64_t>{});
  return summary;
}

json BuildSummary::to_json() const {
  return json{{"candidates", candidates}, {"triplets", triplets}, {"shards", shards}, {"rejected", rejected},
              {"seconds", seconds}, {"megabytes_read", megabytes_read},
              {"mb_per_s", seconds > 0 ? megabytes_read / seconds : 0.0}};
}

namespace {

class Builder {
 public:
  Builder(const BuildSpec& spec, const BuildOptions& options)
      : spec_(spec), opt_(options),
        state_(options.parts > 1 ? fs::path(options.out_dir) / part_dir_name(options.part, options.parts) : fs::path(options.out_dir),
               sha256_hex(builder::canonical_spec(spec)), options.force, options.resume) {
    if (options.parts < 1 || options.part < 0 || options.part >= options.parts) {
      throw Error(ErrorKind::kInvalidArgument, fmt::format("--part {}/{}: need 0 <= I < N", options.part, options.parts));
    }
  }

  BuildSummary run() {
    const auto start = std::chrono::steady_clock::now();
    plan_ = builder::plan_build(spec_, opt_.warn);
    builder::restrict_to_part(plan_, spec_, opt_.part, opt_.parts, opt_.skip_bad_slices);
    std::vector<fs::path> inputs;
    for (const builder::Source& s : plan_.sources) inputs.emplace_back(s.volume->path());
    refuse_output_overlapping_inputs(state_.dir(), inputs, "--out");
    try {
      state_.open();
      if (state_.finished()) {
        BuildSummary done = summary_of(read_manifest(state_.dir().string()));
        done.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        return done;
      }
      progress_ = state_.start();
      finished_ = progress_.shards;
      builder::AnalysisOptions ao;
      ao.quiet = opt_.quiet;
      ao.skip_bad_slices = opt_.skip_bad_slices;
      ao.warn = opt_.warn;
      ao.where = state_.dir().string();
      builder::analyse_slices(plan_.sources, spec_, ao);
      resolved_spec_ = builder::resolved_spec_text(spec_, plan_.sources);
      build_triplets();
    } catch (const Error& e) {
      // An interruption keeps finished shards for --resume; before the first
      // one there is nothing to resume, so it cleans up like a failure.
      if (e.kind() != ErrorKind::kAborted || finished_shards() == 0) state_.remove_outputs_of_this_run();
      throw;
    } catch (...) {
      state_.remove_outputs_of_this_run();
      throw;
    }
    summary_.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return summary_;
  }

 private:
  std::size_t finished_shards() {
    std::lock_guard lock(finished_mutex_);
    return finished_.size();
  }

  /// Hands the pending samples to the writer thread with the resume point
  /// that holds once they are on disk.
  void submit_shard(builder::OrderedWriter& writer, std::vector<TripletSample>& pending, std::size_t next_triplet, std::size_t next_tile) {
    const std::string name = shard_file_name(submitted_shards_++);
    auto samples = std::make_shared<std::vector<TripletSample>>(std::move(pending));
    pending.clear();
    builder::ResumePoint point = progress_;  // counts and rejected.csv length at this shard's cut
    point.next_triplet = next_triplet;
    point.next_tile = next_tile;
    point.shards.clear();
    writer.submit([this, name, samples, point = std::move(point)]() mutable {
      const fs::path path = state_.dir() / name;
      ShardAttributes attr;
      attr.tile_size = spec_.tile_size;
      attr.spec = resolved_spec_;
      attr.version = opt_.version;
      // No command in shards: their bytes depend only on the data and the spec
      // (the command is the manifest's provenance).
      attr.compress = spec_.compress;
      write_shard(path.string(), *samples, attr);
      state_.written(path);
      {
        std::lock_guard lock(finished_mutex_);
        finished_.push_back({name, static_cast<std::int64_t>(samples->size()), sha256_file(path)});
        point.shards = finished_;
      }
      if (point.next_triplet < plan_.triplets.size() || point.next_tile > 0) state_.save(point);
    });
  }

  void build_triplets() {
    const std::size_t threads = static_cast<std::size_t>(std::max(1, tbb::this_task_arena::max_concurrency()));
    const std::size_t tokens = 3 * threads;
    // Triplets are processed in order, so the tokens in flight need at most
    // tokens + 2 x step block regions of a source (more across a source or
    // block boundary: the cache only re-reads then, it never changes a byte).
    // At 8192^2 px a region is 64 MiB: sizing by what is in flight, not
    // 3 x tokens + 4, keeps the peak (docs/benchmarks.md) from growing with
    // the thread count; lateral blocks keep it from growing with the section.
    int max_step = 1;
    for (const builder::Source& s : plan_.sources) max_step = std::max(max_step, s.spec.step);
    builder::SliceCache cache(plan_.sources, std::min(3 * tokens, tokens + 2 * static_cast<std::size_t>(max_step)) + 1,
                              spec_.align.search_radius);
    const fs::path partial = state_.dir() / builder::kRejectedPartial;
    std::ofstream rejected(partial, std::ios::binary | std::ios::app);
    if (!rejected) throw Error(ErrorKind::kIo, "cannot append to " + std::string(builder::kRejectedPartial), state_.dir().string());
    const std::size_t first_triplet = progress_.next_triplet, first_tile = progress_.next_tile;
    std::vector<TripletSample> pending;
    std::size_t next = first_triplet;
    bool stopped = false;
    emt::Progress progress("triplet-build: tiling", static_cast<std::int64_t>(plan_.triplets.size()), "triplets", opt_.quiet);
    progress.tick(static_cast<std::int64_t>(first_triplet));
    std::int64_t shards_this_run = 0;
    submitted_shards_ = static_cast<std::int64_t>(finished_.size());
    builder::OrderedWriter writer(2);

    tbb::parallel_pipeline(
        tokens,
        tbb::make_filter<void, std::size_t>(tbb::filter_mode::serial_in_order,
                                            [&](tbb::flow_control& fc) -> std::size_t {
                                              if (next >= plan_.triplets.size() || stopped || interrupt_requested()) {
                                                fc.stop();
                                                return 0;
                                              }
                                              return next++;
                                            }) &
            tbb::make_filter<std::size_t, builder::TripletResult>(
                tbb::filter_mode::parallel, [&](std::size_t i) { return builder::tile_triplet(plan_, spec_, i, cache); }) &
            tbb::make_filter<builder::TripletResult, void>(tbb::filter_mode::serial_in_order, [&](builder::TripletResult r) {
              // After a signal nothing more is consumed: the state file holds
              // the resume point of the last shard handed to the writer.
              if (r.interrupted || interrupt_requested()) stopped = true;
              if (stopped) return;
              const builder::TripletRef ref = plan_.triplets[r.index];
              const builder::Source& s = plan_.sources[ref.source];
              for (std::size_t t = r.index == first_triplet ? first_tile : 0; t < r.tiles.size(); ++t) {
                if (interrupt_requested()) {
                  stopped = true;
                  return;
                }
                builder::TileOutcome& o = r.tiles[t];
                ++progress_.candidates;
                if (o.decision.accepted()) {
                  pending.push_back(std::move(o.sample));
                } else {
                  const std::string reason = to_string(o.decision.reason);
                  ++progress_.rejected[reason];
                  const std::string row = format_rejected_row({s.spec.id, ref.z, o.y, o.x, reason, o.decision.value, o.decision.threshold});
                  rejected << row;
                  progress_.rejected_bytes += row.size();
                }
                if (pending.size() == static_cast<std::size_t>(spec_.shard_size)) {
                  rejected.flush();
                  // Resume point: the tile after this one.
                  const bool more = t + 1 < r.tiles.size();
                  submit_shard(writer, pending, more ? r.index : r.index + 1, more ? t + 1 : 0);
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
    if (!(stopped || interrupt_requested()) && !pending.empty()) submit_shard(writer, pending, plan_.triplets.size(), 0);
    writer.drain();  // finished shards are on disk (and in the state) before we report anything
    if (stopped || interrupt_requested()) {
      throw Error(ErrorKind::kAborted, fmt::format("interrupted after {} finished shard(s); rerun with --resume to finish", finished_.size()),
                  state_.dir().string());
    }
    progress.finish();
    finish();
  }

  /// The preprocessing contract of each source (preprocessing.hpp): what a
  /// model trained on these shards needs to prepare a new volume the same way.
  std::vector<PreprocessingRecord> preprocessing_records() const {
    std::vector<PreprocessingRecord> records;
    for (const builder::Source& s : plan_.sources) {
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
      records.push_back(std::move(r));
    }
    return records;
  }

  void finish() {
    // rejected.csv, then manifest.json (its presence marks a complete build), then drop the state.
    state_.commit_rejected();
    Manifest m;
    m.tool = "triplet-build";
    m.emtriplet_version = opt_.version;
    m.spec = resolved_spec_;
    m.spec_sha256 = state_.spec_hash();
    m.command = opt_.command;
    m.tile_size = spec_.tile_size;
    m.stride = spec_.stride;
    for (const builder::Source& s : plan_.sources) {
      const auto shape = s.volume->shape();
      ManifestSource src;
      src.id = s.spec.id;
      src.path = s.spec.path;
      src.kind = emio::to_string(s.volume->kind());
      if (s.volume->kind() == emio::SourceKind::kHdf5) src.dataset = s.spec.dataset;
      src.scale = s.spec.scale;
      src.shape = {shape.depth, shape.height, shape.width};
      src.bits = s.volume->bits();
      src.step = s.spec.step;
      src.triplet_middles = static_cast<std::int64_t>(s.middles.size());
      src.bad_slices.assign(s.bad.begin(), s.bad.end());
      src.resolution_nm = s.volume->resolution_nm();
      src.histogram_reference_slices.assign(s.reference.used.begin(), s.reference.used.end());
      m.sources.push_back(std::move(src));
    }
    m.shards = finished_;
    for (const ShardEntry& s : m.shards) m.accepted += s.count;
    m.candidates = progress_.candidates;
    m.rejected = progress_.rejected;
    m.preprocessing = preprocessing_records();
    write_manifest(state_.dir(), m);
    state_.remove_state();
    summary_.candidates = progress_.candidates;
    summary_.rejected = progress_.rejected;
    summary_.triplets = m.accepted;
    summary_.shards = static_cast<std::int64_t>(m.shards.size());
    double bytes = 0;
    for (const builder::Source& s : plan_.sources) {
      const auto shape = s.volume->shape();
      bytes += static_cast<double>(s.used.size()) * static_cast<double>(shape.height * shape.width) * (s.volume->bits() / 8);
    }
    summary_.megabytes_read = bytes / 1e6;
  }

  const BuildSpec& spec_;
  const BuildOptions& opt_;
  builder::BuildState state_;
  builder::Plan plan_;
  std::string resolved_spec_;
  builder::ResumePoint progress_;        ///< the serial stage's counts (candidates, rejected, rejected.csv length)
  std::mutex finished_mutex_;
  std::vector<ShardEntry> finished_;   ///< shards on disk, in order (written by the writer thread)
  std::int64_t submitted_shards_ = 0;
  BuildSummary summary_;
};

}  // namespace

BuildSummary run_build(const BuildSpec& spec, const BuildOptions& options) {
  validate(spec, "");
  const fs::path out(options.out_dir);
  std::error_code ec;
  if (options.parts > 1 && fs::exists(out / kManifestFile, ec) && !fs::exists(out / "parts", ec)) {
    // Its parts were merged (by the last to finish): a part rerun, as a
    // requeued array task does, has nothing to add.
    if (options.resume) return merge_parts(options.out_dir, options.quiet);  // merged already: its summary
    throw Error(ErrorKind::kInvalidArgument,
                "holds a build merged from its parts; a part only adds to a build in progress (--resume: nothing to do)", options.out_dir);
  }
  return Builder(spec, options).run();
}

}  // namespace emt::triplets
