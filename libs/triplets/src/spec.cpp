#include "emt/triplets/spec.hpp"

#include <filesystem>
#include <map>
#include <sstream>

#include <boost/program_options.hpp>
#include <fmt/format.h>

#include "emt/common/atomic_file.hpp"
#include "emt/common/cli.hpp"
#include "emt/common/error.hpp"

namespace emt::triplets {
namespace po = boost::program_options;

BuildSpec load_spec(const std::string& path) {
  if (!std::filesystem::exists(path)) throw Error(ErrorKind::kNotFound, "no such spec file", path);
  BuildSpec spec = parse_spec(read_file(path), path);
  // A relative source path is taken from the working directory, or else from
  // the spec file's directory when it exists there.
  for (SourceSpec& s : spec.sources) {
    const std::filesystem::path p(s.path);
    if (p.is_relative() && !std::filesystem::exists(p)) {
      const auto beside = std::filesystem::path(path).parent_path() / p;
      if (std::filesystem::exists(beside)) s.path = beside.lexically_normal().string();
    }
  }
  return spec;
}

BuildSpec parse_spec(const std::string& text, const std::string& origin) {
  BuildSpec spec;
  spec.text = text;
  FilterOptions& f = spec.filters;
  AlignOptions& a = spec.align;
  po::options_description d;
  d.add_options()
      ("output.tile_size", po::value(&spec.tile_size)->default_value(spec.tile_size))
      ("output.stride", po::value(&spec.stride)->default_value(spec.stride))
      ("output.shard_size", po::value(&spec.shard_size)->default_value(spec.shard_size))
      ("output.compress", po::value(&spec.compress)->default_value(spec.compress))
      ("output.lateral_block", po::value(&spec.lateral_block)->default_value(spec.lateral_block))
      ("align.search_radius", po::value(&a.search_radius)->default_value(a.search_radius))
      ("align.coarse_factor", po::value(&a.coarse_factor)->default_value(a.coarse_factor))
      ("align.fine_window", po::value(&a.fine_window)->default_value(a.fine_window))
      ("align.smooth_sigma", po::value(&a.smooth_sigma)->default_value(a.smooth_sigma))
      ("filters.flat_block", po::value(&f.flat_block)->default_value(f.flat_block))
      ("filters.flat_std", po::value(&f.flat_std)->default_value(f.flat_std))
      ("filters.max_flat_fraction", po::value(&f.max_flat_fraction)->default_value(f.max_flat_fraction))
      ("filters.defect_downsample", po::value(&f.defect_downsample)->default_value(f.defect_downsample))
      ("filters.defect_sigma", po::value(&f.defect_sigma)->default_value(f.defect_sigma))
      ("filters.defect_residual", po::value(&f.defect_residual)->default_value(f.defect_residual))
      ("filters.max_defect_fraction", po::value(&f.max_defect_fraction)->default_value(f.max_defect_fraction))
      ("filters.min_ncc", po::value(&f.min_ncc)->default_value(f.min_ncc))
      ("filters.max_blur_ratio", po::value(&f.max_blur_ratio)->default_value(f.max_blur_ratio))
      ("filters.duplicate_ncc", po::value(&f.duplicate_ncc)->default_value(f.duplicate_ncc))
      ("filters.repeat_max_z", po::value(&f.repeat_max_z)->default_value(f.repeat_max_z))
      ("filters.repeat_min_scale", po::value(&f.repeat_min_scale)->default_value(f.repeat_min_scale))
      ("filters.repeat_min_pairs", po::value(&f.repeat_min_pairs)->default_value(f.repeat_min_pairs))
      ("filters.repeat_sample_pairs", po::value(&f.repeat_sample_pairs)->default_value(f.repeat_sample_pairs))
      ("histogram.enabled", po::value(&spec.histogram_matching)->default_value(spec.histogram_matching))
      ("histogram.reference_slices", po::value(&spec.reference_slices)->default_value(spec.reference_slices))
      ("uint16.low_percentile", po::value(&spec.uint16.low_percentile)->default_value(spec.uint16.low_percentile))
      ("uint16.high_percentile", po::value(&spec.uint16.high_percentile)->default_value(spec.uint16.high_percentile))
      ("input.cache_mb", po::value(&spec.cache_mb)->default_value(spec.cache_mb));
  // Keys of the triplet-build command line may sit in the spec too (INI of --config).
  static const char* kToolKeys[] = {"out", "source", "resume", "force", "skip-bad-slices", "threads", "quiet", "json", "step", "cache-mb"};
  po::variables_map vm;
  po::parsed_options parsed(nullptr);
  try {
    std::istringstream in(text);
    parsed = po::parse_config_file(in, d, /*allow_unregistered=*/true);
    po::store(parsed, vm);
    po::notify(vm);
  } catch (const po::error& e) {
    throw Error(ErrorKind::kInvalidArgument, "bad spec: " + po_error_message(e), origin);
  }
  // A key given twice (most often a duplicated [source.ID] section) would
  // silently let the second win: refuse it.
  {
    std::map<std::string, int> seen;
    for (const auto& opt : parsed.options) {
      if (++seen[opt.string_key] == 2) {
        throw Error(ErrorKind::kInvalidArgument, "bad spec: '" + opt.string_key + "' is given twice (a duplicated section?)", origin);
      }
    }
  }
  // [source.ID] sections arrive as unregistered "source.ID.key" options, in file order.
  std::map<std::string, std::size_t> index;
  for (const auto& opt : parsed.options) {
    if (!opt.unregistered) continue;
    const std::string& key = opt.string_key;
    const std::string value = opt.value.empty() ? std::string() : opt.value.front();
    if (key.rfind("resolved.", 0) == 0) continue;  // written by triplet-build into shards
    if (key.rfind("source.", 0) != 0) {
      bool tool_key = false;
      for (const char* k : kToolKeys) tool_key |= key == k;
      if (!tool_key) throw Error(ErrorKind::kInvalidArgument, "unknown spec key '" + key + "'", origin);
      continue;
    }
    const auto dot = key.rfind('.');
    if (dot <= 7) throw Error(ErrorKind::kInvalidArgument, "source keys must be in a [source.ID] section: '" + key + "'", origin);
    const std::string id = key.substr(7, dot - 7), field = key.substr(dot + 1);
    if (!index.count(id)) {
      index[id] = spec.sources.size();
      spec.sources.push_back(SourceSpec{});
      spec.sources.back().id = id;
    }
    SourceSpec& s = spec.sources[index[id]];
    const std::string what = fmt::format("[source.{}] {}", id, field);
    try {
      if (field == "path") s.path = value;
      else if (field == "dataset") s.dataset = value;
      else if (field == "scale") {
        const std::int64_t scale = parse_int(value, what);
        if (scale < 0 || scale > 64) throw Error(ErrorKind::kInvalidArgument, "must be in [0, 64]: " + value);
        s.scale = static_cast<int>(scale);
      }
      else if (field == "z") s.z = parse_range(value);
      else if (field == "skip") s.skip = parse_index_list(value);
      else if (field == "step") {
        const std::int64_t step = parse_int(value, what);
        if (step < 1 || step > 1'000'000) throw Error(ErrorKind::kInvalidArgument, "must be in [1, 1000000]: " + value);
        s.step = static_cast<int>(step);
      }
      else if (field == "resolution") { /* informational: recorded in the spec text */ }
      else throw Error(ErrorKind::kInvalidArgument, "unknown source key '" + field + "' in [source." + id + "]", origin);
    } catch (const Error& e) {
      // The value parsers do not know the file: name it and the key (found by fuzz/fuzz_spec).
      if (!e.where().empty()) throw;
      throw Error(e.kind(), "bad spec: " + what + ": " + e.message(), origin);
    }
  }
  validate(spec, origin);
  return spec;
}

SourceSpec source_from_path(const std::string& path) {
  SourceSpec s;
  s.path = path;
  std::filesystem::path p(path.substr(0, path.find(':') == std::string::npos || std::filesystem::exists(path) ? path.size() : path.rfind(':')));
  while (!p.has_filename() && p.has_parent_path() && p != p.parent_path()) p = p.parent_path();
  s.id = p.stem().string();
  if (s.id.empty() || s.id.find_first_of("*?[") != std::string::npos) s.id = p.parent_path().filename().string();
  if (s.id.empty()) s.id = "source";
  return s;
}

void validate(const BuildSpec& spec, const std::string& origin) {
  auto check = [&](bool ok, const std::string& what) {
    if (!ok) throw Error(ErrorKind::kInvalidArgument, "bad spec: " + what, origin);
  };
  check(spec.tile_size >= 16, "output.tile_size must be >= 16");
  check(spec.stride >= 1, "output.stride must be >= 1");
  check(spec.shard_size >= 1, "output.shard_size must be >= 1");
  // Blocks are between B/2 and B px (plan.hpp: lateral_blocks): from 2 T on, each holds a tile.
  check(spec.lateral_block == 0 || (spec.lateral_block >= 2 * spec.tile_size && spec.lateral_block <= (1 << 30)),
        fmt::format("output.lateral_block ({}) must be 0 (never cut) or at least 2 x output.tile_size ({})", spec.lateral_block,
                    2 * static_cast<std::int64_t>(spec.tile_size)));
  check(spec.align.search_radius >= 1, "align.search_radius must be >= 1");
  check(spec.filters.flat_block >= 2 && spec.filters.flat_block <= spec.tile_size, "filters.flat_block must be in [2, tile_size]");
  check(spec.filters.defect_downsample >= 1 && spec.tile_size / spec.filters.defect_downsample >= 8,
        "filters.defect_downsample leaves fewer than 8 px per tile");
  // Written so that NaN (which Boost parses from "nan") fails every check.
  auto in = [](double v, double lo, double hi) { return v >= lo && v <= hi; };
  const FilterOptions& f = spec.filters;
  check(in(f.max_blur_ratio, 1, 1e300), "filters.max_blur_ratio must be a number >= 1");
  check(in(f.flat_std, 0, 1e300), "filters.flat_std must be a number >= 0");
  check(in(f.max_flat_fraction, 0, 1), "filters.max_flat_fraction must be in [0, 1]");
  check(in(f.defect_sigma, 1e-9, 1e300), "filters.defect_sigma must be a number > 0");
  check(in(f.defect_residual, 0, 1e300), "filters.defect_residual must be a number >= 0");
  check(in(f.max_defect_fraction, 0, 1), "filters.max_defect_fraction must be in [0, 1]");
  check(in(f.min_ncc, -1, 1), "filters.min_ncc must be in [-1, 1]");
  check(in(f.duplicate_ncc, -1, 1), "filters.duplicate_ncc must be in [-1, 1]");
  check(in(f.repeat_max_z, 0, 1e300), "filters.repeat_max_z must be a number >= 0");
  check(in(f.repeat_min_scale, 1e-9, 1e300), "filters.repeat_min_scale must be a number > 0");
  check(f.repeat_min_pairs >= 3, "filters.repeat_min_pairs must be >= 3");
  check(f.repeat_sample_pairs >= f.repeat_min_pairs, "filters.repeat_sample_pairs must be >= filters.repeat_min_pairs");
  check(spec.align.coarse_factor >= 1, "align.coarse_factor must be >= 1");
  check(spec.align.fine_window >= 16, "align.fine_window must be >= 16");
  check(in(spec.align.smooth_sigma, 0, 1e300), "align.smooth_sigma must be a number >= 0");
  check(in(spec.uint16.low_percentile, 0, 100) && in(spec.uint16.high_percentile, 0, 100) &&
            spec.uint16.low_percentile < spec.uint16.high_percentile,
        "uint16.low_percentile and uint16.high_percentile must satisfy 0 <= low < high <= 100");
  check(spec.reference_slices >= 1, "histogram.reference_slices must be >= 1");
  check(spec.cache_mb >= 1 && spec.cache_mb <= (std::int64_t{1} << 30), "input.cache_mb must be in [1, 2^30]");
  for (const SourceSpec& s : spec.sources) {
    check(!s.path.empty(), "[source." + s.id + "] has no path");
    check(s.step >= 1, "[source." + s.id + "] step must be >= 1");
    for (std::int64_t z : s.skip) check(z >= 0, "[source." + s.id + "] skip entries must be slice indices >= 0");
  }
}

}  // namespace emt::triplets
