#include "emt/emio/hdf5.hpp"

#include <cstring>
#include <filesystem>
#include <fstream>

#include "emt/common/error.hpp"

namespace emt::h5 {

namespace {
// HDF5 closes whatever is still open from an atexit handler. A file whose
// final flush failed (disk full, file-size limit) cannot be closed and made
// that handler crash (SIGSEGV in H5F__close_cb) after the tool had reported
// the error. Every id is closed by its Handle; the only files still open at
// exit are such failed temporaries, already unlinked, so the handler is off.
[[maybe_unused]] const bool kNoAtexitClose = [] {
  H5dont_atexit();
  return true;
}();
}  // namespace

std::unique_lock<std::recursive_mutex> lock() {
  static std::recursive_mutex mutex;
  return std::unique_lock<std::recursive_mutex>(mutex);
}

void Handle::reset() noexcept {
  if (id_ < 0) return;
  auto guard = lock();
  switch (H5Iget_type(id_)) {
    case H5I_FILE: H5Fclose(id_); break;
    case H5I_GROUP: H5Gclose(id_); break;
    case H5I_DATASET: H5Dclose(id_); break;
    case H5I_DATASPACE: H5Sclose(id_); break;
    case H5I_DATATYPE: H5Tclose(id_); break;
    case H5I_ATTR: H5Aclose(id_); break;
    case H5I_GENPROP_LST: H5Pclose(id_); break;
    default: break;
  }
  id_ = H5I_INVALID_HID;
}

void silence_errors() {
  auto guard = lock();
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
}

bool has_hdf5_signature(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char sig[8] = {};
  in.read(sig, 8);
  return in.gcount() == 8 && std::memcmp(sig, "\x89HDF\r\n\x1a\n", 8) == 0;
}

Handle open_file_readonly(const std::string& path) {
  if (!std::filesystem::exists(path)) throw Error(ErrorKind::kNotFound, "no such file", path);
  silence_errors();
  auto guard = lock();
  if (H5Fis_hdf5(path.c_str()) <= 0) {
    throw Error(ErrorKind::kDataLoss, "not a readable HDF5 file (truncated or corrupt?)", path);
  }
  Handle f(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
  if (!f.valid()) throw Error(ErrorKind::kDataLoss, "cannot open HDF5 file (truncated or corrupt?)", path);
  return f;
}

bool exists(hid_t loc, const std::string& path) {
  auto guard = lock();
  // Check each component: H5Lexists fails (not false) when a parent is missing.
  std::string partial;
  std::size_t start = 0;
  while (start < path.size()) {
    std::size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    if (end > start) {
      partial += (partial.empty() ? "" : "/") + path.substr(start, end - start);
      if (H5Lexists(loc, partial.c_str(), H5P_DEFAULT) <= 0) return false;
    }
    start = end + 1;
  }
  return !partial.empty();
}

Handle create_file(const std::string& path) {
  silence_errors();
  auto guard = lock();
  Handle fcpl(H5Pcreate(H5P_FILE_CREATE));
  H5Pset_obj_track_times(fcpl.get(), 0);  // the root group's header holds no timestamps
  Handle fapl(H5Pcreate(H5P_FILE_ACCESS));
  // Pin the format so files do not depend on library defaults.
  H5Pset_libver_bounds(fapl.get(), H5F_LIBVER_V18, H5F_LIBVER_V18);
  Handle f(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, fcpl.get(), fapl.get()));
  if (!f.valid()) throw Error(ErrorKind::kIo, "cannot create HDF5 file", path);
  return f;
}

Handle link_create_plist() {
  auto guard = lock();
  Handle lcpl(H5Pcreate(H5P_LINK_CREATE));
  H5Pset_create_intermediate_group(lcpl.get(), 1);
  return lcpl;
}

void ensure_parent_groups(hid_t loc, const std::string& path) {
  auto guard = lock();
  std::size_t pos = 0;
  while ((pos = path.find('/', pos + 1)) != std::string::npos) {
    const std::string parent = path.substr(0, pos);
    if (parent.empty() || parent == "/" || exists(loc, parent)) continue;
    Handle gcpl(H5Pcreate(H5P_GROUP_CREATE));
    H5Pset_obj_track_times(gcpl.get(), 0);
    Handle g(H5Gcreate2(loc, parent.c_str(), H5P_DEFAULT, gcpl.get(), H5P_DEFAULT));
    if (!g.valid()) throw Error(ErrorKind::kIo, "cannot create group " + parent);
  }
}

Handle dataset_create_plist() {
  auto guard = lock();
  Handle dcpl(H5Pcreate(H5P_DATASET_CREATE));
  H5Pset_obj_track_times(dcpl.get(), 0);
  return dcpl;
}

void write_string_attribute(hid_t obj, const std::string& name, const std::string& value) {
  auto guard = lock();
  Handle type(H5Tcopy(H5T_C_S1));
  H5Tset_size(type.get(), value.empty() ? 1 : value.size());
  H5Tset_strpad(type.get(), H5T_STR_NULLPAD);
  H5Tset_cset(type.get(), H5T_CSET_UTF8);
  Handle space(H5Screate(H5S_SCALAR));
  Handle attr(H5Acreate2(obj, name.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT));
  if (!attr.valid() || H5Awrite(attr.get(), type.get(), value.empty() ? "" : value.data()) < 0) {
    throw Error(ErrorKind::kIo, "cannot write attribute " + name);
  }
}

void write_double_array_attribute(hid_t obj, const std::string& name, const std::vector<double>& values) {
  auto guard = lock();
  const hsize_t n = values.size();
  Handle space(H5Screate_simple(1, &n, nullptr));
  Handle attr(H5Acreate2(obj, name.c_str(), H5T_IEEE_F64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT));
  if (!attr.valid() || H5Awrite(attr.get(), H5T_NATIVE_DOUBLE, values.data()) < 0) {
    throw Error(ErrorKind::kIo, "cannot write attribute " + name);
  }
}

void write_int_attribute(hid_t obj, const std::string& name, long long value) {
  auto guard = lock();
  Handle space(H5Screate(H5S_SCALAR));
  Handle attr(H5Acreate2(obj, name.c_str(), H5T_STD_I64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT));
  if (!attr.valid() || H5Awrite(attr.get(), H5T_NATIVE_LLONG, &value) < 0) {
    throw Error(ErrorKind::kIo, "cannot write attribute " + name);
  }
}

bool read_double_array_attribute(hid_t obj, const std::string& name, std::vector<double>& out) {
  auto guard = lock();
  if (H5Aexists(obj, name.c_str()) <= 0) return false;
  Handle attr(H5Aopen(obj, name.c_str(), H5P_DEFAULT));
  Handle space(H5Aget_space(attr.get()));
  const hssize_t n = H5Sget_simple_extent_npoints(space.get());
  if (n <= 0) return false;
  out.resize(static_cast<std::size_t>(n));
  return H5Aread(attr.get(), H5T_NATIVE_DOUBLE, out.data()) >= 0;
}

bool read_string_attribute(hid_t obj, const std::string& name, std::string& out) {
  auto guard = lock();
  if (H5Aexists(obj, name.c_str()) <= 0) return false;
  Handle attr(H5Aopen(obj, name.c_str(), H5P_DEFAULT));
  Handle type(H5Aget_type(attr.get()));
  if (H5Tget_class(type.get()) != H5T_STRING) return false;
  if (H5Tis_variable_str(type.get()) > 0) {
    char* buf = nullptr;
    Handle memtype(H5Tcopy(H5T_C_S1));
    H5Tset_size(memtype.get(), H5T_VARIABLE);
    if (H5Aread(attr.get(), memtype.get(), &buf) < 0) return false;
    out = buf ? buf : "";
    H5free_memory(buf);
    return true;
  }
  const std::size_t size = H5Tget_size(type.get());
  std::string buf(size, '\0');
  if (H5Aread(attr.get(), type.get(), buf.data()) < 0) return false;
  out = buf.substr(0, buf.find('\0'));
  return true;
}

bool read_int_attribute(hid_t obj, const std::string& name, long long& out) {
  auto guard = lock();
  if (H5Aexists(obj, name.c_str()) <= 0) return false;
  Handle attr(H5Aopen(obj, name.c_str(), H5P_DEFAULT));
  Handle type(H5Aget_type(attr.get()));
  Handle space(H5Aget_space(attr.get()));
  if (H5Tget_class(type.get()) != H5T_INTEGER || H5Sget_simple_extent_npoints(space.get()) != 1) return false;
  return H5Aread(attr.get(), H5T_NATIVE_LLONG, &out) >= 0;
}

namespace {

/// The file and memory dataspaces of the box [start, start + count).
struct Box {
  Handle file_space, mem_space;
  Box(hid_t dataset, const std::vector<hsize_t>& start, const std::vector<hsize_t>& count) {
    file_space = Handle(H5Dget_space(dataset));
    H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr);
    mem_space = Handle(H5Screate_simple(static_cast<int>(count.size()), count.data(), nullptr));
  }
  /// Item `index` along the first axis: [index, 0, ...] of extent [1, rest...].
  static Box leading(hid_t dataset, hsize_t index, const std::vector<hsize_t>& rest) {
    std::vector<hsize_t> start(rest.size() + 1, 0), count{1};
    start[0] = index;
    count.insert(count.end(), rest.begin(), rest.end());
    return Box(dataset, start, count);
  }
};

}  // namespace

bool read_leading(hid_t dataset, hsize_t index, const std::vector<hsize_t>& rest, hid_t mem_type, void* out) {
  auto guard = lock();
  const Box slab = Box::leading(dataset, index, rest);
  return H5Dread(dataset, mem_type, slab.mem_space.get(), slab.file_space.get(), H5P_DEFAULT, out) >= 0;
}

bool write_leading(hid_t dataset, hsize_t index, const std::vector<hsize_t>& rest, hid_t mem_type, const void* in) {
  auto guard = lock();
  const Box slab = Box::leading(dataset, index, rest);
  return H5Dwrite(dataset, mem_type, slab.mem_space.get(), slab.file_space.get(), H5P_DEFAULT, in) >= 0;
}

bool read_box(hid_t dataset, const std::vector<hsize_t>& start, const std::vector<hsize_t>& count, hid_t mem_type, void* out) {
  auto guard = lock();
  const Box box(dataset, start, count);
  return H5Dread(dataset, mem_type, box.mem_space.get(), box.file_space.get(), H5P_DEFAULT, out) >= 0;
}

}  // namespace emt::h5
