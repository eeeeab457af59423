#include "emt/ssan/distributed.hpp"

#include <torch/csrc/distributed/c10d/FileStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/version.h>
#ifdef EMT_WITH_NCCL
// Needs a CUDA LibTorch, its CUDA headers and nccl.h (docs/scale.md).
#ifndef USE_C10D_NCCL
#define USE_C10D_NCCL
#endif
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <ATen/Context.h>
#include <ATen/autocast_mode.h>
#include <unistd.h>

#include <cstdlib>
#include <map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "emt/common/atomic_file.hpp"
#include "emt/common/error.hpp"

namespace emt::ssan {

namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

int env_int(const char* name, int fallback) {
  const std::string v = env(name);
  if (v.empty()) return fallback;
  try {
    std::size_t used = 0;
    const int x = std::stoi(v, &used);
    if (used != v.size()) throw std::invalid_argument(v);
    return x;
  } catch (const std::exception&) {
    throw Error(ErrorKind::kInvalidArgument, fmt::format("environment variable {}='{}' is not an integer", name, v));
  }
}

}  // namespace

Rendezvous rendezvous_from_environment(const std::string& rendezvous) {
  Rendezvous r;
  if (!env("WORLD_SIZE").empty() || !env("RANK").empty()) {
    r.launcher = "torchrun";
    r.rank = env_int("RANK", 0);
    r.world = env_int("WORLD_SIZE", 1);
    r.local_rank = env_int("LOCAL_RANK", 0);
  } else if (!env("OMPI_COMM_WORLD_SIZE").empty()) {
    r.launcher = "openmpi";
    r.rank = env_int("OMPI_COMM_WORLD_RANK", 0);
    r.world = env_int("OMPI_COMM_WORLD_SIZE", 1);
    r.local_rank = env_int("OMPI_COMM_WORLD_LOCAL_RANK", 0);
  }
  if (r.world < 1 || r.rank < 0 || r.rank >= r.world) {
    throw Error(ErrorKind::kInvalidArgument, fmt::format("rank {} of world size {} is not a valid rank ({} variables)", r.rank, r.world, r.launcher));
  }
  r.master_addr = env("MASTER_ADDR");
  r.master_port = env_int("MASTER_PORT", r.master_port);
  if (!rendezvous.empty()) {
    if (rendezvous.rfind("file://", 0) == 0) {
      r.file = rendezvous.substr(7);
      r.master_addr.clear();
    } else if (rendezvous.rfind("tcp://", 0) == 0) {
      const std::string hp = rendezvous.substr(6);
      const auto colon = hp.rfind(':');
      if (colon == std::string::npos) throw Error(ErrorKind::kInvalidArgument, "--rendezvous tcp://HOST:PORT needs a port (got '" + rendezvous + "')");
      r.master_addr = hp.substr(0, colon);
      try {
        r.master_port = std::stoi(hp.substr(colon + 1));
      } catch (const std::exception&) {
        throw Error(ErrorKind::kInvalidArgument, "--rendezvous: bad port in '" + rendezvous + "'");
      }
    } else {
      throw Error(ErrorKind::kInvalidArgument, "--rendezvous must be file:///PATH or tcp://HOST:PORT (got '" + rendezvous + "')");
    }
  }
  if (r.master_port < 1 || r.master_port > 65535) throw Error(ErrorKind::kInvalidArgument, fmt::format("MASTER_PORT {} is not a port", r.master_port));
  if (r.world > 1 && r.master_addr.empty() && r.file.empty()) {
    throw Error(ErrorKind::kInvalidArgument, fmt::format("{} processes but no rendezvous: set MASTER_ADDR (and MASTER_PORT) or give --rendezvous "
                                                         "file:///shared/path",
                                                         r.world));
  }
  return r;
}

// LibTorch 2 split the collectives out of ProcessGroup into Backend, which
// ProcessGroupGloo and ProcessGroupNCCL now derive from; 1.13 (Debian's)
// has them on ProcessGroup.
class Distributed::Group {
 public:
#if TORCH_VERSION_MAJOR >= 2
  using Base = c10d::Backend;
#else
  using Base = c10d::ProcessGroup;
#endif
  explicit Group(c10::intrusive_ptr<Base> group) : group(std::move(group)) {}
  c10::intrusive_ptr<Base> group;
};

