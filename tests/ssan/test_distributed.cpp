// Data-parallel ssan-train over c10d Gloo, on 127.0.0.1: ranks launched
// directly with torchrun's variables (RANK, WORLD_SIZE, LOCAL_RANK,
// MASTER_ADDR, MASTER_PORT), as a launcher would.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "emt/common/atomic_file.hpp"
#include "emt/ssan/checkpoint.hpp"
#include "emt/ssan/evaluate.hpp"
#include "emt/ssan/trainer.hpp"
#include "test_support.hpp"
#include "tiny_shards.hpp"

extern char** environ;

namespace emt::test {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

int free_port() {
  const int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  if (::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    ::close(s);
    return 29500;
  }
  ::close(s);
  return ntohs(a.sin_port);
}

/// ssan-train with `vars` added to the environment; stderr to `err`.
pid_t spawn_train(const std::string& args, const std::vector<std::string>& vars, const fs::path& err) {
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) env.emplace_back(*e);
  env.insert(env.end(), vars.begin(), vars.end());
  std::vector<char*> envp;
  for (auto& s : env) envp.push_back(s.data());
  envp.push_back(nullptr);
  const std::string cmd = "exec " + tool_path("ssan-train") + " " + args + " 2>" + err.string() + " >/dev/null";
  const char* argv[] = {"/bin/sh", "-c", cmd.c_str(), nullptr};
  pid_t pid = -1;
  if (posix_spawn(&pid, "/bin/sh", nullptr, nullptr, const_cast<char* const*>(argv), envp.data()) != 0) return -1;
  return pid;
}

/// One rank started as torchrun starts it.
pid_t spawn_rank(const std::string& args, int rank, int world, int port, const fs::path& err) {
  return spawn_train(args, {"RANK=" + std::to_string(rank), "WORLD_SIZE=" + std::to_string(world), "LOCAL_RANK=" + std::to_string(rank),
                            "MASTER_ADDR=127.0.0.1", "MASTER_PORT=" + std::to_string(port)},
                     err);
}

/// Exit code (128 + N after signal N), or -1 when `pid` is still running after `limit` (it is then killed).
int wait_for(pid_t pid, std::chrono::seconds limit) {
  const auto deadline = Clock::now() + limit;
  int status = 0;
  while (Clock::now() < deadline) {
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, &status, 0);
  return -1;
}

std::size_t metric_rows(const fs::path& run) {
  std::ifstream in(run / "metrics.csv");
  std::size_t n = 0;
  std::string line;
  while (std::getline(in, line)) ++n;
  return n > 0 ? n - 1 : 0;
}

/// Waits until rank 0 has logged `rows` steps (both ranks are then in the loop).
bool wait_rows(const fs::path& run, std::size_t rows, std::chrono::seconds limit) {
  const auto deadline = Clock::now() + limit;
  while (Clock::now() < deadline) {
    if (metric_rows(run) >= rows) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

double max_weight_difference(const fs::path& a, const fs::path& b) {
  const ssan::Ssan x = ssan::load_model(a.string()), y = ssan::load_model(b.string());
  const auto px = x->named_parameters(), py = y->named_parameters();
  EXPECT_EQ(px.size(), py.size());
  double d = 0;
  for (const auto& p : px) d = std::max(d, (p.value() - py[p.key()]).abs().max().item<double>());
  return d;
}

}  // namespace

class Distributed : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new ScratchDir("emt-ddp");
    make_tiny_shards(dir_->path());
    // Charbonnier only: the style-balance term takes the sign of a batch-level
    // difference, which does not split over ranks (docs/scale.md).
    std::ofstream(dir_->path() / "c.ini") << "[model]\nextractor = siamese_rdn\nfeatures = 8\nblocks = 1\nlayers = 2\ngrowth = 4\n"
                                             "attention = aal\nfusion = mask\n[loss]\nfeature_weight = 0\nstyle_weight = 0\n";
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string args(const std::string& out, int batch, const std::string& lr = "1e-3") {
    return "--config " + (*dir_ / "c.ini") + " --data " + (*dir_ / "b") + " --split all --val-split none --crop 32 --batch " +
           std::to_string(batch) + " --warmup-steps 0 --lr " + lr + " --threads 1 --quiet --dist-timeout 30 --out " + out;
  }
  static ScratchDir* dir_;
};
ScratchDir* Distributed::dir_ = nullptr;

