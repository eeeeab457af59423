#include "builder/analysis.hpp"

#include <algorithm>
#include <mutex>
#include <optional>
#include <set>

#include <fmt/format.h>
#include <tbb/info.h>
#include <tbb/task_arena.h>
#include <tbb/parallel_for.h>

#include "emt/common/error.hpp"
#include "emt/common/interrupt.hpp"
#include "emt/common/progress.hpp"
#include "emt/triplets/filters.hpp"

namespace emt::triplets::builder {
namespace {

bool is_data_error(const Error& e) {
  return e.kind() == ErrorKind::kDataLoss || e.kind() == ErrorKind::kInvalidData || e.kind() == ErrorKind::kNotFound;
}

/// The first error of parallel work: each task runs through run() (skipped
/// once a signal arrived), and rethrow() afterwards throws what failed first.
class FirstError {
 public:
  template <typename F>
  void run(F&& f) {
    try {
      if (!interrupt_requested()) f();
    } catch (const Error& e) {
      std::lock_guard lock(mutex_);
      if (!first_) first_ = e;
    }
  }
  void rethrow() const {
    if (first_) throw *first_;
  }

 private:
  std::mutex mutex_;
  std::optional<Error> first_;
};

/// Phase 1 stops before any shard exists, so nothing of the run is kept.
void abort_if_interrupted(const std::string& where) {
  if (interrupt_requested()) throw Error(ErrorKind::kAborted, "interrupted before any shard was written", where);
}

/// The repeated-section NCC of every pair the statistic needs: this build's
/// pairs (s.forward) and the stack sample, from the aligned central crops
/// (repeat_crop). A section that is its own crop and one block was aligned
/// whole already: that alignment's NCC is the same number, reused.
void measure_repeat_ncc(Source& s, const BuildSpec& spec) {
  const auto shape = s.volume->shape();
  const cv::Rect crop = repeat_crop(shape);
  const bool aligned_whole = crop.width == shape.width && crop.height == shape.height && s.blocks.size() == 1;
  std::set<std::int64_t> pairs;
  for (const auto& [z, shifts] : s.forward) pairs.insert(z);
  for (std::int64_t z : repeat_sample_pairs(s, spec.filters.repeat_sample_pairs)) {
    if (!s.bad.count(z) && !s.bad.count(z + s.spec.step)) pairs.insert(z);
  }
  std::vector<std::int64_t> to_measure;
  for (std::int64_t z : pairs) {
    const auto it = s.forward.find(z);
    if (aligned_whole && it != s.forward.end()) {
      s.repeat_ncc[z] = it->second.front().ncc;
    } else {
      to_measure.push_back(z);
    }
  }
  // Each crop is read by both pairs it belongs to: crops are small, and
  // keeping every slice's features for its second pair would grow with depth.
  std::vector<double> ncc(to_measure.size());
  FirstError error;
  tbb::parallel_for(std::size_t{0}, to_measure.size(), [&](std::size_t i) {
    error.run([&] {
      const std::int64_t z = to_measure[i];
      ncc[i] = estimate_shift(read_block(*s.volume, z, crop), read_block(*s.volume, z + s.spec.step, crop), spec.align).ncc;
    });
  });
  error.rethrow();
  for (std::size_t i = 0; i < to_measure.size(); ++i) s.repeat_ncc[to_measure[i]] = ncc[i];
}

/// Marks the pairs whose NCC is an outlier towards 1 against the stack's
/// sample (repeated_sections): a section imaged twice or copied.
void find_repeated_sections(Source& s, const BuildSpec& spec, const std::function<void(const std::string&)>& warn) {
  std::vector<double> sample, series;
  std::vector<std::int64_t> pair_z;
  for (std::int64_t z : repeat_sample_pairs(s, spec.filters.repeat_sample_pairs)) {
    if (const auto it = s.repeat_ncc.find(z); it != s.repeat_ncc.end()) sample.push_back(it->second);  // bad slices have no pair
  }
  for (const auto& [z, shifts] : s.forward) {
    pair_z.push_back(z);
    series.push_back(s.repeat_ncc.at(z));
  }
  const RepeatedSections r = repeated_sections(series, sample, spec.filters);
  for (std::size_t i = 0; i < series.size(); ++i) {
    if (!r.repeated[i]) continue;
    s.repeated[pair_z[i]] = r.z[i];
    warn(fmt::format("source {}: sections {} and {} are far more alike than the stack's neighbours (NCC {:.4f}, median {:.4f}; "
                     "robust z {:.1f} > {}): their triplets are rejected as repeated_section",
                     s.spec.id, pair_z[i], pair_z[i] + s.spec.step, series[i], r.median_ncc, r.z[i], spec.filters.repeat_max_z));
  }
}

}  // namespace

// Slices are processed in windows of consecutive used slices, and each
// window block by block (lateral blocks, plan.hpp), in z-order chunks: each
// block region is read and prepared once (histogram, alignment features),
// pairs (z, z + step) are matched from the prepared features, and only the
// last `step` slices' features are carried to the next chunk, so memory
// follows the chunk and the block, not the depth or the section. With one
// block the window is the whole source; with several, carrying features
// from one window to the next would hold `step` slices of every block, so a
// window's first pairs read their lower slices again instead.
void analyse_slices(std::vector<Source>& sources, const BuildSpec& spec, const AnalysisOptions& opt) {
  auto warn = [&](const std::string& s) {
    if (opt.warn) opt.warn(s);
  };
  std::int64_t total = 0;
  bool several = false;  // some source is cut into blocks: progress counts block regions
  for (const Source& s : sources) {
    total += static_cast<std::int64_t>(s.used.size() * s.blocks.size());
    several |= s.blocks.size() > 1;
  }
  Progress progress("triplet-build: aligning", total, several ? "blocks" : "slices", opt.quiet);
  const std::size_t chunk = 4 * static_cast<std::size_t>(std::max(1, tbb::this_task_arena::max_concurrency()));
  for (Source& s : sources) {
    const std::vector<std::int64_t> used(s.used.begin(), s.used.end());
    const int k = s.spec.step;
    const std::size_t blocks = s.blocks.size();
    const std::size_t window = blocks == 1 ? std::max<std::size_t>(1, used.size()) : kSlabMiddles;
    for (std::size_t w0 = 0; w0 < used.size(); w0 += window) {
      const std::size_t w1 = std::min(used.size(), w0 + window);
      // The slices read: the lower slices of pairs whose upper slice is in
      // the window but not they (features only), then the window.
      std::vector<std::int64_t> list;
      for (std::size_t i = w0; i < w1; ++i) {
        const std::int64_t lower = used[i] - k;
        if (lower < used[w0] && s.used.count(lower) && !s.bad.count(lower)) list.push_back(lower);
      }
      const std::size_t before = list.size();
      list.insert(list.end(), used.begin() + static_cast<std::ptrdiff_t>(w0), used.begin() + static_cast<std::ptrdiff_t>(w1));
      std::map<std::int64_t, Histogram> hist;  // the window's slices, summed over blocks
      std::set<std::int64_t> bad;              // a block unreadable: the whole slice is bad
      for (std::size_t b = 0; b < blocks; ++b) {
        std::map<std::int64_t, AlignmentFeatures> available;
        for (std::size_t c0 = 0; c0 < list.size(); c0 += chunk) {
          const std::size_t n = std::min(chunk, list.size() - c0);
          std::vector<std::optional<AlignmentFeatures>> features(n);
          std::vector<std::optional<Histogram>> block_hist(n);
          FirstError error;
          tbb::parallel_for(std::size_t{0}, n, [&](std::size_t i) {
            error.run([&] {
              const std::int64_t z = list[c0 + i];
              try {
                const cv::Mat region = read_block(*s.volume, z, s.blocks[b]);
                block_hist[i] = c0 + i >= before ? histogram_of(region, /*ignore_zero=*/true) : Histogram{};
                features[i] = prepare_alignment(region, spec.align);
              } catch (const Error& e) {
                if (!opt.skip_bad_slices || !is_data_error(e)) throw;
              }
              if (c0 + i >= before) progress.tick();
            });
          });
          error.rethrow();
          abort_if_interrupted(opt.where);  // mid-chunk: the slices not read are not bad, just not read
          std::vector<std::int64_t> pairs;  // lower slices of the pairs whose upper slice is new here
          for (std::size_t i = 0; i < n; ++i) {
            const std::int64_t z = list[c0 + i];
            if (!features[i]) {
              bad.insert(z);
              continue;
            }
            if (c0 + i >= before) {
              Histogram& h = hist[z];
              for (std::size_t v = 0; v < h.size(); ++v) h[v] += (*block_hist[i])[v];
              if (available.count(z - k)) pairs.push_back(z - k);
            }
            available[z] = std::move(*features[i]);
          }
          std::vector<Shift> shifts(pairs.size());
          tbb::parallel_for(std::size_t{0}, pairs.size(), [&](std::size_t i) {
            error.run([&] { shifts[i] = estimate_shift(available.at(pairs[i]), available.at(pairs[i] + k), spec.align); });
          });
          error.rethrow();
          for (std::size_t i = 0; i < pairs.size(); ++i) {
            std::vector<Shift>& per_block = s.forward[pairs[i]];
            per_block.resize(blocks);
            per_block[b] = shifts[i];
          }
          const std::int64_t last = list[c0 + n - 1];
          for (auto it = available.begin(); it != available.end();) it = it->first + k <= last ? available.erase(it) : std::next(it);
          abort_if_interrupted(opt.where);
        }
      }
      for (std::int64_t z : bad) {
        s.bad.insert(z);
        warn(fmt::format("unreadable slice skipped: {}", s.volume->location(z)));
      }
      for (const auto& [z, h] : hist) {
        if (!bad.count(z)) s.histograms[z] = h;
      }
      // A pair with a bad slice has shifts of only some blocks: no pair at all.
      for (std::int64_t z : bad) {
        s.forward.erase(z);
        s.forward.erase(z - k);
      }
    }
  }
  progress.finish();
  for (Source& s : sources) {
    measure_repeat_ncc(s, spec);
    abort_if_interrupted(opt.where);
    find_repeated_sections(s, spec, warn);
  }
  for (Source& s : sources) {
    if (!spec.histogram_matching) continue;
    // Reference: evenly spaced readable slices, outliers (defective slices) dropped.
    const std::vector<std::int64_t> sample_z = reference_candidates(s, spec.reference_slices);
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
}

}  // namespace emt::triplets::builder
