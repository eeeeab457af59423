// triplet-build over many processes: as a job array (--part I/N then
// --merge) and under mpirun, the bytes of a single-process build (every
// shard, manifest.json, rejected.csv) for any N and thread count, including a
// part interrupted (or killed) and resumed.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "build_fixture.hpp"
#include "emt/common/atomic_file.hpp"
#include "emt/common/output_guard.hpp"
#include "emt/phantom/phantom.hpp"
#include "emt/triplets/shard.hpp"
#include "emt/triplets/shard_directory.hpp"

namespace emt::test {
namespace fs = std::filesystem;

class BuildParts : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new ScratchDir("emt-parts");
    phantom::PhantomOptions o;
    o.depth = 11;
    o.height = o.width = 320;
    o.cell_size = 48;
    o.seed = 8;
    o.defects = {{3, phantom::DefectKind::kFold}, {6, phantom::DefectKind::kBlur}, {8, phantom::DefectKind::kPadding}};
    phantom::write_phantom(phantom::Phantom(o), *dir_ / "v.h5", phantom::OutputFormat::kHdf5, 8, "");
    spec_ = write_spec(*dir_, "spec.ini",
                       "[output]\ntile_size = 128\nstride = 96\nshard_size = 2\n[source.ph]\npath = " + (*dir_ / "v.h5") + "\n");
    const auto r = build(*dir_ / "single", "--threads 2");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    single_ = new std::map<std::string, std::string>(digest_dir(*dir_ / "single"));
  }
  static void TearDownTestSuite() {
    delete single_;
    delete dir_;
  }
  static RunResult build(const std::string& out, const std::string& extra) {
    return run_tool("triplet-build", "--config " + spec_ + " --out " + out + " --quiet " + extra);
  }
  static ScratchDir* dir_;
  static std::string spec_;
  static std::map<std::string, std::string>* single_;
};
ScratchDir* BuildParts::dir_ = nullptr;
std::string BuildParts::spec_;
std::map<std::string, std::string>* BuildParts::single_ = nullptr;

TEST_F(BuildParts, MergedPartsEqualTheSingleProcessBuild) {
  ASSERT_GE(single_->size(), 5u);  // several shards, manifest, rejected.csv
  const auto manifest = nlohmann::json::parse(read_file(fs::path(*dir_ / "single") / "manifest.json"));
  ASSERT_GT(manifest.at("totals").at("rejected").get<int>(), 0);
  for (int n : {1, 2, 3}) {
    const std::string out = *dir_ / ("p" + std::to_string(n));
    // In any order: the last part to finish merges.
    for (int k = 0; k < n; ++k) {
      const int i = (k + 1) % n;
      const auto r = build(out, "--threads 1 --part " + std::to_string(i) + "/" + std::to_string(n));
      ASSERT_EQ(r.exit_code, 0) << r.err;
      EXPECT_EQ(fs::exists(fs::path(out) / "manifest.json"), k == n - 1) << "part " << i << " of " << n;
    }
    EXPECT_FALSE(fs::exists(fs::path(out) / "parts"));
    EXPECT_EQ(digest_dir(out), *single_) << n << " parts";
    // A merge job after the array (sbatch --dependency) finds the work done.
    const auto again = run_tool("triplet-build", "--merge " + out + " --json");
    ASSERT_EQ(again.exit_code, 0) << again.err;
    EXPECT_EQ(nlohmann::json::parse(again.out).at("triplets").get<std::int64_t>(),
              nlohmann::json::parse(read_file(fs::path(*dir_ / "single") / "manifest.json")).at("totals").at("accepted").get<std::int64_t>());
    EXPECT_EQ(digest_dir(out), *single_) << n << " parts, merged again";
  }
}

// The last part finds OUT locked (another process merging): it leaves the
// merge alone and succeeds; --merge then assembles OUT.
TEST_F(BuildParts, LastPartLeavesALockedOutputToItsHolderAndMergeFinishes) {
  const std::string out = *dir_ / "locked";
  ASSERT_EQ(build(out, "--threads 1 --part 0/2").exit_code, 0);
  {
    const OutputLock held(out);
    const auto last = build(out, "--threads 1 --part 1/2");
    ASSERT_EQ(last.exit_code, 0) << last.err;
    EXPECT_FALSE(fs::exists(fs::path(out) / "manifest.json"));
  }
  const auto m = run_tool("triplet-build", "--merge " + out + " --quiet");
  ASSERT_EQ(m.exit_code, 0) << m.err;
  EXPECT_EQ(digest_dir(out), *single_);
}