TEST_F(Distributed, TwoRanksOfBatch3EqualOneProcessOfBatch6) {
  ScratchDir run;
  ASSERT_EQ(run_tool("ssan-train", args(run / "one", 6) + " --max-steps 5").exit_code, 0);
  const int port = free_port();
  const pid_t r0 = spawn_rank(args(run / "two", 3) + " --max-steps 5", 0, 2, port, run.path() / "e0");
  const pid_t r1 = spawn_rank(args(run / "two", 3) + " --max-steps 5", 1, 2, port, run.path() / "e1");
  EXPECT_EQ(wait_for(r0, std::chrono::seconds(240)), 0) << read_file(run.path() / "e0");
  EXPECT_EQ(wait_for(r1, std::chrono::seconds(60)), 0) << read_file(run.path() / "e1");
  // 5 steps cross an epoch boundary (48 triplets / 6 per step = 8 steps; the phantom's count): both see the same samples.
  const double d = max_weight_difference(run.path() / "one" / "last.pt", run.path() / "two" / "last.pt");
  std::cout << "max |w(2 x 3) - w(1 x 6)| after 5 steps: " << d << "\n";
  // float32 gradients summed in another order (two half-batch backward passes,
  // averaged in float64, against one pass), then Adam's lr-sized steps: 1e-5.
  EXPECT_LE(d, 1e-5);
  // Rank 0 alone wrote the run; its run.json records the world.
  EXPECT_EQ(nlohmann::json::parse(read_file(run.path() / "two" / "run.json")).at("world_size").get<int>(), 2);
  // And the steps really trained (the comparison is not between two initial models).
  ScratchDir fresh;
  ASSERT_EQ(run_tool("ssan-train", args(fresh / "r", 6, "1e-12") + " --max-steps 1").exit_code, 0);
  EXPECT_GT(max_weight_difference(fresh.path() / "r" / "last.pt", run.path() / "two" / "last.pt"), 1e-3);
}

TEST_F(Distributed, AKilledRankStopsTheOtherNamingIt) {
  ScratchDir run;
  const int port = free_port();
  const pid_t r0 = spawn_rank(args(run / "r", 3), 0, 2, port, run.path() / "e0");
  const pid_t r1 = spawn_rank(args(run / "r", 3), 1, 2, port, run.path() / "e1");
  ASSERT_TRUE(wait_rows(run.path() / "r", 3, std::chrono::seconds(180))) << read_file(run.path() / "e0");
  ::kill(r1, SIGKILL);
  const auto t = Clock::now();
  const int code = wait_for(r0, std::chrono::seconds(60));
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - t).count(), 60.0);
  EXPECT_NE(code, 0);
  EXPECT_NE(code, -1) << "rank 0 still running 60 s after rank 1 was killed";
  const std::string err = read_file(run.path() / "e0");
  EXPECT_NE(err.find("lost rank 1"), std::string::npos) << err;
  EXPECT_EQ(wait_for(r1, std::chrono::seconds(5)), 128 + SIGKILL);
  // Rank 0 holds the rendezvous store: its loss is named too.
  const int port2 = free_port();
  const pid_t q0 = spawn_rank(args(run / "q", 3), 0, 2, port2, run.path() / "f0");
  const pid_t q1 = spawn_rank(args(run / "q", 3), 1, 2, port2, run.path() / "f1");
  ASSERT_TRUE(wait_rows(run.path() / "q", 3, std::chrono::seconds(180))) << read_file(run.path() / "f0");
  ::kill(q0, SIGKILL);
  const int code1 = wait_for(q1, std::chrono::seconds(60));
  EXPECT_NE(code1, 0);
  EXPECT_NE(code1, -1) << "rank 1 still running 60 s after rank 0 was killed";
  EXPECT_NE(read_file(run.path() / "f1").find("lost rank 0"), std::string::npos) << read_file(run.path() / "f1");
  EXPECT_EQ(wait_for(q0, std::chrono::seconds(5)), 128 + SIGKILL);
}

TEST_F(Distributed, SigintToOneRankStopsBothAtOneStepAndResumesOnTwo) {
  ScratchDir run;
  const int port = free_port();
  const pid_t r0 = spawn_rank(args(run / "r", 3), 0, 2, port, run.path() / "e0");
  const pid_t r1 = spawn_rank(args(run / "r", 3), 1, 2, port, run.path() / "e1");
  ASSERT_TRUE(wait_rows(run.path() / "r", 3, std::chrono::seconds(180))) << read_file(run.path() / "e0");
  ::kill(r1, SIGINT);
  const int c0 = wait_for(r0, std::chrono::seconds(60)), c1 = wait_for(r1, std::chrono::seconds(60));
  EXPECT_NE(c0, 0);
  EXPECT_NE(c0, -1);
  EXPECT_NE(c1, 0);
  EXPECT_NE(c1, -1);
  const std::string e0 = read_file(run.path() / "e0"), e1 = read_file(run.path() / "e1");
  const auto step_of = [](const std::string& e) {
    const auto at = e.find("interrupted at step ");
    return at == std::string::npos ? -1L : std::stol(e.substr(at + 20));
  };
  const long s0 = step_of(e0);
  ASSERT_GT(s0, 0) << e0;
  EXPECT_EQ(step_of(e1), s0) << e1;  // the same step on both ranks
  EXPECT_EQ(metric_rows(run.path() / "r"), static_cast<std::size_t>(s0));
  // The checkpoint loads, and --resume continues it on two ranks.
  (void)ssan::load_model((run.path() / "r" / "last.pt").string());
  const std::string resume = "--resume " + (run / "r") + " --max-steps " + std::to_string(s0 + 3) + " --quiet --threads 1";
  const int port2 = free_port();
  const pid_t q0 = spawn_rank(resume, 0, 2, port2, run.path() / "f0");
  const pid_t q1 = spawn_rank(resume, 1, 2, port2, run.path() / "f1");
  EXPECT_EQ(wait_for(q0, std::chrono::seconds(180)), 0) << read_file(run.path() / "f0");
  EXPECT_EQ(wait_for(q1, std::chrono::seconds(60)), 0) << read_file(run.path() / "f1");
  EXPECT_EQ(metric_rows(run.path() / "r"), static_cast<std::size_t>(s0 + 3));
  // One process may not resume a two-process run.
  const auto one = run_tool("ssan-train", "--resume " + (run / "r") + " --max-steps " + std::to_string(s0 + 4) + " --quiet");
  EXPECT_EQ(one.exit_code, 2);
  EXPECT_NE(one.err.find("started on 2 processes"), std::string::npos) << one.err;
}

