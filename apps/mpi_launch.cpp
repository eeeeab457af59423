#include "mpi_launch.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "emt/common/error.hpp"
#include "emt/common/interrupt.hpp"

#ifdef EMT_HAVE_MPI
#include <mpi.h>
#endif
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif

namespace emt {
namespace {

/// Ranks announced by the launcher's environment: OpenMPI's mpirun sets
/// OMPI_COMM_WORLD_SIZE, MPICH's hydra and Slurm's PMI-2 set PMI_SIZE. Srun
/// with PMIx sets only PMIX_RANK (the size then comes from MPI itself).
int announced_size() {
  for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"}) {
    if (const char* v = std::getenv(var)) return std::max(1, std::atoi(v));
  }
  return std::getenv("PMIX_RANK") ? 1 : 0;
}

/// The outcome of one rank's work, as it travels between ranks.
struct Outcome {
  bool failed = false;
  ErrorKind kind = ErrorKind::kInvalidData;
  std::string message, where;
};

Outcome run(const std::function<void()>& work) {
  Outcome o;
  try {
    work();
    return o;
  } catch (const Error& e) {
    o.kind = e.kind();
    o.message = e.message();
    o.where = e.where();
  } catch (const std::bad_alloc&) {
    o.message = "out of memory (a size or option too large for this machine?)";
  } catch (const std::exception& e) {
    o.message = e.what();
    o.message = o.message.substr(0, o.message.find('\n'));
  }
  o.failed = true;
  return o;
}

}  // namespace

MpiLaunch::MpiLaunch(int* argc, char*** argv) {
  launcher_size_ = announced_size();
#ifdef EMT_HAVE_MPI
  if (launcher_size_ == 0) return;
  int provided = 0;
#if defined(__SANITIZE_ADDRESS__)
  // OpenMPI keeps much of what MPI_Init allocates past MPI_Finalize (its
  // plugins are unloaded first, so LeakSanitizer cannot even name them):
  // those are OpenMPI's leaks, not ours, and are not tracked. What OpenMPI's
  // own threads allocate is matched by tests/triplets/openmpi.lsan.supp.
  const __lsan::ScopedDisabler openmpi_allocations;
#endif
  // Only the main thread calls MPI; TBB's workers never do.
  if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) return;
  active_ = true;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
#else
  (void)argc;
  (void)argv;
#endif
}

MpiLaunch::~MpiLaunch() {
#ifdef EMT_HAVE_MPI
  if (active_) {
#if defined(__SANITIZE_ADDRESS__)
    const __lsan::ScopedDisabler openmpi_allocations;  // as in MPI_Init
#endif
    MPI_Finalize();
  }
#endif
}

int MpiLaunch::together(const std::function<void()>& work) const {
  if (!active_) {
    if (launcher_size_ > 1) {
      throw Error(ErrorKind::kInvalidArgument,
                  "started by an MPI launcher with " + std::to_string(launcher_size_) +
                      " ranks, but this triplet-build was built without MPI (EMT_WITH_MPI=OFF); use --part I/N and --merge (docs/scale.md)");
    }
    work();
    return 0;
  }
#ifdef EMT_HAVE_MPI
  // The work runs on a thread of its own while this thread, the only one
  // that calls MPI, listens: a rank whose work fails tells every other rank
  // at once, and they stop as on SIGTERM (request_stop), keeping what they
  // finished for --resume, instead of building to the end of their parts.
  constexpr int kStopTag = 7301;
  Outcome mine;
  std::atomic<bool> done{false};
  std::thread worker([&] {
    mine = run(work);
    done = true;
  });
  int stops_received = 0;
  auto receive_stop = [&](int source) {
    int unused = 0;
    MPI_Recv(&unused, 1, MPI_INT, source, kStopTag, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    ++stops_received;
  };
  while (!done) {
    int arrived = 0;
    MPI_Status status;
    MPI_Iprobe(MPI_ANY_SOURCE, kStopTag, MPI_COMM_WORLD, &arrived, &status);
    if (arrived) {
      receive_stop(status.MPI_SOURCE);
      request_stop();
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  worker.join();
  // A failure of its own (not a stop: a signal, or another rank's failure) is told.
  const bool tells = mine.failed && mine.kind != ErrorKind::kAborted;
  const int signal_word = 1;
  std::vector<MPI_Request> sends;
  if (tells) {
    for (int r = 0; r < size_; ++r) {
      if (r == rank_) continue;
      sends.emplace_back();
      MPI_Isend(&signal_word, 1, MPI_INT, r, kStopTag, MPI_COMM_WORLD, &sends.back());
    }
  }
  // The lowest rank with an error of its own, else the lowest failed rank
  // (size_ when none), and how many failed. Every rank reaches these
  // reductions whatever its work did, so none waits forever.
  const int mine_told = tells ? rank_ : size_, mine_rank = mine.failed ? rank_ : size_, mine_failed = mine.failed ? 1 : 0;
  const int mine_tellers = tells ? 1 : 0;
  int first_told = size_, first = size_, failed = 0, tellers = 0;
  MPI_Allreduce(&mine_told, &first_told, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  MPI_Allreduce(&mine_rank, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  MPI_Allreduce(&mine_failed, &failed, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  MPI_Allreduce(&mine_tellers, &tellers, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  // Every stop sent is received before the next collective step (or MPI_Finalize).
  while (stops_received < tellers - (tells ? 1 : 0)) receive_stop(MPI_ANY_SOURCE);
  if (!sends.empty()) MPI_Waitall(static_cast<int>(sends.size()), sends.data(), MPI_STATUSES_IGNORE);
  if (first_told < size_) first = first_told;
  if (first == size_) return 0;
  // The failed rank's error, as kind, message and where, to every rank.
  std::string packed;
  if (rank_ == first) packed = std::string(1, static_cast<char>(mine.kind)) + mine.message + '\0' + mine.where;
  int length = static_cast<int>(packed.size());
  MPI_Bcast(&length, 1, MPI_INT, first, MPI_COMM_WORLD);
  packed.resize(static_cast<std::size_t>(length));
  MPI_Bcast(packed.data(), length, MPI_CHAR, first, MPI_COMM_WORLD);
  const auto kind = static_cast<ErrorKind>(packed.at(0));
  if (rank_ != 0) return exit_code_for(kind);
  const std::size_t nul = packed.find('\0');
  // Ranks stopped because of another's failure are not failures of their own.
  const int stopped = first_told < size_ ? failed - tellers : 0, others = failed - 1 - stopped;
  auto ranks = [](int n) { return std::to_string(n) + " other rank" + (n > 1 ? "s" : ""); };
  std::string prefix = "rank " + std::to_string(first) + " of " + std::to_string(size_);
  if (failed == size_ && stopped == 0 && size_ > 1) {
    prefix += " (all ranks failed)";
  } else if (others > 0 || stopped > 0) {
    std::string notes = others > 0 ? "and " + ranks(others) : "";
    if (stopped > 0) notes += (notes.empty() ? "" : "; ") + ranks(stopped) + " stopped early, resumable";
    prefix += " (" + notes + ")";
  }
  throw Error(kind, prefix + ": " + packed.substr(1, nul - 1), packed.substr(nul + 1));
#else
  return 0;  // unreachable: never active without MPI
#endif
}

double MpiLaunch::sum(double value) const {
#ifdef EMT_HAVE_MPI
  if (active_) {
    double total = 0;
    MPI_Allreduce(&value, &total, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    return total;
  }
#endif
  return value;
}

}  // namespace emt
