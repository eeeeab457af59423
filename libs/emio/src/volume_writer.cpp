#include "emt/emio/volume_writer.hpp"

#include <algorithm>
#include <filesystem>
#include <vector>

#include <fmt/format.h>
#include <opencv2/imgcodecs.hpp>

#include "emt/common/atomic_file.hpp"
#include "emt/common/error.hpp"
#include "emt/common/output_guard.hpp"
#include "emt/emio/hdf5.hpp"

namespace emt::emio {
namespace fs = std::filesystem;
namespace {

void check_slice(const cv::Mat& slice, VolumeShape shape, int bits, std::int64_t z, const std::string& where) {
  if (z < 0 || z >= shape.depth || slice.rows != shape.height || slice.cols != shape.width || slice.channels() != 1 ||
      slice.depth() != (bits == 8 ? CV_8U : CV_16U)) {
    throw Error(ErrorKind::kInvalidArgument, fmt::format("slice {} does not match the volume's shape or {}-bit type", z, bits), where);
  }
}

/// Writes `slice` (CV_8U or CV_16U, height x width) as slice z of a 3-D dataset.
void write_hdf5_slice(hid_t dataset, std::int64_t z, const cv::Mat& slice, const std::string& where) {
  const cv::Mat contiguous = slice.isContinuous() ? slice : slice.clone();
  if (!h5::write_leading(dataset, static_cast<hsize_t>(z), {static_cast<hsize_t>(slice.rows), static_cast<hsize_t>(slice.cols)},
                         slice.depth() == CV_8U ? H5T_NATIVE_UINT8 : H5T_NATIVE_UINT16, contiguous.data)) {
    throw Error(ErrorKind::kIo, fmt::format("cannot write slice {} (disk full?)", z), where);
  }
}

class Hdf5VolumeWriter final : public VolumeWriter {
 public:
  Hdf5VolumeWriter(const std::string& file, std::string dataset, VolumeShape shape, int bits,
                   std::optional<std::array<double, 3>> resolution)
      : out_(file), dataset_(std::move(dataset)), shape_(shape), bits_(bits), written_(static_cast<std::size_t>(shape.depth), false) {
    if (bits != 8 && bits != 16) throw Error(ErrorKind::kInvalidArgument, "bits must be 8 or 16", file);
    file_ = h5::create_file(out_.temp_path().string());
    auto guard = h5::lock();
    const hsize_t dims[3] = {static_cast<hsize_t>(shape.depth), static_cast<hsize_t>(shape.height), static_cast<hsize_t>(shape.width)};
    const hsize_t chunk[3] = {1, dims[1], dims[2]};
    h5::Handle space(H5Screate_simple(3, dims, nullptr));
    h5::Handle dcpl = h5::dataset_create_plist();
    H5Pset_chunk(dcpl.get(), 3, chunk);
    h5::ensure_parent_groups(file_.get(), dataset_);
    dset_ = h5::Handle(H5Dcreate2(file_.get(), dataset_.c_str(), bits == 8 ? H5T_STD_U8LE : H5T_STD_U16LE, space.get(),
                                  H5P_DEFAULT, dcpl.get(), H5P_DEFAULT));
    if (!dset_.valid()) throw Error(ErrorKind::kIo, "cannot create dataset " + dataset_, file);
    if (resolution) h5::write_double_array_attribute(dset_.get(), "resolution", {(*resolution)[0], (*resolution)[1], (*resolution)[2]});
  }
  void write_slice(std::int64_t z, const cv::Mat& slice) override {
    check_slice(slice, shape_, bits_, z, out_.final_path().string());
    write_hdf5_slice(dset_.get(), z, slice, out_.final_path().string());
    written_[static_cast<std::size_t>(z)] = true;
  }
  void commit() override {
    for (std::size_t z = 0; z < written_.size(); ++z) {
      if (!written_[z]) throw Error(ErrorKind::kInvalidArgument, fmt::format("slice {} was never written", z), out_.final_path().string());
    }
    {
      auto guard = h5::lock();
      dset_.reset();
      if (H5Fflush(file_.get(), H5F_SCOPE_GLOBAL) < 0) throw Error(ErrorKind::kIo, "flush failed", out_.final_path().string());
      file_.reset();
    }
    out_.commit();
  }