TEST_F(Distributed, OpenMpiVariablesMeetThroughAFileStore) {
  ScratchDir run;
  const std::string a = args(run / "r", 3) + " --max-steps 2 --rendezvous file://" + (run / "rendezvous");
  const pid_t r0 = spawn_train(a, {"OMPI_COMM_WORLD_RANK=0", "OMPI_COMM_WORLD_SIZE=2", "OMPI_COMM_WORLD_LOCAL_RANK=0"}, run.path() / "e0");
  const pid_t r1 = spawn_train(a, {"OMPI_COMM_WORLD_RANK=1", "OMPI_COMM_WORLD_SIZE=2", "OMPI_COMM_WORLD_LOCAL_RANK=1"}, run.path() / "e1");
  EXPECT_EQ(wait_for(r0, std::chrono::seconds(180)), 0) << read_file(run.path() / "e0");
  EXPECT_EQ(wait_for(r1, std::chrono::seconds(60)), 0) << read_file(run.path() / "e1");
  const auto meta = nlohmann::json::parse(read_file(run.path() / "r" / "run.json"));
  EXPECT_EQ(meta.at("launcher").get<std::string>(), "openmpi");
  EXPECT_EQ(meta.at("world_size").get<int>(), 2);
  EXPECT_EQ(metric_rows(run.path() / "r"), 2u);
  // Two processes and nowhere to meet: a usage error, not a hang.
  const pid_t lone = spawn_train(args(run / "s", 3), {"OMPI_COMM_WORLD_RANK=0", "OMPI_COMM_WORLD_SIZE=2"}, run.path() / "e2");
  EXPECT_EQ(wait_for(lone, std::chrono::seconds(60)), 2);
  EXPECT_NE(read_file(run.path() / "e2").find("no rendezvous"), std::string::npos) << read_file(run.path() / "e2");
}

TEST(Device, CudaOnALibTorchWithoutItIsAUsageError) {
  if (torch::cuda::is_available()) GTEST_SKIP() << "this LibTorch has CUDA and a GPU: the refusal cannot happen here";
  const auto r = run_tool("ssan-train", "--config " + std::string(EMT_SOURCE_DIR) + "/data_specs/ssan_tiny.ini --data /nonexistent --out /tmp/x --device cuda");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("without CUDA"), std::string::npos) << r.err;
  EXPECT_EQ(count_lines(r.err), 1);
  // ssan-eval and ssan-interpolate refuse it before reading anything.
  const auto eval = run_tool("ssan-eval", "--checkpoint /nonexistent.pt --data /nonexistent --device cuda:0");
  EXPECT_EQ(eval.exit_code, 2);
  EXPECT_NE(eval.err.find("without CUDA"), std::string::npos) << eval.err;
  const auto interp = run_tool("ssan-interpolate", "--checkpoint /nonexistent.pt --input /nonexistent.h5 --slices 1 --out /nonexistent.h5 --device cuda");
  EXPECT_EQ(interp.exit_code, 2);
  EXPECT_NE(interp.err.find("without CUDA"), std::string::npos) << interp.err;
  const auto bad = run_tool("ssan-eval", "--baselines-only --data /nonexistent --device gpu");
  EXPECT_EQ(bad.exit_code, 2);
  const auto amp = run_tool("ssan-train", "--config " + std::string(EMT_SOURCE_DIR) + "/data_specs/ssan_tiny.ini --data /nonexistent --out /tmp/x --device cpu --amp bf16");
  EXPECT_EQ(amp.exit_code, 2);
  EXPECT_NE(amp.err.find("--amp bf16 needs a CUDA device"), std::string::npos) << amp.err;
}

}  // namespace emt::test
