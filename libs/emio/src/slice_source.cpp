#include "emt/emio/slice_source.hpp"

#include <glob.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "emt/common/sampling.hpp"
#include "emt/common/error.hpp"
#include "emt/common/text.hpp"
#include "emt/emio/hdf5.hpp"

namespace emt::emio {
namespace fs = std::filesystem;

const char* to_string(SourceKind kind) noexcept {
  switch (kind) {
    case SourceKind::kHdf5: return "hdf5";
    case SourceKind::kImageStack: return "image-stack";
    case SourceKind::kMultipageTiff: return "multipage-tiff";
    case SourceKind::kZarr: return "zarr";
    case SourceKind::kOmeZarr: return "ome-zarr";
    case SourceKind::kN5: return "n5";
    case SourceKind::kPrecomputed: return "precomputed";
  }
  return "unknown";
}

void SliceSource::check_index(std::int64_t z) const {
  if (z < 0 || z >= shape().depth) {
    throw Error(ErrorKind::kInvalidArgument,
                "slice " + std::to_string(z) + " out of range [0, " + std::to_string(shape().depth) + ")", path());
  }
}

void SliceSource::check_region(std::int64_t z, const cv::Rect& region) const {
  check_index(z);
  const VolumeShape s = shape();
  if (region.width <= 0 || region.height <= 0 || region.x < 0 || region.y < 0 ||
      region.x + static_cast<std::int64_t>(region.width) > s.width ||
      region.y + static_cast<std::int64_t>(region.height) > s.height) {
    throw Error(ErrorKind::kInvalidArgument,
                fmt::format("region {}x{} at (y {}, x {}) is empty or outside the {}x{} slice", region.height,
                            region.width, region.y, region.x, s.height, s.width),
                location(z));
  }
}

cv::Mat SliceSource::read_raw_region(std::int64_t z, const cv::Rect& region) const {
  check_region(z, region);
  return read_raw(z)(region).clone();
}

cv::Mat SliceSource::read_slice(std::int64_t z) const { return to_8bit(read_raw(z), z); }

cv::Mat SliceSource::read_region(std::int64_t z, const cv::Rect& region) const {
  check_region(z, region);
  // -1: the region is not a whole slice, so the window's sampling must not reuse it.
  return to_8bit(read_raw_region(z, region), -1);
}

// `z`: the slice `raw` is, when it is a whole slice (the window's sampling
// reuses it instead of reading it again); -1 otherwise.
cv::Mat SliceSource::to_8bit(cv::Mat raw, std::int64_t z) const {
  if (raw.depth() == CV_8U) return raw;
  std::call_once(window_once_, [&] {
    // Volume-wide robust window from evenly spaced sample slices.
    const VolumeShape vs = shape();
    const std::int64_t depth = vs.depth;
    const int samples = static_cast<int>(std::min<std::int64_t>(depth, std::max(1, options_.uint16.sample_slices)));
    // Large sections: the central region only (smaller ones: the whole slice, as always).
    const std::int64_t side = std::max<std::int64_t>(1, options_.uint16.sample_side);
    const bool central = vs.height * vs.width > side * side;
    const int w = static_cast<int>(std::min(vs.width, side)), h = static_cast<int>(std::min(vs.height, side));
    const cv::Rect region(static_cast<int>((vs.width - w) / 2), static_cast<int>((vs.height - h) / 2), central ? w : static_cast<int>(vs.width),
                          central ? h : static_cast<int>(vs.height));
    std::vector<std::uint64_t> hist(65536, 0);
    std::uint64_t total = 0;
    for (int i = 0; i < samples; ++i) {
      const std::int64_t sz = evenly_spaced(i, samples, depth);
      const cv::Mat s = (sz == z) ? (central ? raw(region) : raw) : (central ? read_raw_region(sz, region) : read_raw(sz));
      for (int r = 0; r < s.rows; ++r) {
        const auto* p = s.ptr<std::uint16_t>(r);
        for (int c = 0; c < s.cols; ++c) ++hist[p[c]];
      }
      total += static_cast<std::uint64_t>(s.total());
    }
    auto percentile = [&](double q) {
      const auto target = static_cast<std::uint64_t>(q / 100.0 * static_cast<double>(total));
      std::uint64_t acc = 0;
      for (std::size_t v = 0; v < hist.size(); ++v) {
        acc += hist[v];
        if (acc > target) return static_cast<double>(v);
      }
      return 65535.0;
    };
    double lo = percentile(options_.uint16.low_percentile), hi = percentile(options_.uint16.high_percentile);
    if (hi <= lo) hi = lo + 1;
    window_ = {lo, hi};
  });
  cv::Mat out;
  const double scale = 255.0 / (window_.second - window_.first);
  raw.convertTo(out, CV_8U, scale, -window_.first * scale);  // saturating: clips outside the window
  return out;
}

std::vector<std::string> list_image_files(const std::string& dir_or_glob) {
  std::vector<std::string> files;
  auto is_image = [](const fs::path& p) {
    std::string ext = p.extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return ext == ".png" || ext == ".tif" || ext == ".tiff";
  };
  if (fs::is_directory(dir_or_glob)) {
    for (const auto& entry : fs::directory_iterator(dir_or_glob)) {
      if (entry.is_regular_file() && is_image(entry.path())) files.push_back(entry.path().string());
    }
  } else {
    glob_t g{};
    if (::glob(dir_or_glob.c_str(), 0, nullptr, &g) == 0) {
      for (std::size_t i = 0; i < g.gl_pathc; ++i) {
        if (fs::is_regular_file(g.gl_pathv[i])) files.emplace_back(g.gl_pathv[i]);
      }
    }
    ::globfree(&g);
  }
  std::sort(files.begin(), files.end(), [](const std::string& a, const std::string& b) { return natural_less(a, b); });
  return files;
}

namespace {

enum class DirKind { kOther, kZarrArray, kZarrGroup, kOmeZarr, kN5Dataset, kN5Group, kPrecomputed };

/// What a directory holds, from its metadata files alone.
DirKind chunked_kind(const fs::path& dir) {
  auto has = [&](const char* name) { return fs::is_regular_file(dir / name); };
  auto json_has = [&](const char* name, const char* key) {
    std::ifstream in(dir / name);
    try {
      const auto j = nlohmann::json::parse(in);
      return j.is_object() && j.contains(key);
    } catch (const nlohmann::json::exception&) {
      return false;
    }
  };
  if (has(".zarray")) return DirKind::kZarrArray;
  if (has("zarr.json")) {  // Zarr v3: an array, an OME-Zarr 0.5 group, or a group
    std::ifstream in(dir / "zarr.json");
    try {
      const auto j = nlohmann::json::parse(in);
      if (j.value("node_type", std::string()) == "array") return DirKind::kZarrArray;
      const auto attrs = j.value("attributes", nlohmann::json::object());
      if (attrs.contains("ome") && attrs["ome"].contains("multiscales")) return DirKind::kOmeZarr;
    } catch (const nlohmann::json::exception&) {
      return DirKind::kZarrArray;  // unreadable metadata: let the backend name the problem
    }
    return DirKind::kZarrGroup;
  }
  if (has(".zattrs") && json_has(".zattrs", "multiscales")) return DirKind::kOmeZarr;
  if (has(".zgroup")) return DirKind::kZarrGroup;
  if (has("attributes.json")) return json_has("attributes.json", "dimensions") ? DirKind::kN5Dataset : DirKind::kN5Group;
  if (has("info") && json_has("info", "scales")) return DirKind::kPrecomputed;
  return DirKind::kOther;
}

bool has_prefix(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

bool all_digits(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c) != 0; });
}

