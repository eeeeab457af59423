// Image stacks: one file per slice, or one multipage TIFF.
#include <array>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <string_view>

#include <fmt/format.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "emt/common/error.hpp"
#include "emt/common/zip_check.hpp"
#include "emt/emio/slice_source.hpp"

namespace emt::emio {
namespace {

/// Walks a PNG's chunks checking lengths and CRCs up to IEND. libpng reports a
/// truncated or corrupt file by printing to stderr and returning nothing;
/// checking first gives one clean error line instead.
void check_png(const std::vector<std::uint8_t>& bytes, const std::string& where) {
  static const std::uint8_t kSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  if (bytes.size() < 8 || std::memcmp(bytes.data(), kSignature, 8) != 0) {
    throw Error(ErrorKind::kDataLoss, "not a PNG file (bad signature)", where);
  }
  std::size_t pos = 8;
  while (true) {
    if (pos + 12 > bytes.size()) throw Error(ErrorKind::kDataLoss, "truncated PNG (no IEND chunk)", where);
    const std::uint32_t length = (std::uint32_t(bytes[pos]) << 24) | (std::uint32_t(bytes[pos + 1]) << 16) |
                                 (std::uint32_t(bytes[pos + 2]) << 8) | std::uint32_t(bytes[pos + 3]);
    if (length > bytes.size() - pos - 12) throw Error(ErrorKind::kDataLoss, "truncated PNG (chunk runs past the end)", where);
    const std::uint8_t* type = bytes.data() + pos + 4;
    const std::size_t end = pos + 8 + length;
    const std::uint32_t stored = (std::uint32_t(bytes[end]) << 24) | (std::uint32_t(bytes[end + 1]) << 16) |
                                 (std::uint32_t(bytes[end + 2]) << 8) | std::uint32_t(bytes[end + 3]);
    if (emt::crc32(std::string_view(reinterpret_cast<const char*>(type), 4 + length)) != stored) {
      throw Error(ErrorKind::kDataLoss, fmt::format("corrupt PNG (CRC mismatch in chunk at byte {})", pos), where);
    }
    if (std::memcmp(type, "IEND", 4) == 0) return;
    pos = end + 4;
  }
}

/// Reads and decodes one image file; PNGs are checked before decoding.
cv::Mat read_image(const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw Error(ErrorKind::kNotFound, "cannot open image", file);
  std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (bytes.empty()) throw Error(ErrorKind::kDataLoss, "empty image file (0 bytes)", file);
  if (bytes.size() >= 4 && bytes[0] == 0x89 && bytes[1] == 'P') check_png(bytes, file);
  try {
    return cv::imdecode(bytes, cv::IMREAD_ANYDEPTH | cv::IMREAD_ANYCOLOR);
  } catch (const cv::Exception& e) {
    throw Error(ErrorKind::kDataLoss, "cannot decode image (truncated or corrupt?): " + e.err, file);
  }
}

/// Checks a decoded image is grey 8/16-bit. A colour image is accepted only
/// when its colour channels are equal (grey stored as RGB, as some stacks
/// are): it becomes that grey without loss. Real colour is refused, since a
/// silent conversion would change the data.
cv::Mat to_grey(cv::Mat img, const std::string& where) {
  if (img.empty()) throw Error(ErrorKind::kDataLoss, "cannot decode image (truncated or corrupt?)", where);
  if (img.channels() == 3 || img.channels() == 4) {
    std::vector<cv::Mat> ch;
    cv::split(img, ch);
    if (cv::countNonZero(ch[0] != ch[1]) > 0 || cv::countNonZero(ch[0] != ch[2]) > 0) {
      throw Error(ErrorKind::kInvalidData, "colour image with differing channels; EM data must be grey (convert it to grey first)", where);
    }
    img = ch[0];
  }
  if (img.channels() != 1 || (img.depth() != CV_8U && img.depth() != CV_16U)) {
    throw Error(ErrorKind::kInvalidData, "unsupported pixel type (expected 8- or 16-bit grey)", where);
  }
  return img;
}

class ImageStackSource final : public SliceSource {
 public:
  ImageStackSource(std::vector<std::string> files, const SourceOptions& options)
      : SliceSource(options), files_(std::move(files)) {
    if (files_.empty()) throw Error(ErrorKind::kNotFound, "image stack is empty", "");
    // The first slice fixes size and bit depth; every other slice is checked on read.
    const cv::Mat first = to_grey(read_image(files_.front()), files_.front());
    shape_ = {static_cast<std::int64_t>(files_.size()), first.rows, first.cols};
    bits_ = first.depth() == CV_8U ? 8 : 16;
  }
  SourceKind kind() const noexcept override { return SourceKind::kImageStack; }
  VolumeShape shape() const noexcept override { return shape_; }
  int bits() const noexcept override { return bits_; }
  std::string path() const override { return std::filesystem::path(files_.front()).parent_path().string(); }
  std::string location(std::int64_t z) const override {
    return (z >= 0 && z < shape_.depth) ? files_[static_cast<std::size_t>(z)] : path();
  }
  cv::Mat read_raw(std::int64_t z) const override {
    check_index(z);
    const std::string& file = files_[static_cast<std::size_t>(z)];
    if (!std::filesystem::exists(file)) throw Error(ErrorKind::kNotFound, "slice file vanished", file);
    cv::Mat img = to_grey(read_image(file), file);
    if (img.rows != shape_.height || img.cols != shape_.width) {
      throw Error(ErrorKind::kInvalidData,
                  fmt::format("slice is {}x{}, the stack's first slice is {}x{}", img.cols, img.rows, shape_.width, shape_.height),
                  file);
    }
    if ((img.depth() == CV_8U ? 8 : 16) != bits_) {
      throw Error(ErrorKind::kInvalidData, fmt::format("slice bit depth differs from the first slice's {} bit", bits_), file);
    }
    return img;
  }