std::string to_string(CommBackend b) { return b == CommBackend::kNccl ? "nccl" : "gloo"; }

CommBackend comm_backend_for(const torch::Device& device) {
#ifdef EMT_WITH_NCCL
  if (device.is_cuda()) return CommBackend::kNccl;
#else
  (void)device;
#endif
  return CommBackend::kGloo;
}

Distributed::Distributed(const Rendezvous& r, std::chrono::milliseconds timeout, const torch::Device& device)
    : r_(r), timeout_(timeout), device_(device), backend_(comm_backend_for(device)) {
  if (r_.world <= 1) return;
  try {
    if (!r_.file.empty()) {
      store_ = c10::make_intrusive<c10d::FileStore>(r_.file, r_.world);
      heartbeat_store_ = store_;  // FileStore serialises its operations itself
    } else {
      c10d::TCPStoreOptions o;
      o.port = static_cast<std::uint16_t>(r_.master_port);
      o.isServer = r_.rank == 0;
      o.numWorkers = static_cast<std::size_t>(r_.world);
      o.waitWorkers = true;
      o.timeout = timeout;
      store_ = c10::make_intrusive<c10d::TCPStore>(r_.master_addr, o);
      c10d::TCPStoreOptions h = o;
      h.isServer = false;
      h.numWorkers = c10::nullopt;
      h.waitWorkers = false;
      h.timeout = std::chrono::seconds(5);
      heartbeat_store_ = c10::make_intrusive<c10d::TCPStore>(r_.master_addr, h);  // its own connection: TCPStore clients are not thread-safe
    }
    store_->setTimeout(timeout);
    if (backend_ == CommBackend::kNccl) {
#ifdef EMT_WITH_NCCL
      // NCCL's communicators belong to the current device: this rank's GPU.
      c10::cuda::set_device(static_cast<c10::DeviceIndex>(device_.has_index() ? device_.index() : r_.local_rank));
      auto options = c10d::ProcessGroupNCCL::Options::create();
      options->timeout = timeout;
      group_ = std::make_unique<Group>(c10::make_intrusive<c10d::ProcessGroupNCCL>(store_, r_.rank, r_.world, options));
#endif
    } else {
      auto options = c10d::ProcessGroupGloo::Options::create(timeout);
      options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
      group_ = std::make_unique<Group>(c10::make_intrusive<c10d::ProcessGroupGloo>(store_, r_.rank, r_.world, options));
    }
  } catch (const std::exception& e) {
    const std::string what = e.what();
    throw Error(ErrorKind::kIo, fmt::format("rank {} of {}: rendezvous failed ({}): {}", r_.rank, r_.world,
                                            r_.file.empty() ? fmt::format("tcp://{}:{}", r_.master_addr, r_.master_port) : "file://" + r_.file,
                                            what.substr(0, what.find('\n'))));
  }
  heartbeat_ = std::thread([this] { heartbeat_loop(); });
}

Distributed::~Distributed() {
  stop_heartbeat_ = true;
  if (heartbeat_.joinable()) heartbeat_.join();
}