/// A chunked container `dir`; `inner` is the dataset path given after ':' (or
/// the default dataset for a group), a level number for multiscale volumes.
std::unique_ptr<SliceSource> open_chunked(const std::string& dir, DirKind kind, const std::string& inner, bool inner_given,
                                          SourceOptions options) {
  if (kind == DirKind::kOmeZarr || kind == DirKind::kPrecomputed) {
    if (inner_given) {
      if (!all_digits(inner)) throw Error(ErrorKind::kInvalidArgument, "a multiscale volume takes a level number after ':', not '" + inner + "'", dir);
      const int level = std::stoi(inner);
      if (options.scale != 0 && options.scale != level) {
        throw Error(ErrorKind::kInvalidArgument, "the path names level " + inner + " and the options scale " + std::to_string(options.scale), dir);
      }
      options.scale = level;
    }
    return kind == DirKind::kOmeZarr ? open_ome_zarr(dir, options) : open_precomputed(dir, options);
  }
  if (kind == DirKind::kZarrArray || kind == DirKind::kN5Dataset) {
    if (inner_given) throw Error(ErrorKind::kInvalidArgument, "is an array itself, not a container of '" + inner + "'", dir);
    return kind == DirKind::kZarrArray ? open_zarr_array(dir, options) : open_n5_dataset(dir, options);
  }
  // A group: the named (or default) dataset inside it.
  const fs::path inner_dir = fs::path(dir) / inner;
  const DirKind inner_kind = fs::is_directory(inner_dir) ? chunked_kind(inner_dir) : DirKind::kOther;
  if (inner_kind == DirKind::kZarrArray) return open_zarr_array(dir, options, inner);
  if (inner_kind == DirKind::kN5Dataset) return open_n5_dataset(dir, options, inner);
  if (inner_kind == DirKind::kOmeZarr || inner_kind == DirKind::kPrecomputed) {
    return open_chunked(inner_dir.string(), inner_kind, {}, false, options);
  }
  throw Error(ErrorKind::kNotFound,
              "no array '" + inner + "' in this " + (kind == DirKind::kZarrGroup ? "Zarr" : "N5") +
                  " group (name one as GROUP/ARRAY or GROUP:ARRAY)",
              dir);
}

}  // namespace

