#pragma once
// Shared helpers for the end-to-end triplet-build tests.
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <cstdlib>
#include <string>
#include <vector>

#include "emt/common/sha256.hpp"
#include "test_support.hpp"

namespace emt::test {

/// Writes a spec with the given extra lines and returns its path.
inline std::string write_spec(const ScratchDir& dir, const std::string& name, const std::string& body) {
  const std::string path = dir / name;
  std::ofstream(path) << body;
  return path;
}

/// SHA-256 of every regular file in a directory, by name.
inline std::map<std::string, std::string> digest_dir(const std::filesystem::path& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.is_regular_file()) out[e.path().filename().string()] = sha256_file(e.path());
  }
  return out;
}

inline bool has_shards(const std::filesystem::path& dir) {
  if (!std::filesystem::exists(dir)) return false;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    const std::string n = e.path().filename().string();
    if (n.rfind("shard-", 0) == 0 || n == "manifest.json") return true;
  }
  return false;
}

#ifdef EMT_TEST_MPIEXEC
/// `mpirun -n N triplet-build ARGS` as CI can run it: as root, more ranks than
/// cores, shared memory between ranks on one machine only (no network probing,
/// no single-copy mechanism: containers often forbid the ptrace it needs). In
/// the sanitizer pass, OpenMPI's own leaks are suppressed (openmpi.lsan.supp
/// says which and why); every other finding still fails the test.
inline RunResult mpirun(int ranks, const std::string& args) {
  std::ostringstream cmd;
  cmd << "LSAN_OPTIONS=suppressions=" << EMT_SOURCE_DIR << "/tests/triplets/openmpi.lsan.supp";
  if (const char* asan = std::getenv("ASAN_OPTIONS")) cmd << " ASAN_OPTIONS=" << asan << ":fast_unwind_on_malloc=0";
  cmd << " " << EMT_TEST_MPIEXEC << " --allow-run-as-root --oversubscribe --mca btl self,vader --mca btl_vader_single_copy_mechanism none -n "
      << ranks << " " << tool_path("triplet-build") << " " << args;
  return run_command(cmd.str());
}
#endif

}  // namespace emt::test
