#include "test_support.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>

namespace emt::test {
namespace fs = std::filesystem;

ScratchDir::ScratchDir(const std::string& tag) {
  static std::atomic<int> counter{0};
  path_ = fs::temp_directory_path() /
          (tag + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) + "-" + std::to_string(std::random_device{}()));
  fs::create_directories(path_);
}

ScratchDir::~ScratchDir() {
  std::error_code ec;
  fs::permissions(path_, fs::perms::owner_all, fs::perm_options::add, ec);
  fs::remove_all(path_, ec);
}

std::string tool_path(const std::string& tool) { return std::string(EMT_BIN_DIR) + "/" + tool; }

RunResult run_tool(const std::string& tool, const std::string& args) { return run_command(tool_path(tool) + " " + args); }

RunResult run_command(const std::string& command) {
  ScratchDir capture("emt-run");
  const std::string out = (capture.path() / "out").string(), err = (capture.path() / "err").string();
  const std::string cmd = command + " >" + out + " 2>" + err;
  RunResult r;
  const int status = std::system(cmd.c_str());
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  auto slurp = [](const std::string& p) {
    std::ifstream in(p);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  };
  r.out = slurp(out);
  r.err = slurp(err);
  return r;
}

std::string shared_data(const std::string& name) {
  const fs::path p = fs::path(EMT_SHARED_DATA) / name;
  return fs::is_directory(p) ? p.string() : std::string();
}

int count_lines(const std::string& s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  if (!s.empty() && s.back() != '\n') ++n;
  return n;
}

}  // namespace emt::test
