#pragma once
// Thin RAII and error helpers over the HDF5 C API, shared by emio and the
// triplet shard IO. All HDF5 calls in emtriplet hold hdf5_lock(): Debian's
// serial HDF5 is not built thread-safe.
#include <hdf5.h>

#include <mutex>
#include <string>
#include <vector>

namespace emt::h5 {

/// Serialises every HDF5 call in the process (recursive: helpers nest).
[[nodiscard]] std::unique_lock<std::recursive_mutex> lock();

/// Owns an hid_t and closes it with the matching H5*close.
class Handle {
 public:
  Handle() = default;
  explicit Handle(hid_t id) : id_(id) {}
  ~Handle() { reset(); }
  Handle(Handle&& o) noexcept : id_(o.id_) { o.id_ = H5I_INVALID_HID; }
  Handle& operator=(Handle&& o) noexcept {
    if (this != &o) { reset(); id_ = o.id_; o.id_ = H5I_INVALID_HID; }
    return *this;
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  [[nodiscard]] hid_t get() const noexcept { return id_; }
  [[nodiscard]] bool valid() const noexcept { return id_ >= 0; }
  void reset() noexcept;

 private:
  hid_t id_ = H5I_INVALID_HID;
};

/// Turns HDF5's automatic error stack printing off for the process; our
/// errors say what went wrong in one line instead.
void silence_errors();

/// True when the file starts with the HDF5 signature.
[[nodiscard]] bool has_hdf5_signature(const std::string& path);

/// Opens a file read-only; throws kNotFound / kDataLoss naming it.
[[nodiscard]] Handle open_file_readonly(const std::string& path);
/// True when `path` (like "volumes/raw") names an existing object.
[[nodiscard]] bool exists(hid_t loc, const std::string& path);
/// File creation with object time tracking off, so the same content gives
/// byte-identical files.
[[nodiscard]] Handle create_file(const std::string& path);
/// A link creation plist that creates missing intermediate groups (with
/// default, time-stamped group properties: prefer ensure_parent_groups()).
[[nodiscard]] Handle link_create_plist();
/// Creates the missing parent groups of `path` (like "meta" for "meta/z")
/// with timestamps off, so files stay byte-identical.
void ensure_parent_groups(hid_t loc, const std::string& path);
/// A dataset creation plist with timestamps off (deterministic files).
[[nodiscard]] Handle dataset_create_plist();

/// Writes a scalar or 1-D attribute.
void write_string_attribute(hid_t obj, const std::string& name, const std::string& value);
void write_double_array_attribute(hid_t obj, const std::string& name, const std::vector<double>& values);
void write_int_attribute(hid_t obj, const std::string& name, long long value);
/// Reads an attribute if present; empty / false otherwise.
[[nodiscard]] bool read_double_array_attribute(hid_t obj, const std::string& name, std::vector<double>& out);
[[nodiscard]] bool read_string_attribute(hid_t obj, const std::string& name, std::string& out);
/// False when absent, not a scalar integer, or unreadable.
[[nodiscard]] bool read_int_attribute(hid_t obj, const std::string& name, long long& out);

/// Item `index` along the first axis of `dataset` (a slice of a volume, a
/// sample of a shard): the hyperslab [index, 0, ...] of extent [1, rest...],
/// moved between the file and a contiguous buffer of that extent in
/// `mem_type`. False when HDF5 fails (the caller names the file).
[[nodiscard]] bool read_leading(hid_t dataset, hsize_t index, const std::vector<hsize_t>& rest, hid_t mem_type, void* out);
[[nodiscard]] bool write_leading(hid_t dataset, hsize_t index, const std::vector<hsize_t>& rest, hid_t mem_type, const void* in);
/// The box [start, start + count) of `dataset` read into a contiguous buffer
/// of extent `count` in `mem_type` (a region of a slice: count {1, h, w}).
/// False when HDF5 fails (the caller names the file).
[[nodiscard]] bool read_box(hid_t dataset, const std::vector<hsize_t>& start, const std::vector<hsize_t>& count, hid_t mem_type,
                            void* out);

}  // namespace emt::h5