// A requeued array task (or a rerun script) with --resume: a finished part,
// a merged output and a finished single build are left exactly as they are.
TEST_F(BuildParts, ResumingWhatIsFinishedChangesNothing) {
  const std::string out = *dir_ / "requeued";
  ASSERT_EQ(build(out, "--threads 1 --part 0/2").exit_code, 0);
  const fs::path part0 = fs::path(out) / "parts" / "part-0000-of-0002" / "manifest.json";
  const auto written = fs::last_write_time(part0);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_EQ(build(out, "--threads 1 --part 0/2 --resume").exit_code, 0);
  EXPECT_EQ(fs::last_write_time(part0), written);  // not rebuilt
  ASSERT_EQ(build(out, "--threads 1 --part 1/2").exit_code, 0);  // the last: merges
  ASSERT_EQ(digest_dir(out), *single_);
  const auto merged_time = fs::last_write_time(fs::path(out) / "manifest.json");
  for (const char* part : {"0/2", "1/2"}) {
    const auto again = build(out, std::string("--threads 1 --json --resume --part ") + part);
    ASSERT_EQ(again.exit_code, 0) << again.err;
    EXPECT_EQ(nlohmann::json::parse(again.out).at("shards").get<std::int64_t>(),
              static_cast<std::int64_t>(nlohmann::json::parse(read_file(fs::path(out) / "manifest.json")).at("shards").size()));
  }
  const auto fresh = build(out, "--threads 1 --part 0/2");  // without --resume: refused, nothing written
  EXPECT_EQ(fresh.exit_code, 2);
  EXPECT_NE(fresh.err.find("merged from its parts"), std::string::npos) << fresh.err;
  EXPECT_EQ(digest_dir(out), *single_);
  EXPECT_EQ(fs::last_write_time(fs::path(out) / "manifest.json"), merged_time);
  ASSERT_EQ(build(out, "--threads 1 --resume").exit_code, 0);  // the whole build, finished: kept
  EXPECT_EQ(fs::last_write_time(fs::path(out) / "manifest.json"), merged_time);
}

TEST_F(BuildParts, InterruptedPartResumesToTheSameBytes) {
  const std::string out = *dir_ / "resumed";
  ASSERT_EQ(build(out, "--part 0/2").exit_code, 0);
  const auto stopped = build(out, "--part 1/2 --stop-after-shards 1");
  EXPECT_EQ(stopped.exit_code, 1) << stopped.err;
  // What a kill -9 in the middle of the next shard would leave behind.
  std::ofstream(fs::path(out) / "parts" / "part-0001-of-0002" / "shard-00001.h5.tmp") << "half-written";
  const auto early = run_tool("triplet-build", "--merge " + out + " --quiet");
  EXPECT_EQ(early.exit_code, 1);
  EXPECT_NE(early.err.find("part 1 of 2 is missing or unfinished"), std::string::npos) << early.err;
  EXPECT_EQ(count_lines(early.err), 1) << early.err;
  EXPECT_FALSE(has_shards(out));
  ASSERT_EQ(build(out, "--part 1/2 --resume").exit_code, 0);  // the last to finish: merges
  EXPECT_EQ(digest_dir(out), *single_);
}

TEST_F(BuildParts, ShardBytesDoNotDependOnTheOutputPathOrThreads) {
  const std::string out = (fs::path(*dir_ / "elsewhere") / "deeper").string();
  fs::create_directories(fs::path(out).parent_path());
  ASSERT_EQ(build(out, "--threads 1 --json").exit_code, 0);
  EXPECT_EQ(digest_dir(out), *single_);
  const triplets::ShardReader r((fs::path(out) / "shard-00000.h5").string());
  EXPECT_TRUE(r.attributes().command.empty());  // the command is the manifest's provenance
  const auto manifest = nlohmann::json::parse(read_file(fs::path(out) / "manifest.json"));
  EXPECT_EQ(manifest.at("provenance").at("command").get<std::string>(), "triplet-build --config " + spec_);
}

TEST_F(BuildParts, UsageErrors) {
  for (const char* bad : {"--part 2/2", "--part 1", "--part -1/3", "--part 0/2 --skip-bad-slices"}) {
    const auto r = build(*dir_ / "bad", bad);
    EXPECT_EQ(r.exit_code, 2) << bad << ": " << r.err;
    EXPECT_EQ(count_lines(r.err), 1) << r.err;
  }
  EXPECT_EQ(run_tool("triplet-build", "--merge " + (*dir_ / "single") + " --out x").exit_code, 2);
  const auto none = run_tool("triplet-build", "--merge " + (*dir_ / "nothing-here"));
  EXPECT_EQ(none.exit_code, 1) << none.err;
  EXPECT_NE(none.err.find("no parts to merge"), std::string::npos) << none.err;
}

TEST_F(BuildParts, KilledPartResumesToTheSameBytes) {
  // SIGKILL at several moments (the tool cannot react to it): whatever it left
  // behind, --resume and --merge must give the single-process bytes.
  int killed_running = 0;
  int round = 0;
  for (const int delay_ms : {40, 120, 250}) {
    const std::string out = *dir_ / ("killed" + std::to_string(round++));
    ASSERT_EQ(build(out, "--part 0/2").exit_code, 0);
    const std::string args = "--config " + spec_ + " --out " + out + " --quiet --threads 1 --part 1/2";
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      execl("/bin/sh", "sh", "-c", ("exec " + tool_path("triplet-build") + " " + args + " 2>/dev/null").c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    ::kill(pid, SIGKILL);
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    killed_running += WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
    const auto resumed = build(out, "--part 1/2 --resume");  // the last to finish: merges
    ASSERT_EQ(resumed.exit_code, 0) << delay_ms << " ms: " << resumed.err;
    EXPECT_EQ(digest_dir(out), *single_) << "killed after " << delay_ms << " ms";
  }
  // At least one kill hit a running build (the first one, in practice: 40 ms
  // is less than the tool's start-up and alignment).
  EXPECT_GE(killed_running, 1);
}

#ifdef EMT_TEST_MPIEXEC
/// The lines triplet-build printed (mpirun adds its own banner when a rank fails).
std::vector<std::string> tool_lines(const std::string& err) {
  std::vector<std::string> lines;
  std::istringstream in(err);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("triplet-build", 0) == 0) lines.push_back(line);
  }
  return lines;
}

