// Image stacks: one file per slice, or one multipage TIFF.
#include <array>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include <fmt/format.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "emt/common/error.hpp"
#include "emt/emio/slice_source.hpp"

namespace emt::emio {
namespace {

/// CRC-32 (ISO 3309, as PNG uses).
std::uint32_t crc32(const std::uint8_t* data, std::size_t n, std::uint32_t crc = 0) {
  static const auto table = [] {
    std::array<std::uint32_t, 256> t{};
    for (std::uint32_t i = 0; i < 256; ++i) {
      std::uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  crc = ~crc;
  for (std::size_t i = 0; i < n; ++i) crc = table[(crc ^ data[i]) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

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
    if (crc32(type, 4 + length) != stored) {
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
  if (bytes.size() >= 4 && bytes[0] == 0x89 && bytes[1] == 'P') check_png(bytes, file);
  return cv::imdecode(bytes, cv::IMREAD_ANYDEPTH | cv::IMREAD_ANYCOLOR);
}

/// Checks a decoded image is grey 8/16-bit; colour images are converted to grey
/// (some stacks are saved as RGB with equal channels).
cv::Mat to_grey(cv::Mat img, const std::string& where) {
  if (img.empty()) throw Error(ErrorKind::kDataLoss, "cannot decode image (truncated or corrupt?)", where);
  if (img.channels() == 3) cv::cvtColor(img, img, cv::COLOR_BGR2GRAY);
  if (img.channels() == 4) cv::cvtColor(img, img, cv::COLOR_BGRA2GRAY);
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

class MultipageTiffSource final : public SliceSource {
 public:
  MultipageTiffSource(std::string file, const SourceOptions& options) : SliceSource(options), file_(std::move(file)) {
    if (!std::filesystem::exists(file_)) throw Error(ErrorKind::kNotFound, "no such file", file_);
    const std::size_t pages = cv::imcount(file_, cv::IMREAD_ANYDEPTH | cv::IMREAD_ANYCOLOR);
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
    if (!cv::imreadmulti(file_, pages, static_cast<int>(z), 1, cv::IMREAD_ANYDEPTH | cv::IMREAD_ANYCOLOR) || pages.empty()) {
      throw Error(ErrorKind::kDataLoss, "cannot decode TIFF page (truncated or corrupt?)", location(z));
    }
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
