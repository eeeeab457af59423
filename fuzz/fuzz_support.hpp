#pragma once
// Shared by every fuzz harness (fuzz/*.cpp).
//
// A harness feeds bytes to one reader and checks the readers' contract: bad
// bytes are refused with an emt::Error that names the file (or the origin
// given), never another exception type, a crash, a hang or a huge allocation.
// Any other exception aborts, which libFuzzer (and the corpus replay test)
// reports as a failure with the message printed first.
//
// The same sources build two ways: with clang and -fsanitize=fuzzer
// (EMT_FUZZ=ON, scripts/fuzz.sh) and, with any compiler, linked to
// replay_main.cpp, which runs every file of a corpus directory through the
// harness once (the fuzz_corpus.* ctests).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <string>

#include "emt/common/error.hpp"

namespace emt::fuzz {

/// A per-process scratch directory (created on first use, removed at exit).
[[nodiscard]] const std::filesystem::path& scratch_dir();

/// Writes the bytes to `path` (replacing it), creating parent directories.
void write_bytes(const std::filesystem::path& path, const std::uint8_t* data, std::size_t size);

/// Prints the message and aborts: a contract violation found by the fuzzer.
[[noreturn]] void fail(const std::string& what);

/// Runs `read`; an emt::Error whose where() contains `file` is the expected
/// refusal of bad bytes. Anything else is a finding.
template <class F>
void expect_clean(F&& read, const std::string& file) {
  try {
    read();
  } catch (const Error& e) {
    if (e.where().find(file) == std::string::npos) {
      fail("emt::Error does not name the file '" + file + "': " + e.what() + " (" + e.where() + ")");
    }
  } catch (const std::exception& e) {
    fail(std::string("exception other than emt::Error: ") + e.what());
  } catch (...) {
    fail("unknown exception");
  }
}

}  // namespace emt::fuzz
