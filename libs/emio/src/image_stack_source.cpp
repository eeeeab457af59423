// Image stacks: one file per slice, or one multipage TIFF.
#include <filesystem>

#include <fmt/format.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "emt/common/error.hpp"
#include "emt/emio/slice_source.hpp"

namespace emt::emio {
namespace {

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
    const cv::Mat first = to_grey(cv::imread(files_.front(), cv::IMREAD_ANYDEPTH | cv::IMREAD_ANYCOLOR), files_.front());
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
    cv::Mat img = to_grey(cv::imread(file, cv::IMREAD_ANYDEPTH | cv::IMREAD_ANYCOLOR), file);
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
