#include "emt/triplets/shard.hpp"

#include <cstring>
#include <filesystem>
#include <mutex>

#include <fmt/format.h>

#include "emt/common/atomic_file.hpp"
#include "emt/common/error.hpp"
#include "emt/emio/hdf5.hpp"

namespace emt::triplets {
namespace h5 = emt::h5;

namespace {

template <class T>
void write_array(hid_t file, const std::string& name, hid_t file_type, hid_t mem_type, const std::vector<hsize_t>& dims,
                 const std::vector<T>& data, const std::string& where) {
  h5::Handle space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr));
  h5::Handle dcpl = h5::dataset_create_plist();
  h5::ensure_parent_groups(file, name);
  h5::Handle d(H5Dcreate2(file, name.c_str(), file_type, space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT));
  if (!d.valid() || (!data.empty() && H5Dwrite(d.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data.data()) < 0)) {
    throw Error(ErrorKind::kIo, "cannot write " + name + " (disk full?)", where);
  }
}

}  // namespace

void write_shard(const std::string& path, const std::vector<TripletSample>& samples, const ShardAttributes& attr) {
  if (attr.tile_size < 1) throw Error(ErrorKind::kInvalidArgument, fmt::format("tile size {} must be >= 1", attr.tile_size), path);
  AtomicFile out(path);
  const std::string tmp = out.temp_path().string();
  const auto n = static_cast<hsize_t>(samples.size());
  const auto t = static_cast<hsize_t>(attr.tile_size);
  {
    h5::Handle file = h5::create_file(tmp);
    auto guard = h5::lock();
    // /triplets, one chunk per sample.
    {
      const hsize_t dims[4] = {n, 3, t, t}, chunk[4] = {1, 3, t, t};
      h5::Handle space(H5Screate_simple(4, dims, nullptr));
      h5::Handle dcpl = h5::dataset_create_plist();
      if (n > 0) H5Pset_chunk(dcpl.get(), 4, chunk);
      if (attr.compress && n > 0) H5Pset_deflate(dcpl.get(), 4);
      h5::Handle d(H5Dcreate2(file.get(), "triplets", H5T_STD_U8LE, space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT));
      if (!d.valid()) throw Error(ErrorKind::kIo, "cannot create /triplets", path);
      // One contiguous buffer and one H5Dwrite: HDF5 splits it into chunks.
      std::vector<std::uint8_t> buf(n * 3 * t * t);
      for (hsize_t i = 0; i < n; ++i) {
        for (int s = 0; s < 3; ++s) {
          const cv::Mat& m = samples[i].slices[static_cast<std::size_t>(s)];
          if (m.type() != CV_8UC1 || m.rows != attr.tile_size || m.cols != attr.tile_size) {
            throw Error(ErrorKind::kInvalidArgument, fmt::format("sample {} slice {} is not a {}x{} uint8 tile", i, s, t, t), path);
          }
          std::uint8_t* dst = buf.data() + ((i * 3 + static_cast<hsize_t>(s)) * t) * t;
          for (int r = 0; r < m.rows; ++r) std::memcpy(dst + static_cast<hsize_t>(r) * t, m.ptr(r), t);
        }
      }
      if (n > 0 && H5Dwrite(d.get(), H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data()) < 0) {
        throw Error(ErrorKind::kIo, "cannot write triplets (disk full?)", path);
      }
    }
    // /meta
    std::vector<const char*> sources;
    std::vector<std::int64_t> z, yx;
    std::vector<float> shift, ncc, sharp;
    for (const auto& s : samples) {
      sources.push_back(s.source.c_str());
      z.push_back(s.z);
      yx.insert(yx.end(), {s.y, s.x});
      shift.insert(shift.end(), s.shift.begin(), s.shift.end());
      ncc.insert(ncc.end(), s.ncc.begin(), s.ncc.end());
      sharp.insert(sharp.end(), s.sharpness.begin(), s.sharpness.end());
    }
    {
      h5::Handle vlen(H5Tcopy(H5T_C_S1));
      H5Tset_size(vlen.get(), H5T_VARIABLE);
      H5Tset_cset(vlen.get(), H5T_CSET_UTF8);
      write_array(file.get(), "meta/source", vlen.get(), vlen.get(), {n}, sources, path);
    }
    write_array(file.get(), "meta/z", H5T_STD_I64LE, H5T_NATIVE_INT64, {n}, z, path);
    write_array(file.get(), "meta/yx", H5T_STD_I64LE, H5T_NATIVE_INT64, {n, 2}, yx, path);
    write_array(file.get(), "meta/shift", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, {n, 2, 2}, shift, path);
    write_array(file.get(), "meta/ncc", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, {n, 2}, ncc, path);
    write_array(file.get(), "meta/sharpness", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, {n, 3}, sharp, path);
    h5::write_int_attribute(file.get(), "tile_size", attr.tile_size);
    h5::write_string_attribute(file.get(), "spec", attr.spec);
    h5::write_string_attribute(file.get(), "emtriplet_version", attr.version);
    if (!attr.command.empty()) h5::write_string_attribute(file.get(), "command", attr.command);
    if (H5Fflush(file.get(), H5F_SCOPE_GLOBAL) < 0) throw Error(ErrorKind::kIo, "flush failed (disk full or file-size limit?)", path);
  }
  out.commit();
}

