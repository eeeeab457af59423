#include "emt/emio/slice_source.hpp"

#include <glob.h>

#include <algorithm>
#include <filesystem>

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
  }
  return "unknown";
}

void SliceSource::check_index(std::int64_t z) const {
  if (z < 0 || z >= shape().depth) {
    throw Error(ErrorKind::kInvalidArgument,
                "slice " + std::to_string(z) + " out of range [0, " + std::to_string(shape().depth) + ")", path());
  }
}

cv::Mat SliceSource::read_slice(std::int64_t z) const {
  cv::Mat raw = read_raw(z);
  if (raw.depth() == CV_8U) return raw;
  std::call_once(window_once_, [&] {
    // Volume-wide robust window from evenly spaced sample slices.
    const std::int64_t depth = shape().depth;
    const int samples = static_cast<int>(std::min<std::int64_t>(depth, std::max(1, options_.uint16.sample_slices)));
    std::vector<std::uint64_t> hist(65536, 0);
    std::uint64_t total = 0;
    for (int i = 0; i < samples; ++i) {
      const std::int64_t sz = samples == 1 ? depth / 2 : (depth - 1) * i / (samples - 1);
      const cv::Mat s = (sz == z) ? raw : read_raw(sz);
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

std::unique_ptr<SliceSource> open_source(const std::string& path, const SourceOptions& options,
                                         const std::string& default_dataset) {
  // FILE:dataset/path, when FILE exists (a plain path may contain ':' too).
  const auto colon = path.rfind(':');
  if (colon != std::string::npos && colon > 0 && fs::is_regular_file(path.substr(0, colon)) && !fs::exists(path)) {
    return open_hdf5_volume(path.substr(0, colon), path.substr(colon + 1), options);
  }
  if (fs::is_directory(path)) {
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