// Every rank counts up its own key once a second; after a failed collective
// the keys that stopped moving name the ranks that are gone.
void Distributed::heartbeat_loop() {
  std::int64_t beat = 0;
  while (!stop_heartbeat_) {
    try {
      const std::string v = std::to_string(++beat);
      heartbeat_store_->set("emt/heartbeat/" + std::to_string(r_.rank), std::vector<uint8_t>(v.begin(), v.end()));
    } catch (const std::exception&) {
      return;  // the store is gone (rank 0 exited): the next collective says so
    }
    for (int i = 0; i < 10 && !stop_heartbeat_; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

void Distributed::lost(const std::exception& e) {
  const std::string what = e.what();
  const std::string detail = what.substr(0, what.find('\n'));
  std::string lost_ranks;
  try {
    auto read = [&] {
      std::map<int, std::string> beats;
      for (int q = 0; q < r_.world; ++q) {
        if (q == r_.rank) continue;
        const std::string key = "emt/heartbeat/" + std::to_string(q);
        if (!heartbeat_store_->check({key})) continue;
        const auto v = heartbeat_store_->get(key);
        beats[q] = std::string(v.begin(), v.end());
      }
      return beats;
    };
    const auto before = read();
    std::this_thread::sleep_for(std::chrono::milliseconds(2500));
    const auto after = read();
    for (int q = 0; q < r_.world; ++q) {
      if (q == r_.rank) continue;
      const auto a = before.find(q), b = after.find(q);
      if (a == before.end() || b == after.end() || a->second == b->second) lost_ranks += (lost_ranks.empty() ? "" : ", ") + std::to_string(q);
    }
  } catch (const std::exception&) {
    lost_ranks = "0 (it holds the rendezvous store, which no longer answers)";
  }
  stop_heartbeat_ = true;
  throw Error(ErrorKind::kIo, fmt::format("rank {} of {}: lost rank {}; stopping ({})", r_.rank, r_.world,
                                          lost_ranks.empty() ? "unknown (all heartbeats alive: a collective timed out)" : lost_ranks, detail));
}

void Distributed::allreduce(torch::Tensor& t) {
  try {
    std::vector<torch::Tensor> v{t};
    group_->group->allreduce(v)->wait(timeout_);
  } catch (const std::exception& e) {
    lost(e);
  }
}

void Distributed::broadcast_one(torch::Tensor& t) {
  try {
    std::vector<torch::Tensor> v{t};
    c10d::BroadcastOptions o;
    o.rootRank = 0;
    group_->group->broadcast(v, o)->wait(timeout_);
  } catch (const std::exception& e) {
    lost(e);
  }
}

void Distributed::broadcast(const std::vector<torch::Tensor>& tensors) {
  if (!active()) return;
  torch::NoGradGuard no_grad;
  for (const auto& t : tensors) {
    torch::Tensor c = t.detach().contiguous();
    broadcast_one(c);
    if (!c.is_same(t)) t.detach().copy_(c);
  }
}

torch::Tensor Distributed::average_gradients(const std::vector<torch::Tensor>& params, const torch::Tensor& values) {
  if (!active()) return values;
  torch::NoGradGuard no_grad;
  // Buckets of consecutive parameters up to kBucketBytes; the values ride in the last one.
  std::vector<std::vector<torch::Tensor>> buckets(1);
  std::int64_t bytes = 0;
  for (const auto& p : params) {
    if (!p.grad().defined()) continue;
    const std::int64_t b = p.grad().numel() * static_cast<std::int64_t>(p.grad().element_size());
    if (bytes > 0 && bytes + b > kBucketBytes) {
      buckets.emplace_back();
      bytes = 0;
    }
    buckets.back().push_back(p.grad());
    bytes += b;
  }
  const double scale = 1.0 / static_cast<double>(r_.world);
  torch::Tensor out;
  for (std::size_t k = 0; k < buckets.size(); ++k) {
    std::vector<torch::Tensor> flat;
    for (const auto& g : buckets[k]) flat.push_back(g.reshape({-1}).to(torch::kFloat64));
    const bool last = k + 1 == buckets.size();
    if (last) flat.push_back(values.to(torch::kFloat64).reshape({-1}));
    // float64 for the sum: the average then does not depend on the order ranks arrive in.
    torch::Tensor all = torch::cat(flat);
    allreduce(all);
    std::int64_t offset = 0;
    for (const auto& g : buckets[k]) {
      const std::int64_t n = g.numel();
      g.copy_(all.narrow(0, offset, n).mul(scale).view_as(g));
      offset += n;
    }
    if (last) out = all.narrow(0, offset, values.numel());
  }
  return out;
}

std::vector<double> Distributed::sum(const std::vector<double>& values) {
  if (!active()) return values;
  // NCCL reduces GPU tensors only.
  torch::Tensor t = torch::tensor(values, torch::kFloat64).to(backend_ == CommBackend::kNccl ? device_ : torch::Device(torch::kCPU));
  allreduce(t);
  t = t.to(torch::kCPU);
  std::vector<double> out(values.size());
  for (std::size_t i = 0; i < values.size(); ++i) out[i] = t[static_cast<std::int64_t>(i)].item<double>();
  return out;
}

RankScratch::RankScratch(const Distributed& dist) {
  if (dist.is_main()) return;
  path_ = std::filesystem::temp_directory_path() / fmt::format("emt-ssan-rank{}-{}", dist.rank(), static_cast<long>(::getpid()));
  std::filesystem::create_directories(path_);
}

RankScratch::~RankScratch() {
  if (path_.empty()) return;
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

void check_world_size(const std::filesystem::path& run_json, int world) {
  if (!std::filesystem::exists(run_json)) return;  // the run's own reading of it reports that
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(run_json));
  } catch (const nlohmann::json::exception&) {
    return;
  }
  const int started = j.is_object() && j.contains("world_size") && j["world_size"].is_number_integer() ? j["world_size"].get<int>() : 1;
  if (started != world) {
    throw Error(ErrorKind::kInvalidArgument,
                fmt::format("this run was started on {} processes, resumed on {}: resume on {} (the global batch, data order and schedule depend on it)",
                            started, world, started),
                run_json.string());
  }
}

AutocastScope::AutocastScope(Amp amp) : on_(amp == Amp::kBf16) {
  if (!on_) return;
  at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
  at::autocast::set_enabled(true);
}

AutocastScope::~AutocastScope() {
  if (!on_) return;
  at::autocast::set_enabled(false);
  at::autocast::clear_cache();
}

std::string available_devices() {
  if (!at::hasCUDA()) return "cpu (this LibTorch was built without CUDA)";
  return fmt::format("cpu, cuda ({} GPUs visible)", torch::cuda::device_count());
}

torch::Device resolve_device(const std::string& name, int local_rank) {
  const bool cuda_build = at::hasCUDA();
  const auto gpus = cuda_build ? static_cast<int>(torch::cuda::device_count()) : 0;
  if (name == "cpu") return torch::kCPU;
  if (name == "auto") return gpus > 0 ? torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(local_rank % gpus)) : torch::Device(torch::kCPU);
  if (name == "cuda" || name.rfind("cuda:", 0) == 0) {
    if (!cuda_build) throw Error(ErrorKind::kInvalidArgument, "--device " + name + ": this LibTorch was built without CUDA (build against a CUDA LibTorch: docs/scale.md)");
    if (gpus == 0) throw Error(ErrorKind::kInvalidArgument, "--device " + name + ": no CUDA GPU is visible");
    int index = local_rank % gpus;
    if (name.size() > 5) {
      try {
        std::size_t used = 0;
        index = std::stoi(name.substr(5), &used);
        if (used != name.size() - 5) throw std::invalid_argument(name);
      } catch (const std::exception&) {
        throw Error(ErrorKind::kInvalidArgument, "--device must be cpu, cuda, cuda:N or auto (got '" + name + "')");
      }
      if (index < 0 || index >= gpus) throw Error(ErrorKind::kInvalidArgument, fmt::format("--device {}: {} GPUs visible", name, gpus));
    }
    return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
  }
  throw Error(ErrorKind::kInvalidArgument, "--device must be cpu, cuda, cuda:N or auto (got '" + name + "')");
}

Amp parse_amp(const std::string& name, const torch::Device& device) {
  if (name == "none") return Amp::kNone;
  if (name == "bf16") {
    if (!device.is_cuda()) throw Error(ErrorKind::kInvalidArgument, "--amp bf16 needs a CUDA device (the device is " + device.str() + ")");
    return Amp::kBf16;
  }
  throw Error(ErrorKind::kInvalidArgument, "--amp must be none or bf16 (got '" + name + "')");
}

std::string to_string(Amp amp) { return amp == Amp::kBf16 ? "bf16" : "none"; }

}  // namespace emt::ssan