struct ShardReader::Impl {
  h5::Handle file, triplets;
  std::once_flag meta_once;
  std::vector<TripletSample> meta;  // cached by read()
};

ShardReader::ShardReader(const std::string& path) : path_(path), impl_(new Impl) {
  try {
    impl_->file = h5::open_file_readonly(path);
    auto guard = h5::lock();
    for (const char* name : {"triplets", "meta/source", "meta/z", "meta/yx", "meta/shift", "meta/ncc", "meta/sharpness"}) {
      if (!h5::exists(impl_->file.get(), name)) throw Error(ErrorKind::kInvalidData, std::string("not a triplet shard: missing /") + name, path);
    }
    impl_->triplets = h5::Handle(H5Dopen2(impl_->file.get(), "triplets", H5P_DEFAULT));
    h5::Handle space(H5Dget_space(impl_->triplets.get()));
    hsize_t dims[4] = {};
    if (H5Sget_simple_extent_ndims(space.get()) != 4) throw Error(ErrorKind::kInvalidData, "/triplets must have rank 4", path);
    H5Sget_simple_extent_dims(space.get(), dims, nullptr);
    h5::Handle type(H5Dget_type(impl_->triplets.get()));
    if (dims[1] != 3 || dims[2] != dims[3] || H5Tget_class(type.get()) != H5T_INTEGER || H5Tget_size(type.get()) != 1) {
      throw Error(ErrorKind::kInvalidData, "/triplets must be uint8 [N, 3, T, T]", path);
    }
    count_ = static_cast<std::int64_t>(dims[0]);
    tile_ = static_cast<int>(dims[2]);
    // The attribute and the dataset's shape both say the tile size: they must agree.
    long long attribute_tile = 0;
    if (h5::read_int_attribute(impl_->file.get(), "tile_size", attribute_tile) && attribute_tile != tile_) {
      throw Error(ErrorKind::kInvalidData, fmt::format("tile_size attribute {} disagrees with /triplets' {}x{} tiles", attribute_tile, tile_, tile_), path);
    }
    attributes_.tile_size = tile_;
    (void)h5::read_string_attribute(impl_->file.get(), "spec", attributes_.spec);
    (void)h5::read_string_attribute(impl_->file.get(), "emtriplet_version", attributes_.version);
    (void)h5::read_string_attribute(impl_->file.get(), "command", attributes_.command);
  } catch (...) {
    delete impl_;
    throw;
  }
}

ShardReader::~ShardReader() { delete impl_; }

