#pragma once
// Shared helpers for the end-to-end triplet-build tests.
#include <filesystem>
#include <fstream>
#include <map>
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

}  // namespace emt::test