 private:
  AtomicFile out_;
  std::string dataset_;
  VolumeShape shape_;
  int bits_;
  std::vector<bool> written_;
  h5::Handle file_, dset_;
};

/// The names an image stack writer produces: digits and its extension.
bool is_stack_image_name(const std::string& name, ImageFormat format) {
  const std::string ext = format == ImageFormat::kPng ? ".png" : ".tif";
  if (name.size() <= ext.size() || name.compare(name.size() - ext.size(), ext.size(), ext) != 0) return false;
  return std::all_of(name.begin(), name.end() - static_cast<std::ptrdiff_t>(ext.size()), [](char c) { return c >= '0' && c <= '9'; });
}

class ImageStackWriter final : public VolumeWriter {
 public:
  ImageStackWriter(std::string dir, ImageFormat format, VolumeShape shape, int bits, bool force)
      : dir_(std::move(dir)), format_(format), shape_(shape), bits_(bits), written_(static_cast<std::size_t>(shape.depth), false),
        stage_(dir_, force, [format](const std::string& name) { return is_stack_image_name(name, format); }) {
    if (bits != 8 && bits != 16) throw Error(ErrorKind::kInvalidArgument, "bits must be 8 or 16", dir_);
  }
  void write_slice(std::int64_t z, const cv::Mat& slice) override {
    check_slice(slice, shape_, bits_, z, dir_);
    const std::string name = fmt::format("{:04d}.{}", z, format_ == ImageFormat::kPng ? "png" : "tif");
    const fs::path path = stage_.path() / name;
    // Not write_image_atomic: the whole directory is moved into place at commit.
    if (!cv::imwrite(path.string(), slice)) throw Error(ErrorKind::kIo, "cannot write image", path.string());
    written_[static_cast<std::size_t>(z)] = true;
  }
  void commit() override {
    for (std::size_t z = 0; z < written_.size(); ++z) {
      if (!written_[z]) throw Error(ErrorKind::kInvalidArgument, fmt::format("slice {} was never written", z), dir_);
    }
    stage_.commit();
  }

 private:
  std::string dir_;
  ImageFormat format_;
  VolumeShape shape_;
  int bits_;
  std::vector<bool> written_;
  StagedDirectory stage_;
};

}  // namespace

void overwrite_hdf5_slice(const std::string& file, const std::string& dataset, std::int64_t z, const cv::Mat& slice) {
  const std::string where = file + ":" + dataset;
  h5::silence_errors();
  auto guard = h5::lock();
  h5::Handle f(H5Fopen(file.c_str(), H5F_ACC_RDWR, H5P_DEFAULT));
  h5::Handle d(f.valid() ? H5Dopen2(f.get(), dataset.c_str(), H5P_DEFAULT) : H5I_INVALID_HID);
  if (!d.valid()) throw Error(ErrorKind::kIo, "cannot open the dataset for writing", where);
  write_hdf5_slice(d.get(), z, slice, where);
}

void write_image_atomic(const std::string& path, const cv::Mat& image, const std::string& format) {
  std::vector<unsigned char> bytes;
  if (!cv::imencode(format.empty() ? fs::path(path).extension().string() : format, image, bytes)) {
    throw Error(ErrorKind::kIo, "cannot encode image", path);
  }
  write_file_atomic(path, std::string(bytes.begin(), bytes.end()));
}

std::unique_ptr<VolumeWriter> create_hdf5_volume(const std::string& file, const std::string& dataset, VolumeShape shape,
                                                 int bits, std::optional<std::array<double, 3>> resolution_nm) {
  return std::make_unique<Hdf5VolumeWriter>(file, dataset, shape, bits, resolution_nm);
}

std::unique_ptr<VolumeWriter> create_image_stack(const std::string& dir, ImageFormat format, VolumeShape shape, int bits, bool force) {
  return std::make_unique<ImageStackWriter>(dir, format, shape, bits, force);
}

}  // namespace emt::emio