TEST_F(BuildParts, MpiRanksEqualTheSingleProcessBuild) {
  for (int n : {1, 2, 3}) {
    const std::string out = *dir_ / ("mpi" + std::to_string(n));
    const auto r = mpirun(n, "--config " + spec_ + " --out " + out + " --quiet --threads 1");
    ASSERT_EQ(r.exit_code, 0) << n << " ranks: " << r.err;
    EXPECT_TRUE(tool_lines(r.err).empty()) << r.err;
    EXPECT_FALSE(fs::exists(fs::path(out) / "parts"));
    EXPECT_EQ(digest_dir(out), *single_) << n << " ranks";
  }
}

// A rank that fails stops the others at once instead of after their parts:
// rank 0 has far more work than the moment rank 1 needs to fail.
TEST_F(BuildParts, MpiFailedRankStopsTheOthersEarly) {
  const ScratchDir scratch("emt-mpi-early");
  const fs::path dir = scratch.path();
  phantom::PhantomOptions o;
  o.depth = 12;
  o.height = o.width = 768;
  o.seed = 3;
  phantom::write_phantom(phantom::Phantom(o), dir / "big.h5", phantom::OutputFormat::kHdf5, 8, "");
  const std::string spec = write_spec(scratch, "big.ini", "[output]\ntile_size = 64\nstride = 8\nshard_size = 64\n[source.big]\npath = " + (dir / "big.h5").string() + "\n");
  const fs::path out = dir / "out";
  fs::create_directories(out / "parts");
  std::ofstream(out / "parts" / "part-0001-of-0002") << "in the way";
  const auto r = mpirun(2, "--config " + spec + " --out " + out.string() + " --quiet --threads 1");
  EXPECT_EQ(r.exit_code, 1) << r.err;
  const auto lines = tool_lines(r.err);
  ASSERT_EQ(lines.size(), 1u) << r.err;
  EXPECT_NE(lines[0].find("rank 1 of 2 (1 other rank stopped early, resumable): cannot create output directory"), std::string::npos) << lines[0];
  // Rank 0 did not build to the end of its part (seconds of tiling, against
  // the fraction of a second rank 1 takes to fail).
  EXPECT_FALSE(fs::exists(out / "parts" / "part-0000-of-0002" / "manifest.json"));
}

TEST_F(BuildParts, MpiFailedRankFailsTheRunAndLeavesNothingComplete) {
  const fs::path out = *dir_ / "mpi-failed";
  // Rank 1 cannot create its part directory: a file is in the way.
  fs::create_directories(out / "parts");
  std::ofstream(out / "parts" / "part-0001-of-0003") << "in the way";
  const std::string args = "--config " + spec_ + " --out " + out.string() + " --quiet --threads 1";
  const auto r = mpirun(3, args);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  const auto lines = tool_lines(r.err);
  ASSERT_EQ(lines.size(), 1u) << r.err;  // rank 0 reports rank 1's error, once
  // The others stopped when rank 1 failed, or had finished by then.
  EXPECT_TRUE(lines[0].rfind("triplet-build: error: rank 1 of 3: ", 0) == 0 ||
              lines[0].rfind("triplet-build: error: rank 1 of 3 (", 0) == 0) << lines[0];
  EXPECT_NE(lines[0].find("part-0001-of-0003"), std::string::npos) << lines[0];
  EXPECT_FALSE(has_shards(out));  // no manifest.json, no shard: nothing merged
  // Once the obstacle is gone a rerun gives the single-process bytes.
  fs::remove(out / "parts" / "part-0001-of-0003");
  const auto again = mpirun(3, args + " --resume");
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(digest_dir(out), *single_);
}

TEST_F(BuildParts, MpiUsageErrors) {
  // Every rank fails the same way: one line, the usage exit code.
  const auto part = mpirun(2, "--config " + spec_ + " --out " + (*dir_ / "mpi-bad") + " --part 0/2");
  EXPECT_EQ(part.exit_code, 2) << part.err;
  const auto lines = tool_lines(part.err);
  ASSERT_EQ(lines.size(), 1u) << part.err;
  EXPECT_NE(lines[0].find("rank 0 of 2 (all ranks failed): --part is for job arrays"), std::string::npos) << lines[0];
  EXPECT_FALSE(fs::exists(*dir_ / "mpi-bad"));
  EXPECT_EQ(mpirun(2, "--merge " + (*dir_ / "single")).exit_code, 2);
}
#endif

}  // namespace emt::test
