// CREMI-style HDF5 volume: one hyperslab read per slice (or region).
#include <fmt/format.h>

#include "emt/common/error.hpp"
#include "emt/emio/hdf5.hpp"
#include "emt/emio/slice_source.hpp"

namespace emt::emio {
namespace {

class Hdf5VolumeSource final : public SliceSource {
 public:
  Hdf5VolumeSource(std::string file, std::string dataset, const SourceOptions& options)
      : SliceSource(options), file_(std::move(file)), dataset_(std::move(dataset)) {
    while (!dataset_.empty() && dataset_.front() == '/') dataset_.erase(0, 1);
    const std::string where = file_ + ":" + dataset_;
    file_handle_ = h5::open_file_readonly(file_);
    auto guard = h5::lock();
    if (!h5::exists(file_handle_.get(), dataset_)) throw Error(ErrorKind::kNotFound, "no such dataset", where);
    if (H5Oexists_by_name(file_handle_.get(), dataset_.c_str(), H5P_DEFAULT) <= 0) {
      throw Error(ErrorKind::kNotFound, "no such dataset", where);
    }
    H5O_info_t info{};
    if (H5Oget_info_by_name2(file_handle_.get(), dataset_.c_str(), &info, H5O_INFO_BASIC, H5P_DEFAULT) < 0 ||
        info.type != H5O_TYPE_DATASET) {
      throw Error(ErrorKind::kInvalidData, "not a dataset (a group?)", where);
    }
    dataset_handle_ = h5::Handle(H5Dopen2(file_handle_.get(), dataset_.c_str(), H5P_DEFAULT));
    if (!dataset_handle_.valid()) throw Error(ErrorKind::kDataLoss, "cannot open dataset", where);
    h5::Handle space(H5Dget_space(dataset_handle_.get()));
    const int rank = H5Sget_simple_extent_ndims(space.get());
    if (rank != 3) {
      throw Error(ErrorKind::kInvalidData, fmt::format("dataset has rank {}, expected 3 (z, y, x)", rank), where);
    }
    hsize_t dims[3];
    H5Sget_simple_extent_dims(space.get(), dims, nullptr);
    shape_ = {static_cast<std::int64_t>(dims[0]), static_cast<std::int64_t>(dims[1]), static_cast<std::int64_t>(dims[2])};
    h5::Handle type(H5Dget_type(dataset_handle_.get()));
    const H5T_class_t cls = H5Tget_class(type.get());
    const std::size_t size = H5Tget_size(type.get());
    const bool is_unsigned = cls == H5T_INTEGER && H5Tget_sign(type.get()) == H5T_SGN_NONE;
    if (!is_unsigned || (size != 1 && size != 2)) {
      const char* cls_name = cls == H5T_INTEGER ? (is_unsigned ? "uint" : "int") : cls == H5T_FLOAT ? "float" : "non-numeric";
      throw Error(ErrorKind::kInvalidData,
                  fmt::format("unsupported dtype {}{} (expected uint8 or uint16)", cls_name, size * 8), where);
    }
    bits_ = static_cast<int>(size * 8);
    std::vector<double> res;
    if (h5::read_double_array_attribute(dataset_handle_.get(), "resolution", res) && res.size() == 3) {
      resolution_ = std::array<double, 3>{res[0], res[1], res[2]};
    }
  }

  SourceKind kind() const noexcept override { return SourceKind::kHdf5; }
  VolumeShape shape() const noexcept override { return shape_; }
  int bits() const noexcept override { return bits_; }
  std::string path() const override { return file_; }
  std::string dataset() const override { return dataset_; }
  std::string location(std::int64_t z) const override { return fmt::format("{}:{}[{}]", file_, dataset_, z); }
  std::optional<std::array<double, 3>> resolution_nm() const override { return resolution_; }

  cv::Mat read_raw(std::int64_t z) const override {
    check_index(z);
    cv::Mat out(static_cast<int>(shape_.height), static_cast<int>(shape_.width), bits_ == 8 ? CV_8UC1 : CV_16UC1);
    const hid_t mem_type = bits_ == 8 ? H5T_NATIVE_UINT8 : H5T_NATIVE_UINT16;
    if (!h5::read_leading(dataset_handle_.get(), static_cast<hsize_t>(z), {static_cast<hsize_t>(shape_.height), static_cast<hsize_t>(shape_.width)},
                          mem_type, out.data)) {
      throw Error(ErrorKind::kDataLoss, "cannot read slice (truncated or corrupt file?)", location(z));
    }
    return out;
  }

  // A hyperslab of just the region: HDF5 reads the chunks (or the contiguous
  // rows) it crosses, not the whole slice.
  cv::Mat read_raw_region(std::int64_t z, const cv::Rect& region) const override {
    check_region(z, region);
    cv::Mat out(region.height, region.width, bits_ == 8 ? CV_8UC1 : CV_16UC1);
    const hid_t mem_type = bits_ == 8 ? H5T_NATIVE_UINT8 : H5T_NATIVE_UINT16;
    if (!h5::read_box(dataset_handle_.get(), {static_cast<hsize_t>(z), static_cast<hsize_t>(region.y), static_cast<hsize_t>(region.x)},
                      {1, static_cast<hsize_t>(region.height), static_cast<hsize_t>(region.width)}, mem_type, out.data)) {
      throw Error(ErrorKind::kDataLoss, "cannot read slice region (truncated or corrupt file?)", location(z));
    }
    return out;
  }

 private:
  std::string file_, dataset_;
  h5::Handle file_handle_, dataset_handle_;
  VolumeShape shape_;
  int bits_ = 8;
  std::optional<std::array<double, 3>> resolution_;
};

}  // namespace

std::unique_ptr<SliceSource> open_hdf5_volume(const std::string& file, const std::string& dataset,
                                              const SourceOptions& options) {
  return std::make_unique<Hdf5VolumeSource>(file, dataset, options);
}

}  // namespace emt::emio