std::unique_ptr<SliceSource> open_source(const std::string& given_path, const SourceOptions& options,
                                         const std::string& default_dataset) {
  std::string path = given_path;
  // URLs: neuroglancer's precomputed:// prefix, then file:// (local); others need a network.
  if (has_prefix(path, "precomputed://")) path = path.substr(14);
  if (has_prefix(path, "zarr://") || has_prefix(path, "n5://")) path = path.substr(path.find("://") + 3);
  if (has_prefix(path, "file://")) path = path.substr(7);
  for (const char* scheme : {"gs://", "s3://", "http://", "https://"}) {
    if (has_prefix(path, scheme)) throw Error(ErrorKind::kInvalidArgument, "network sources not supported yet", given_path);
  }
  // FILE:dataset/path, when FILE exists (a plain path may contain ':' too).
  const auto colon = path.rfind(':');
  if (colon != std::string::npos && colon > 0 && !fs::exists(path)) {
    const std::string head = path.substr(0, colon), tail = path.substr(colon + 1);
    if (fs::is_regular_file(head)) return open_hdf5_volume(head, tail, options);
    if (fs::is_directory(head)) {
      const DirKind kind = chunked_kind(head);
      if (kind != DirKind::kOther) return open_chunked(head, kind, tail, true, options);
      throw Error(ErrorKind::kInvalidArgument, "not a Zarr, N5 or precomputed container, so ':" + tail + "' means nothing", head);
    }
  }
  if (fs::is_directory(path)) {
    const DirKind kind = chunked_kind(path);
    if (kind != DirKind::kOther) return open_chunked(path, kind, default_dataset, false, options);
    auto files = list_image_files(path);
    if (files.empty()) throw Error(ErrorKind::kNotFound, "directory holds no PNG or TIFF images", path);
    return open_image_stack(std::move(files), options);
  }
  if (fs::is_regular_file(path)) {
    std::string ext = fs::path(path).extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (ext == ".h5" || ext == ".hdf5" || ext == ".hdf" || h5::has_hdf5_signature(path)) {
      return open_hdf5_volume(path, default_dataset, options);
    }
    if (ext == ".tif" || ext == ".tiff") return open_multipage_tiff(path, options);
    throw Error(ErrorKind::kInvalidArgument, "cannot tell the kind of source (expected HDF5, a directory, a glob or a TIFF)", path);
  }
  if (path.find_first_of("*?[") != std::string::npos) {
    auto files = list_image_files(path);
    if (files.empty()) throw Error(ErrorKind::kNotFound, "glob matches no files", path);
    return open_image_stack(std::move(files), options);
  }
  throw Error(ErrorKind::kNotFound, "no such file or directory", path);
}

}  // namespace emt::emio
