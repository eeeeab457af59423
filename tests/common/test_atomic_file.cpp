#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "emt/common/atomic_file.hpp"
#include "emt/common/error.hpp"
#include "test_support.hpp"

namespace emt {
namespace fs = std::filesystem;

TEST(AtomicFile, UncommittedLeavesNothing) {
  test::ScratchDir dir;
  {
    AtomicFile f(dir / "out.bin");
    std::ofstream(f.temp_path()) << "partial";
    EXPECT_TRUE(fs::exists(f.temp_path()));
  }
  EXPECT_FALSE(fs::exists(dir / "out.bin"));
  EXPECT_FALSE(fs::exists(dir / "out.bin.tmp"));
}

TEST(AtomicFile, CommitRenamesIntoPlace) {
  test::ScratchDir dir;
  write_file_atomic(dir / "a.txt", "hello");
  EXPECT_EQ(read_file(dir / "a.txt"), "hello");
  EXPECT_FALSE(fs::exists(dir / "a.txt.tmp"));
  write_file_atomic(dir / "a.txt", "world");  // replaces
  EXPECT_EQ(read_file(dir / "a.txt"), "world");
}

TEST(AtomicFile, UnwritableDirectoryIsAnIoError) {
  if (::geteuid() == 0) {
    // root ignores permission bits; use a path under a regular file instead.
    test::ScratchDir dir;
    std::ofstream(dir / "file") << "x";
    try {
      ensure_writable_directory(fs::path(dir / "file") / "sub");
      FAIL() << "expected an error";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kIo);
      EXPECT_NE(std::string(e.what()).find("file/sub"), std::string::npos);
    }
    return;
  }
  test::ScratchDir dir;
  fs::create_directories(dir / "ro");
  fs::permissions(dir / "ro", fs::perms::owner_read | fs::perms::owner_exec);
  EXPECT_THROW(ensure_writable_directory(dir / "ro"), Error);
}

}  // namespace emt
