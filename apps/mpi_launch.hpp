#pragma once
// triplet-build started by mpirun (or srun): one process per rank, each
// building its part of the triplets, outcomes agreed on collectively.
//
// MPI is initialised only when a launcher started this process (its
// environment says so), so a plain `triplet-build` never touches MPI. Every
// collective step goes through together(): each rank does its work, then one
// MPI_Allreduce tells every rank whether all succeeded. A failed rank
// therefore never leaves the others waiting in a collective (no MPI_Abort, no
// hang), and the run exits non-zero on every rank with the failed rank's error.
// A rank that fails also tells the others at once (a point-to-point message
// the listening main thread receives while the work runs on another), and
// they stop early, as on SIGTERM, keeping their finished shards for --resume.
#include <functional>
#include <string>

namespace emt {

class MpiLaunch {
 public:
  /// MPI_Init when started by an MPI launcher and built with MPI; else nothing.
  MpiLaunch(int* argc, char*** argv);
  ~MpiLaunch();
  MpiLaunch(const MpiLaunch&) = delete;
  MpiLaunch& operator=(const MpiLaunch&) = delete;

  /// Started by an MPI launcher (and MPI initialised).
  [[nodiscard]] bool active() const noexcept { return active_; }
  [[nodiscard]] int rank() const noexcept { return rank_; }
  [[nodiscard]] int size() const noexcept { return size_; }

  /// Runs `work` on this rank, then every rank learns the outcome of all.
  /// Returns 0 when every rank succeeded. Otherwise rank 0 throws the error of
  /// the lowest rank that failed of its own accord (else the lowest failed rank) as emt::Error with "rank R of N: " in front (its
  /// kind, so its exit code), and the other ranks return that exit code without
  /// printing: the run reports one line, not one per rank. Not active: runs
  /// `work` and lets its exceptions through. Throws a usage error when an MPI
  /// launcher started a build without MPI support (every process would build
  /// everything into the same directory).
  [[nodiscard]] int together(const std::function<void()>& work) const;

  /// The sum of `value` over all ranks (every rank must call it); `value` when not active.
  [[nodiscard]] double sum(double value) const;

 private:
  bool active_ = false;
  int rank_ = 0, size_ = 1;
  int launcher_size_ = 1;  ///< ranks the launcher's environment announces (also without MPI support)
};

}  // namespace emt
