#pragma once
// Helpers shared by the test suites: scratch directories, running the real
// tools as a user would, and locating the real EM data in ../shared/data.
#include <filesystem>
#include <string>

#include <gtest/gtest.h>

namespace emt::test {

/// A fresh directory removed at destruction.
class ScratchDir {
 public:
  explicit ScratchDir(const std::string& tag = "emt");
  ~ScratchDir();
  [[nodiscard]] const std::filesystem::path& path() const { return path_; }
  [[nodiscard]] std::string operator/(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

struct RunResult {
  int exit_code = -1;
  std::string out, err;
};
/// Runs `TOOL ARGS` from the build's apps/ directory (shell-quoted by caller).
[[nodiscard]] RunResult run_tool(const std::string& tool, const std::string& args);
/// Runs a shell command line (a launcher before a tool: mpirun -n 2 PATH ...).
[[nodiscard]] RunResult run_command(const std::string& command);
/// The path of a built tool.
[[nodiscard]] std::string tool_path(const std::string& tool);

/// Path of a real stack under ../shared/data, or empty when absent.
[[nodiscard]] std::string shared_data(const std::string& name);

/// Number of lines in a string (stderr error messages must be one line).
[[nodiscard]] int count_lines(const std::string& s);

}  // namespace emt::test

/// Skips the current test with a clear message when the real data is absent.
#define EMT_REQUIRE_SHARED_DATA(var, name)                                                              \
  const std::string var = ::emt::test::shared_data(name);                                              \
  if (var.empty()) GTEST_SKIP() << "real data ../shared/data/" << name << " is absent (fresh clone outside the workspace?)"
