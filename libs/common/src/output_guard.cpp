#include "emt/common/output_guard.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "emt/common/atomic_file.hpp"
#include "emt/common/error.hpp"

namespace emt {
namespace fs = std::filesystem;

namespace {

fs::path canonical_or_absolute(const fs::path& p) {
  std::error_code ec;
  fs::path c = fs::weakly_canonical(p, ec);
  if (ec) c = fs::absolute(p).lexically_normal();
  // "dir/" and "dir" are the same place.
  if (!c.has_filename() && c.has_parent_path()) c = c.parent_path();
  return c;
}

/// True when `inner` equals `outer` or lies below it (both canonical).
bool is_within(const fs::path& inner, const fs::path& outer) {
  auto i = inner.begin();
  for (auto o = outer.begin(); o != outer.end(); ++o, ++i) {
    if (i == inner.end() || *i != *o) return false;
  }
  return true;
}

}  // namespace

void refuse_output_overlapping_inputs(const fs::path& output, const std::vector<fs::path>& inputs, const std::string& what) {
  const fs::path out = canonical_or_absolute(output);
  for (const fs::path& input : inputs) {
    if (input.empty()) continue;
    const fs::path in = canonical_or_absolute(input);
    std::error_code ec;
    if (in == out || fs::equivalent(input, output, ec)) {
      throw Error(ErrorKind::kInvalidArgument, what + " is an input of this run; choose another output", output.string());
    }
    if (is_within(in, out)) {
      throw Error(ErrorKind::kInvalidArgument, what + " contains an input of this run (" + input.string() + "); choose another output",
                  output.string());
    }
    if (is_within(out, in)) {
      throw Error(ErrorKind::kInvalidArgument, what + " lies inside an input of this run (" + input.string() + "); choose another output",
                  output.string());
    }
  }
}

bool is_nonempty_directory(const fs::path& path) {
  std::error_code ec;
  return fs::is_directory(path, ec) && !fs::is_empty(path, ec);
}

void check_output_directory(const fs::path& dir, bool force) {
  std::error_code ec;
  const auto status = fs::status(dir, ec);
  if (!fs::exists(status)) return;
  if (!fs::is_directory(status)) throw Error(ErrorKind::kIo, "output exists and is not a directory; it is not replaced", dir.string());
  if (!force && is_nonempty_directory(dir)) {
    throw Error(ErrorKind::kInvalidArgument,
                "output directory exists and is not empty; give --force to replace the tool's own files in it (nothing else is touched)",
                dir.string());
  }
}

OutputLock::OutputLock(const fs::path& target) {
  if (!acquire(target)) {
    throw Error(ErrorKind::kIo, "output is in use by another running process (its lock is held); wait for it or choose another output",
                target.string());
  }
}

std::unique_ptr<OutputLock> OutputLock::try_lock(const fs::path& target) {
  std::unique_ptr<OutputLock> lock(new OutputLock());
  if (!lock->acquire(target)) return nullptr;
  return lock;
}

bool OutputLock::acquire(const fs::path& target) {
  std::error_code ec;
  const bool dir = fs::is_directory(target, ec);
  for (int attempt = 0; attempt < 3; ++attempt) {
    if (dir) {
      fd_ = ::open(target.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    } else {
      lock_file_ = target;
      lock_file_ += ".lock";
      fd_ = ::open(lock_file_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    }
    if (fd_ < 0) {
      throw Error(ErrorKind::kIo, std::string("cannot open the output's lock: ") + std::strerror(errno),
                  dir ? target.string() : lock_file_.string());
    }
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      const int err = errno;
      ::close(fd_);
      fd_ = -1;
      lock_file_.clear();
      if (err == EWOULDBLOCK) return false;
      throw Error(ErrorKind::kIo, std::string("cannot lock the output: ") + std::strerror(err), target.string());
    }
    if (dir) return true;
    // A lock file unlinked by its previous holder between our open and flock
    // would lock nothing: make sure the path still names the inode we hold.
    struct stat held {}, now {};
    if (::fstat(fd_, &held) == 0 && ::stat(lock_file_.c_str(), &now) == 0 && held.st_ino == now.st_ino && held.st_dev == now.st_dev) return true;
    ::close(fd_);
    fd_ = -1;
  }
  throw Error(ErrorKind::kIo, "cannot lock the output (its lock file keeps changing)", target.string());
}

OutputLock::~OutputLock() {
  if (fd_ < 0) return;
  if (!lock_file_.empty()) ::unlink(lock_file_.c_str());  // unlink while held: no window for a stale path
  ::close(fd_);
}

StagedDirectory::StagedDirectory(fs::path final_dir, bool force, OwnName own)
    : final_(std::move(final_dir)), force_(force), own_(std::move(own)) {
  if (!final_.has_filename() && final_.has_parent_path()) final_ = final_.parent_path();
  temp_ = final_;
  temp_ += ".tmp";
  check_output_directory(final_, force_);
  std::error_code ec;
  // A DIR.tmp beside the target is ours, left by a killed run (the caller
  // holds the output's lock, so no other run is writing it).
  fs::remove_all(temp_, ec);
  ensure_writable_directory(temp_);
}

StagedDirectory::~StagedDirectory() {
  if (committed_) return;
  std::error_code ec;
  fs::remove_all(temp_, ec);
}

void StagedDirectory::commit() {
  for (const auto& entry : fs::recursive_directory_iterator(temp_)) {
    if (entry.is_regular_file()) fsync_path(entry.path());
  }
  std::error_code ec;
  if (fs::exists(final_) && !is_nonempty_directory(final_)) fs::remove(final_, ec);  // an empty directory: nothing to keep
  if (!fs::exists(final_)) {
    fs::rename(temp_, final_, ec);
    if (ec) throw Error(ErrorKind::kIo, "cannot rename into place: " + ec.message(), final_.string());
  } else {
    check_output_directory(final_, force_);
    if (own_) {
      std::vector<fs::path> stale;
      for (const auto& entry : fs::directory_iterator(final_)) {
        if (own_(entry.path().filename().string())) stale.push_back(entry.path());
      }
      for (const auto& p : stale) fs::remove_all(p, ec);
    }
    for (const auto& entry : fs::directory_iterator(temp_)) {
      const fs::path target = final_ / entry.path().filename();
      fs::remove_all(target, ec);
      if (ec) throw Error(ErrorKind::kIo, "cannot replace: " + ec.message(), target.string());
      fs::rename(entry.path(), target, ec);
      if (ec) throw Error(ErrorKind::kIo, "cannot rename into place: " + ec.message(), target.string());
    }
    fs::remove(temp_, ec);
  }
  committed_ = true;
  fsync_path(final_.has_parent_path() ? final_.parent_path() : fs::path("."));
}

bool create_output_directory(const fs::path& dir) {
  std::error_code ec;
  if (fs::exists(dir, ec)) return false;
  ensure_writable_directory(dir);
  return true;
}

void remove_if_empty(const fs::path& dir) noexcept {
  std::error_code ec;
  if (fs::is_directory(dir, ec) && fs::is_empty(dir, ec)) fs::remove(dir, ec);
}

}  // namespace emt
