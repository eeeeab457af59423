// The CLI conventions, tested through a real tool (em-phantom).
#include <fstream>

#include <gtest/gtest.h>

#include "test_support.hpp"

namespace emt {
using test::run_tool;

TEST(Cli, HelpExitsZeroAndListsEveryOption) {
  const auto r = run_tool("em-phantom", "--help");
  EXPECT_EQ(r.exit_code, 0);
  for (const char* opt : {"--help", "--version", "--config", "--threads", "--quiet", "--json", "--out", "--seed",
                          "--size", "--defect-rate", "--defects", "--max-drift", "--format", "--bits"}) {
    EXPECT_NE(r.out.find(opt), std::string::npos) << opt << " missing from --help";
  }
}

TEST(Cli, VersionExitsZero) {
  const auto r = run_tool("em-phantom", "--version");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("em-phantom 0."), std::string::npos);
}

TEST(Cli, UnknownOptionIsUsageErrorNamingIt) {
  const auto r = run_tool("em-phantom", "--bogus-flag 3");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("em-phantom: error:"), std::string::npos);
  EXPECT_NE(r.err.find("bogus-flag"), std::string::npos);
  EXPECT_EQ(test::count_lines(r.err), 1) << r.err;
}

TEST(Cli, MissingRequiredInputIsUsageError) {
  const auto r = run_tool("em-phantom", "--size 3x64x64");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--out"), std::string::npos) << r.err;
}

TEST(Cli, BadValueIsUsageError) {
  const auto r = run_tool("em-phantom", "--out x.h5 --threads 0");
  EXPECT_EQ(r.exit_code, 2);
  const auto r2 = run_tool("em-phantom", "--out x.h5 --size 3x64");
  EXPECT_EQ(r2.exit_code, 2);
  EXPECT_NE(r2.err.find("--size"), std::string::npos);
}

TEST(Cli, ConfigFileSetsOptionsAndCommandLineWins) {
  test::ScratchDir dir;
  std::ofstream(dir / "c.ini") << "size = 3x40x40\nseed = 5\nmax-drift = 1\n";
  const auto a = run_tool("em-phantom", "--config " + (dir / "c.ini") + " --out " + (dir / "a.h5") + " --json --quiet");
  ASSERT_EQ(a.exit_code, 0) << a.err;
  EXPECT_NE(a.out.find("\"shape\":[3,40,40]"), std::string::npos) << a.out;
  const auto b = run_tool("em-phantom", "--config " + (dir / "c.ini") + " --size 4x40x40 --out " + (dir / "b.h5") + " --json --quiet");
  ASSERT_EQ(b.exit_code, 0) << b.err;
  EXPECT_NE(b.out.find("\"shape\":[4,40,40]"), std::string::npos) << b.out;
  const auto c = run_tool("em-phantom", "--config " + (dir / "missing.ini") + " --out " + (dir / "c.h5"));
  EXPECT_EQ(c.exit_code, 1);
  EXPECT_NE(c.err.find("missing.ini"), std::string::npos);
}

TEST(Cli, UnwritableOutputIsOneLineErrorAndNoPartialFile) {
  test::ScratchDir dir;
  const auto r = run_tool("em-phantom", "--size 3x40x40 --out " + (dir / "no/such/dir/v.h5"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("no/such/dir"), std::string::npos);
  EXPECT_EQ(test::count_lines(r.err), 1) << r.err;
}

TEST(Cli, BadValueHoldingABoostPlaceholderIsAnErrorNotAHang) {
  // Boost 1.74 builds this message by substituting the value into a template
  // until no placeholder is left: "%value%" as the value looped forever (found
  // by fuzz/fuzz_ssan_config). po_error_message describes it from its parts.
  const auto r = run_tool("em-phantom", "--out never.h5 --seed %value%");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("seed"), std::string::npos) << r.err;
  EXPECT_EQ(test::count_lines(r.err), 1) << r.err;
}

}  // namespace emt
