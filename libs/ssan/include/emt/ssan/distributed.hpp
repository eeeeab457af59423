#pragma once
// Data-parallel training over PyTorch's c10d (ProcessGroupGloo), and the
// device choice (docs/scale.md). One process with no launcher variables set
// is world 1: every collective is a no-op and training is as without this.
//
// DDP semantics, as PyTorch's DistributedDataParallel: rank 0's initial
// weights broadcast to all; each step every rank takes its own share of the
// global batch (batch x world, consecutive in the epoch order, so the set of
// samples per step does not depend on the world size); gradients averaged
// after backward in a few flat buckets, one allreduce each; the optimizer
// then steps identically everywhere.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <atomic>
#include <vector>

#include <torch/torch.h>

namespace c10d {
class Store;
}  // namespace c10d

namespace emt::ssan {

/// Where the processes of one run find each other.
struct Rendezvous {
  int rank = 0, world = 1, local_rank = 0;
  std::string master_addr;  ///< TCPStore host (rank 0 serves it); empty with a file
  int master_port = 29500;
  std::string file;         ///< FileStore path (--rendezvous file:///PATH)
  std::string launcher = "none";  ///< torchrun, openmpi or none
};

/// From the environment: torchrun's RANK, WORLD_SIZE, LOCAL_RANK,
/// MASTER_ADDR, MASTER_PORT; else OpenMPI's OMPI_COMM_WORLD_RANK / _SIZE /
/// _LOCAL_RANK with `rendezvous` = file:///PATH (FileStore on a shared
/// filesystem) or tcp://HOST:PORT, or MASTER_ADDR / MASTER_PORT. Nothing set:
/// world 1. Throws kInvalidArgument on inconsistent values.
[[nodiscard]] Rendezvous rendezvous_from_environment(const std::string& rendezvous);

/// Which c10d process group carries the collectives.
enum class CommBackend {
  kGloo,  ///< CPU tensors, and CUDA tensors through host copies
  kNccl,  ///< CUDA tensors GPU to GPU; only in a build with EMT_WITH_NCCL (a CUDA LibTorch)
};
[[nodiscard]] std::string to_string(CommBackend b);
/// NCCL for a CUDA device when this build has it, else Gloo.
[[nodiscard]] CommBackend comm_backend_for(const torch::Device& device);

/// A process group for one run. World 1 holds none.
class Distributed {
 public:
  /// Joins the group (blocks until all ranks have); `timeout` bounds the
  /// rendezvous and every collective (a rank that stops answering).
  /// `device`: where the model lives; it picks the backend (comm_backend_for).
  Distributed(const Rendezvous& r, std::chrono::milliseconds timeout, const torch::Device& device = torch::kCPU);
  ~Distributed();
  Distributed(const Distributed&) = delete;
  Distributed& operator=(const Distributed&) = delete;

  [[nodiscard]] int rank() const noexcept { return r_.rank; }
  [[nodiscard]] int world() const noexcept { return r_.world; }
  [[nodiscard]] int local_rank() const noexcept { return r_.local_rank; }
  [[nodiscard]] bool active() const noexcept { return r_.world > 1; }
  [[nodiscard]] bool is_main() const noexcept { return r_.rank == 0; }
  [[nodiscard]] const Rendezvous& rendezvous() const noexcept { return r_; }
  [[nodiscard]] CommBackend backend() const noexcept { return backend_; }

  /// Rank 0's values into every rank's tensors (in place).
  void broadcast(const std::vector<torch::Tensor>& tensors);
  /// Averages the gradients of `params` across ranks (flattened into buckets
  /// of about kBucketBytes, one allreduce each) and, in the last bucket,
  /// sums `values` (a 1-D float64 tensor on the gradients' device, e.g.
  /// non-finite flags): returned summed, on that device, with no host read.
  /// World 1: `values`.
  torch::Tensor average_gradients(const std::vector<torch::Tensor>& params, const torch::Tensor& values);
  /// Sums `values` across ranks (one host read).
  std::vector<double> sum(const std::vector<double>& values);

  static constexpr std::int64_t kBucketBytes = std::int64_t{25} << 20;  ///< PyTorch DDP's default bucket cap

 private:
  void allreduce(torch::Tensor& t);
  void broadcast_one(torch::Tensor& t);
  [[noreturn]] void lost(const std::exception& e);
  void heartbeat_loop();

  class Group;  // the c10d process group (its base class differs across LibTorch versions)

  Rendezvous r_;
  std::chrono::milliseconds timeout_;
  torch::Device device_;
  CommBackend backend_ = CommBackend::kGloo;
  c10::intrusive_ptr<c10d::Store> store_, heartbeat_store_;
  std::unique_ptr<Group> group_;
  std::atomic<bool> stop_heartbeat_{false};
  std::thread heartbeat_;
};

/// Where a rank other than 0 writes its copies of the run files (rank 0
/// alone writes the run directory): a temporary directory removed with the
/// object. Empty path for rank 0.
class RankScratch {
 public:
  explicit RankScratch(const Distributed& dist);
  ~RankScratch();
  RankScratch(const RankScratch&) = delete;
  RankScratch& operator=(const RankScratch&) = delete;
  [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }

 private:
  std::filesystem::path path_;
};

/// --resume: refuses (kInvalidArgument) a world size other than the one the
/// run was started with (RUN/run.json "world_size", 1 when absent): the global
/// batch, and with it the data order and the schedule, would change.
void check_world_size(const std::filesystem::path& run_json, int world);

/// --device: cpu, cuda, cuda:N or auto (CUDA when this LibTorch has it and a
/// GPU is visible, else CPU). `local_rank` picks the GPU for plain cuda/auto
/// in a multi-process run. kInvalidArgument (exit 2) when CUDA is asked of a
/// LibTorch without it or no such GPU is visible.
[[nodiscard]] torch::Device resolve_device(const std::string& name, int local_rank = 0);
/// What the LibTorch in use offers: "cpu" or "cpu, cuda (N GPUs)".
[[nodiscard]] std::string available_devices();

/// --amp: none, or bf16 (CUDA autocast; a usage error on CPU).
enum class Amp { kNone, kBf16 };
[[nodiscard]] Amp parse_amp(const std::string& name, const torch::Device& device);
[[nodiscard]] std::string to_string(Amp amp);
/// Autocast to bfloat16 on CUDA for the object's life (Amp::kNone: nothing).
class AutocastScope {
 public:
  explicit AutocastScope(Amp amp);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool on_ = false;
};

}  // namespace emt::ssan
