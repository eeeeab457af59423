#include "fuzz_support.hpp"

#include <unistd.h>

#include <fstream>
#include <system_error>

namespace emt::fuzz {
namespace fs = std::filesystem;

namespace {
struct Scratch {
  fs::path path;
  Scratch() {
    path = fs::temp_directory_path() / ("emt-fuzz-" + std::to_string(::getpid()));
    fs::create_directories(path);
  }
  ~Scratch() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};
}  // namespace

const fs::path& scratch_dir() {
  static const Scratch scratch;
  return scratch.path;
}

void write_bytes(const fs::path& path, const std::uint8_t* data, std::size_t size) {
  fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  if (!out) fail("cannot write the fuzz input to " + path.string());
}

void fail(const std::string& what) {
  std::fprintf(stderr, "fuzz: contract violation: %s\n", what.c_str());
  std::fflush(stderr);
  std::abort();
}

}  // namespace emt::fuzz