 private:
  std::vector<std::string> files_;
  VolumeShape shape_;
  int bits_ = 8;
};

/// Walks a classic TIFF's chain of image directories and checks that every
/// directory, and every strip or tile it points to, lies inside the file.
/// libtiff stops counting pages at the first directory past a truncation, so
/// a cut file would otherwise read as a shorter, valid stack. Returns the
/// number of pages (BigTIFF: 0, not checked here).
std::size_t check_tiff_structure(const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  const std::vector<std::uint8_t> d((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto bad = [&](const std::string& what) { return Error(ErrorKind::kDataLoss, "truncated or corrupt TIFF: " + what, file); };
  if (d.size() < 8) throw bad("shorter than a TIFF header");
  const bool le = d[0] == 'I' && d[1] == 'I';
  if (!le && !(d[0] == 'M' && d[1] == 'M')) throw bad("no TIFF byte-order mark");
  auto get = [&](std::uint64_t off, int n) -> std::uint64_t {
    if (off + static_cast<std::uint64_t>(n) > d.size()) throw bad(fmt::format("a record at byte {} runs past the end of the file ({} bytes)", off, d.size()));
    std::uint64_t v = 0;
    for (int i = 0; i < n; ++i) v = le ? v | (std::uint64_t(d[off + static_cast<std::uint64_t>(i)]) << (8 * i)) : (v << 8) | d[off + static_cast<std::uint64_t>(i)];
    return v;
  };
  if (get(2, 2) == 43) return 0;  // BigTIFF
  if (get(2, 2) != 42) throw bad("bad TIFF magic number");
  static const int kTypeSize[13] = {0, 1, 1, 2, 4, 8, 1, 1, 2, 4, 8, 4, 8};
  std::size_t pages = 0;
  std::uint64_t ifd = get(4, 4);
  std::set<std::uint64_t> seen;  // a chain that comes back to a directory would loop (found by fuzz/fuzz_image_stack)
  while (ifd != 0) {
    if (!seen.insert(ifd).second) throw bad("directory chain loops");
    ++pages;
    const std::uint64_t n = get(ifd, 2);
    std::map<std::uint64_t, std::vector<std::uint64_t>> values;  // offsets and byte counts
    for (std::uint64_t e = 0; e < n; ++e) {
      const std::uint64_t at = ifd + 2 + 12 * e, tag = get(at, 2), type = get(at + 2, 2), count = get(at + 4, 4);
      const std::uint64_t size = type < 13 ? static_cast<std::uint64_t>(kTypeSize[type]) * count : 0;
      const std::uint64_t where = size <= 4 ? at + 8 : get(at + 8, 4);
      if (size > 4 && where + size > d.size()) throw bad(fmt::format("page {}: tag {} points past the end of the file", pages - 1, tag));
      if (tag == 273 || tag == 279 || tag == 324 || tag == 325) {
        const int item = (type == 3) ? 2 : 4;
        for (std::uint64_t k = 0; k < count && k < 1000000; ++k) values[tag].push_back(get(where + k * static_cast<std::uint64_t>(item), item));
      }
    }
    for (const auto& [off_tag, count_tag] : {std::pair<int, int>{273, 279}, std::pair<int, int>{324, 325}}) {
      const auto& offs = values[static_cast<std::uint64_t>(off_tag)];
      const auto& counts = values[static_cast<std::uint64_t>(count_tag)];
      for (std::size_t k = 0; k < offs.size() && k < counts.size(); ++k) {
        if (offs[k] + counts[k] > d.size()) throw bad(fmt::format("page {}: image data runs past the end of the file", pages - 1));
      }
    }
    ifd = get(ifd + 2 + 12 * n, 4);
  }
  return pages;
}

class MultipageTiffSource final : public SliceSource {
 public:
  MultipageTiffSource(std::string file, const SourceOptions& options) : SliceSource(options), file_(std::move(file)) {
    if (!std::filesystem::exists(file_)) throw Error(ErrorKind::kNotFound, "no such file", file_);
    const std::size_t walked = check_tiff_structure(file_);
    std::size_t pages = 0;
    try {
      pages = cv::imcount(file_, cv::IMREAD_ANYDEPTH | cv::IMREAD_ANYCOLOR);
    } catch (const cv::Exception& e) {  // OpenCV throws on some damaged headers (found by fuzz/fuzz_image_stack)
      throw Error(ErrorKind::kDataLoss, "cannot read TIFF pages (truncated or corrupt?): " + e.err, file_);
    }
    if (walked != 0 && pages != walked) {
      throw Error(ErrorKind::kDataLoss, fmt::format("TIFF has {} pages but only {} can be read (truncated or corrupt?)", walked, pages), file_);
    }
    if (pages == 0) throw Error(ErrorKind::kDataLoss, "cannot read TIFF pages (truncated or corrupt?)", file_);
    const cv::Mat first = read_page(0);
    shape_ = {static_cast<std::int64_t>(pages), first.rows, first.cols};
    bits_ = first.depth() == CV_8U ? 8 : 16;
  }
  SourceKind kind() const noexcept override { return SourceKind::kMultipageTiff; }
  VolumeShape shape() const noexcept override { return shape_; }
  int bits() const noexcept override { return bits_; }
  std::string path() const override { return file_; }
  std::string location(std::int64_t z) const override { return fmt::format("{}[{}]", file_, z); }
  cv::Mat read_raw(std::int64_t z) const override {
    check_index(z);
    cv::Mat img = read_page(z);
    if (img.rows != shape_.height || img.cols != shape_.width) {
      throw Error(ErrorKind::kInvalidData, fmt::format("page is {}x{}, the first page is {}x{}", img.cols, img.rows,
                                                       shape_.width, shape_.height), location(z));
    }
    return img;
  }

 private:
  cv::Mat read_page(std::int64_t z) const {
    std::vector<cv::Mat> pages;
    // Reads only page z, not the whole file.
    bool ok = false;
    try {
      ok = cv::imreadmulti(file_, pages, static_cast<int>(z), 1, cv::IMREAD_ANYDEPTH | cv::IMREAD_ANYCOLOR) && !pages.empty();
    } catch (const cv::Exception&) {
      ok = false;
    }
    if (!ok) throw Error(ErrorKind::kDataLoss, "cannot decode TIFF page (truncated or corrupt?)", location(z));
    return to_grey(pages.front(), location(z));
  }
  std::string file_;
  VolumeShape shape_;
  int bits_ = 8;
};

}  // namespace

std::unique_ptr<SliceSource> open_image_stack(std::vector<std::string> files, const SourceOptions& options) {
  return std::make_unique<ImageStackSource>(std::move(files), options);
}

std::unique_ptr<SliceSource> open_multipage_tiff(const std::string& file, const SourceOptions& options) {
  return std::make_unique<MultipageTiffSource>(file, options);
}

}  // namespace emt::emio
