#pragma once
// The output-safety rule every tool follows (docs/cli.md, "Outputs"):
//
// 1. An output never is, contains or lies inside one of the run's inputs
//    (compared as canonical paths, so links and `..` do not slip through).
// 2. An existing non-empty directory is written into only with --force, and
//    even then only the names the tool writes are replaced: a directory the
//    tool did not create is never removed wholesale.
// 3. Whole outputs are written beside the target (FILE.tmp, DIR.tmp/) and
//    renamed into place when complete (see atomic_file.hpp for files).
// 4. Every output holds an advisory lock (flock) while the tool runs, so a
//    second run on the same output fails at once with one line instead of
//    the two interleaving their files.
#include <filesystem>
#include <memory>
#include <functional>
#include <string>
#include <vector>

namespace emt {

/// Throws kInvalidArgument (exit 2) when `output` is, contains or lies inside
/// one of `inputs`. `what` names the output in the message ("--out").
void refuse_output_overlapping_inputs(const std::filesystem::path& output, const std::vector<std::filesystem::path>& inputs,
                                      const std::string& what = "output");

/// True when `path` is an existing directory with at least one entry.
[[nodiscard]] bool is_nonempty_directory(const std::filesystem::path& path);

/// Rule 2 before any work: an existing non-directory is refused (kIo: a
/// directory output never replaces a file), an existing non-empty directory
/// needs `force` (kInvalidArgument).
void check_output_directory(const std::filesystem::path& dir, bool force);

/// Rule 4: an exclusive advisory lock held for the object's life. An existing
/// directory is locked itself; anything else (a file output, a directory not
/// created yet) through `TARGET.lock` beside it, removed on release. Throws
/// kIo at once when another process holds the lock.
class OutputLock {
 public:
  explicit OutputLock(const std::filesystem::path& target);
  ~OutputLock();
  OutputLock(const OutputLock&) = delete;
  OutputLock& operator=(const OutputLock&) = delete;
  /// The lock, or nullptr when another process holds it (other failures throw).
  [[nodiscard]] static std::unique_ptr<OutputLock> try_lock(const std::filesystem::path& target);

 private:
  OutputLock() = default;
  /// False when another process holds the lock.
  bool acquire(const std::filesystem::path& target);
  int fd_ = -1;
  std::filesystem::path lock_file_;  // empty when the directory itself is locked
};

/// Rules 2 and 3 for a directory output: contents are written into
/// `DIR.tmp/` and moved into place by commit(). When DIR does not exist (or
/// is empty) it is renamed; otherwise (only allowed with `force`) each
/// top-level entry of DIR.tmp replaces the entry of the same name in DIR, the
/// entries `own` recognises as the tool's kind of file (say `0012.png` of an
/// image stack) are removed first so no stale one stays mixed in, and
/// everything else in DIR is left alone. Destroyed uncommitted (an error, a
/// signal), the temporary is removed.
class StagedDirectory {
 public:
  using OwnName = std::function<bool(const std::string& name)>;
  StagedDirectory(std::filesystem::path final_dir, bool force, OwnName own = {});
  ~StagedDirectory();
  StagedDirectory(const StagedDirectory&) = delete;
  StagedDirectory& operator=(const StagedDirectory&) = delete;

  [[nodiscard]] const std::filesystem::path& path() const noexcept { return temp_; }
  [[nodiscard]] const std::filesystem::path& final_path() const noexcept { return final_; }
  void commit();

 private:
  std::filesystem::path final_, temp_;
  bool force_, committed_ = false;
  OwnName own_;
};

/// Creates `dir` when missing and reports whether this call created it, so
/// that error paths can remove a directory the tool made and left empty.
[[nodiscard]] bool create_output_directory(const std::filesystem::path& dir);
/// Removes `dir` if it is empty (best effort; errors ignored).
void remove_if_empty(const std::filesystem::path& dir) noexcept;

}  // namespace emt
