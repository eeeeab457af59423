#include "builder/plan.hpp"

#include <algorithm>
#include <climits>
#include <cmath>

#include <fmt/format.h>

#include "emt/common/error.hpp"
#include "emt/common/sampling.hpp"

namespace emt::triplets::builder {

Plan plan_build(const BuildSpec& spec, const std::function<void(const std::string&)>& warn) {
  if (spec.sources.empty()) throw Error(ErrorKind::kInvalidArgument, "no sources: give [source.ID] sections in the spec or --source PATH");
  Plan plan;
  std::set<std::string> ids;
  for (const SourceSpec& ss : spec.sources) {
    if (!ids.insert(ss.id).second) throw Error(ErrorKind::kInvalidArgument, "duplicate source id '" + ss.id + "'");
    Source s;
    s.spec = ss;
    emio::SourceOptions so;
    so.uint16 = spec.uint16;
    so.chunk_cache_bytes = static_cast<std::size_t>(spec.cache_mb) << 20;
    so.scale = ss.scale;
    if (warn) so.warn = warn;
    s.volume = emio::open_source(ss.path, so, ss.dataset);
    const auto shape = s.volume->shape();
    if (shape.height < spec.tile_size || shape.width < spec.tile_size) {
      throw Error(ErrorKind::kInvalidData,
                  fmt::format("volume is {}x{}, smaller than one {}x{} tile", shape.width, shape.height, spec.tile_size, spec.tile_size), ss.path);
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
    s.blocks = lateral_blocks(shape.height, shape.width, spec.lateral_block);
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
    plan.sources.push_back(std::move(s));
  }
  for (std::size_t i = 0; i < plan.sources.size(); ++i) {
    const std::vector<std::int64_t>& middles = plan.sources[i].middles;
    for (std::size_t m0 = 0; m0 < middles.size(); m0 += kSlabMiddles) {
      const std::size_t m1 = std::min(middles.size(), m0 + kSlabMiddles);
      for (std::size_t b = 0; b < plan.sources[i].blocks.size(); ++b) {
        for (std::size_t m = m0; m < m1; ++m) plan.triplets.push_back({i, b, middles[m]});
      }
    }
  }
  for (Source& s : plan.sources) s.all_used = s.used;
  return plan;
}

std::vector<cv::Rect> lateral_blocks(std::int64_t height, std::int64_t width, int lateral_block) {
  if (height < 1 || width < 1 || height > INT_MAX || width > INT_MAX) {
    throw Error(ErrorKind::kInvalidData, fmt::format("section {}x{} cannot be cut into blocks", width, height));
  }
  const std::int64_t b = lateral_block;
  const std::int64_t rows = b > 0 ? (height + b - 1) / b : 1, cols = b > 0 ? (width + b - 1) / b : 1;
  std::vector<cv::Rect> blocks;
  for (std::int64_t r = 0; r < rows; ++r) {
    const std::int64_t y0 = height * r / rows, y1 = height * (r + 1) / rows;
    for (std::int64_t c = 0; c < cols; ++c) {
      const std::int64_t x0 = width * c / cols, x1 = width * (c + 1) / cols;
      blocks.emplace_back(static_cast<int>(x0), static_cast<int>(y0), static_cast<int>(x1 - x0), static_cast<int>(y1 - y0));
    }
  }
  return blocks;
}

cv::Rect block_with_margin(const cv::Rect& block, const emio::VolumeShape& shape, int margin) {
  const std::int64_t y0 = std::max<std::int64_t>(0, block.y - margin), x0 = std::max<std::int64_t>(0, block.x - margin);
  const std::int64_t y1 = std::min<std::int64_t>(shape.height, static_cast<std::int64_t>(block.y) + block.height + margin);
  const std::int64_t x1 = std::min<std::int64_t>(shape.width, static_cast<std::int64_t>(block.x) + block.width + margin);
  return {static_cast<int>(x0), static_cast<int>(y0), static_cast<int>(x1 - x0), static_cast<int>(y1 - y0)};
}

cv::Mat read_block(const emio::SliceSource& volume, std::int64_t z, const cv::Rect& region) {
  const auto shape = volume.shape();
  if (region.x == 0 && region.y == 0 && region.width == shape.width && region.height == shape.height) return volume.read_slice(z);
  return volume.read_region(z, region);
}

cv::Rect repeat_crop(const emio::VolumeShape& shape) {
  const auto h = std::min<std::int64_t>(shape.height, kRepeatCrop), w = std::min<std::int64_t>(shape.width, kRepeatCrop);
  return cv::Rect(static_cast<int>((shape.width - w) / 2), static_cast<int>((shape.height - h) / 2), static_cast<int>(w), static_cast<int>(h));
}

void restrict_to_part(Plan& plan, const BuildSpec& spec, int part, int parts, bool skip_bad_slices) {
  if (parts <= 1) return;
  if (skip_bad_slices) {
    // Which slices are bad is known only after reading them all, and it
    // moves the reference histogram's slices: a part cannot know it alone.
    throw Error(ErrorKind::kInvalidArgument, "--skip-bad-slices cannot be combined with --part");
  }
  const std::size_t n = plan.triplets.size(), p = static_cast<std::size_t>(parts), i = static_cast<std::size_t>(part);
  const std::size_t begin = n * i / p, end = n * (i + 1) / p;
  plan.triplets = std::vector<TripletRef>(plan.triplets.begin() + static_cast<std::ptrdiff_t>(begin),
                                          plan.triplets.begin() + static_cast<std::ptrdiff_t>(end));
  for (std::size_t si = 0; si < plan.sources.size(); ++si) {
    Source& s = plan.sources[si];
    std::set<std::int64_t> needed;
    for (const TripletRef& t : plan.triplets) {
      if (t.source == si) needed.insert({t.z - s.spec.step, t.z, t.z + s.spec.step});
    }
    if (spec.histogram_matching) {
      const auto ref = reference_candidates(s, spec.reference_slices);
      needed.insert(ref.begin(), ref.end());
    }
    s.used = std::move(needed);
  }
}

std::vector<std::int64_t> reference_candidates(const Source& s, int reference_slices) {
  std::vector<std::int64_t> readable;
  for (std::int64_t z : s.all_used) {
    if (!s.bad.count(z)) readable.push_back(z);
  }
  const auto size = static_cast<std::int64_t>(readable.size());
  const std::int64_t n = std::min<std::int64_t>(size, reference_slices);
  std::vector<std::int64_t> picks;
  for (std::int64_t k = 0; k < n; ++k) picks.push_back(readable[static_cast<std::size_t>(evenly_spaced(k, n, size))]);
  return picks;
}

std::vector<std::int64_t> repeat_sample_pairs(const Source& s, int sample_pairs) {
  std::vector<std::int64_t> pairs;
  for (std::int64_t z : s.all_used) {
    if (s.all_used.count(z + s.spec.step)) pairs.push_back(z);
  }
  const auto size = static_cast<std::int64_t>(pairs.size());
  const std::int64_t n = std::min<std::int64_t>(size, sample_pairs);
  std::vector<std::int64_t> picks;
  for (std::int64_t k = 0; k < n; ++k) picks.push_back(pairs[static_cast<std::size_t>(evenly_spaced(k, n, size))]);
  return picks;
}

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

std::string resolved_spec_text(const BuildSpec& spec, const std::vector<Source>& sources) {
  std::string t = spec.text;
  if (!t.empty() && t.back() != '\n') t += '\n';
  t += "\n# --- resolved by triplet-build ---\n";
  for (const Source& s : sources) {
    const auto shape = s.volume->shape();
    t += fmt::format("[resolved.source.{}]\npath = {}\nkind = {}\nshape = {}x{}x{}\nstep = {}\n", s.spec.id, s.spec.path,
                     emio::to_string(s.volume->kind()), shape.depth, shape.height, shape.width, s.spec.step);
    if (s.blocks.size() > 1) {  // absent for one block: the text of unblocked builds is unchanged
      const auto cols = std::count_if(s.blocks.begin(), s.blocks.end(), [](const cv::Rect& b) { return b.y == 0; });
      t += fmt::format("lateral_blocks = {}x{}\n", static_cast<std::int64_t>(s.blocks.size()) / cols, cols);
    }
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

}  // namespace emt::triplets::builder
