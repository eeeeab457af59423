#include "emt/common/atomic_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "emt/common/error.hpp"

namespace emt {
namespace fs = std::filesystem;

AtomicFile::AtomicFile(fs::path final_path)
    : final_(std::move(final_path)), temp_(final_.string() + ".tmp") {}

AtomicFile::~AtomicFile() {
  if (!committed_) {
    std::error_code ec;
    fs::remove(temp_, ec);  // best effort: never leave a partial file behind
  }
}

void fsync_path(const fs::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) throw Error(ErrorKind::kIo, std::string("cannot open for fsync: ") + std::strerror(errno), path.string());
  const int rc = ::fsync(fd);
  ::close(fd);
  // Some filesystems refuse fsync on directories (EINVAL); that is not data loss.
  if (rc != 0 && errno != EINVAL) {
    throw Error(ErrorKind::kIo, std::string("fsync failed: ") + std::strerror(errno), path.string());
  }
}

void AtomicFile::commit() {
  if (!fs::exists(temp_)) throw Error(ErrorKind::kIo, "temporary file vanished before commit", temp_.string());
  fsync_path(temp_);
  std::error_code ec;
  fs::rename(temp_, final_, ec);
  if (ec) throw Error(ErrorKind::kIo, "cannot rename into place: " + ec.message(), final_.string());
  committed_ = true;
  fsync_path(final_.has_parent_path() ? final_.parent_path() : fs::path("."));
}

void write_file(const fs::path& path, std::string_view contents) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw Error(ErrorKind::kIo, std::string("cannot create file: ") + std::strerror(errno), path.string());
  out.write(contents.data(), static_cast<std::streamsize>(contents.size()));
  out.flush();
  if (!out) throw Error(ErrorKind::kIo, "write failed (disk full or file-size limit?)", path.string());
  out.close();
  if (!out) throw Error(ErrorKind::kIo, "write failed (disk full or file-size limit?)", path.string());
}

void write_file_atomic(const fs::path& path, std::string_view contents) {
  AtomicFile file(path);
  write_file(file.temp_path(), contents);
  file.commit();
}

std::string read_file(const fs::path& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) throw Error(ErrorKind::kNotFound, "no such file", path.string());
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(ErrorKind::kIo, std::string("cannot open: ") + std::strerror(errno), path.string());
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void ensure_writable_directory(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir)) {
    throw Error(ErrorKind::kIo, "cannot create output directory: " + (ec ? ec.message() : std::string("not a directory")), dir.string());
  }
  if (::access(dir.c_str(), W_OK | X_OK) != 0) {
    throw Error(ErrorKind::kIo, "output directory is not writable", dir.string());
  }
}

}  // namespace emt
