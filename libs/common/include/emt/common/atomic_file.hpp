#pragma once
// Atomic output: every file a tool writes appears complete or not at all.
//
// AtomicFile hands out `PATH.tmp`; commit() fsyncs it, renames it onto PATH
// and fsyncs the directory. If the object is destroyed uncommitted (an
// exception, an early return) the temporary is removed.
#include <filesystem>
#include <string>
#include <string_view>

namespace emt {

class AtomicFile {
 public:
  explicit AtomicFile(std::filesystem::path final_path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  /// Where to write the contents before commit().
  [[nodiscard]] const std::filesystem::path& temp_path() const noexcept { return temp_; }
  [[nodiscard]] const std::filesystem::path& final_path() const noexcept { return final_; }
  /// fsync the temporary, rename it onto the final path, fsync the directory.
  void commit();

 private:
  std::filesystem::path final_;
  std::filesystem::path temp_;
  bool committed_ = false;
};

/// Writes `contents` to `path` (typically an AtomicFile's temp_path()); a
/// failed write (disk full, file-size limit) throws kIo naming the file.
void write_file(const std::filesystem::path& path, std::string_view contents);
/// Writes `contents` to `path` atomically (temporary, fsync, rename).
void write_file_atomic(const std::filesystem::path& path, std::string_view contents);
/// Reads a whole file; throws kNotFound / kIo naming the file.
[[nodiscard]] std::string read_file(const std::filesystem::path& path);
/// fsync a file or directory by path (directories: makes renames durable).
void fsync_path(const std::filesystem::path& path);
/// Creates `dir` (and parents) and checks that a file can be created in it;
/// throws kIo naming the directory otherwise.
void ensure_writable_directory(const std::filesystem::path& dir);

}  // namespace emt