void ShardReader::read_pixels(std::int64_t i, std::uint8_t* out) const {
  if (i < 0 || i >= count_) throw Error(ErrorKind::kInvalidArgument, fmt::format("sample {} out of range [0, {})", i, count_), path_);
  const auto t = static_cast<hsize_t>(tile_);
  if (!h5::read_leading(impl_->triplets.get(), static_cast<hsize_t>(i), {3, t, t}, H5T_NATIVE_UINT8, out)) {
    throw Error(ErrorKind::kDataLoss, fmt::format("cannot read triplet {} (truncated or corrupt?)", i), path_);
  }
}

namespace {
template <class T>
std::vector<T> read_all(hid_t file, const char* name, hid_t mem_type, std::size_t expected, const std::string& path) {
  std::vector<T> v(expected);
  h5::Handle d(H5Dopen2(file, name, H5P_DEFAULT));
  h5::Handle space(H5Dget_space(d.get()));
  if (static_cast<std::size_t>(H5Sget_simple_extent_npoints(space.get())) != expected) {
    throw Error(ErrorKind::kInvalidData, std::string("/") + name + " has the wrong number of entries", path);
  }
  if (expected > 0 && H5Dread(d.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()) < 0) {
    throw Error(ErrorKind::kDataLoss, std::string("cannot read /") + name, path);
  }
  return v;
}
}  // namespace

std::vector<TripletSample> ShardReader::read_meta() const {
  auto guard = h5::lock();
  const auto n = static_cast<std::size_t>(count_);
  const hid_t f = impl_->file.get();
  const auto z = read_all<std::int64_t>(f, "meta/z", H5T_NATIVE_INT64, n, path_);
  const auto yx = read_all<std::int64_t>(f, "meta/yx", H5T_NATIVE_INT64, 2 * n, path_);
  const auto shift = read_all<float>(f, "meta/shift", H5T_NATIVE_FLOAT, 4 * n, path_);
  const auto ncc = read_all<float>(f, "meta/ncc", H5T_NATIVE_FLOAT, 2 * n, path_);
  const auto sharp = read_all<float>(f, "meta/sharpness", H5T_NATIVE_FLOAT, 3 * n, path_);
  std::vector<char*> names(n, nullptr);
  {
    h5::Handle d(H5Dopen2(f, "meta/source", H5P_DEFAULT));
    h5::Handle vlen(H5Tcopy(H5T_C_S1));
    H5Tset_size(vlen.get(), H5T_VARIABLE);
    H5Tset_cset(vlen.get(), H5T_CSET_UTF8);  // HDF5 does not convert between ASCII and UTF-8
    if (n > 0 && H5Dread(d.get(), vlen.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, names.data()) < 0) {
      throw Error(ErrorKind::kDataLoss, "cannot read /meta/source", path_);
    }
  }
  std::vector<TripletSample> out(n);
  for (std::size_t i = 0; i < n; ++i) {
    out[i].source = names[i] ? names[i] : "";
    H5free_memory(names[i]);
    out[i].z = z[i];
    out[i].y = yx[2 * i];
    out[i].x = yx[2 * i + 1];
    for (int k = 0; k < 4; ++k) out[i].shift[static_cast<std::size_t>(k)] = shift[4 * i + static_cast<std::size_t>(k)];
    out[i].ncc = {ncc[2 * i], ncc[2 * i + 1]};
    out[i].sharpness = {sharp[3 * i], sharp[3 * i + 1], sharp[3 * i + 2]};
  }
  return out;
}

TripletSample ShardReader::read(std::int64_t i) const {
  if (i < 0 || i >= count_) throw Error(ErrorKind::kInvalidArgument, fmt::format("sample {} out of range [0, {})", i, count_), path_);
  std::call_once(impl_->meta_once, [&] { impl_->meta = read_meta(); });
  TripletSample s = impl_->meta[static_cast<std::size_t>(i)];
  std::vector<std::uint8_t> buf(static_cast<std::size_t>(3 * tile_ * tile_));
  read_pixels(i, buf.data());
  for (int k = 0; k < 3; ++k) {
    s.slices[static_cast<std::size_t>(k)] = cv::Mat(tile_, tile_, CV_8UC1, buf.data() + static_cast<std::ptrdiff_t>(k) * tile_ * tile_).clone();
  }
  return s;
}

}  // namespace emt::triplets
