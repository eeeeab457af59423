#pragma once
// ssan-train's work: training from shards with checkpoints that resume
// exactly (checkpoint.hpp); ssan-eval's is in evaluate.hpp.
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "emt/ssan/config.hpp"
#include "emt/ssan/model.hpp"

namespace emt::ssan {

/// Which clock --max-minutes (and snapshots) count.
enum class BudgetClock {
  kWall,  ///< wall-clock time since the start of the run
  kCpu,   ///< the process's CPU time divided by its torch threads: fair comparisons on a shared machine
};
[[nodiscard]] BudgetClock parse_budget_clock(const std::string& name);
[[nodiscard]] std::string to_string(BudgetClock c);

/// How the outer slices of a training triplet sit relative to its middle.
enum class TrainAlignment {
  kOracle,  ///< as triplet-build stored them: both aligned to the known middle slice
  kBlind,   ///< as ssan-interpolate sees them: in the frame half way between the two,
            ///< so the target is displaced by the middle's own deviation (stored shifts)
};
[[nodiscard]] TrainAlignment parse_train_alignment(const std::string& name);
[[nodiscard]] std::string to_string(TrainAlignment a);

struct TrainOptions {
  std::string data_dir, split = "train", val_split = "val", run_dir;
  int batch = 3;
  int crop = 512;                 ///< random crop side (paper: 512)
  int epochs = 30;                ///< at the base learning rate
  int decay_epochs = 20;          ///< then at lr * decay
  double lr = 1e-3, decay = 0.1;  ///< Adam (0.9, 0.999)
  std::int64_t warmup_steps = 100;  ///< linear lr warm-up (not in the paper; 0 = none)
  std::int64_t max_steps = -1;    ///< stop after this many steps (a checkpoint is written)
  double max_minutes = -1;        ///< stop after this much time (see budget_clock)
  /// With max_minutes: ignore epochs / decay_epochs and fit the schedule
  /// (warm-up, base rate, decay for the last 40%, as the paper's 30 + 20
  /// epochs) into the time, from the step rate measured over the first steps.
  bool fit_schedule = false;
  BudgetClock budget_clock = BudgetClock::kWall;
  double snapshot_minutes = 0;    ///< > 0: copy the model to RUN/snapshots/ every this many budget minutes
  TrainAlignment alignment = TrainAlignment::kOracle;
  std::string init_from;          ///< start from this checkpoint's weights (fine-tuning; the config must match)
  std::uint64_t seed = 0;
  bool resume = false;            ///< continue from run_dir/last.pt
  int val_samples = 16;           ///< validation triplets (evenly spaced; 0 = all)
  int montage_samples = 3;
  bool quiet = false;
  int max_nonfinite = 10;         ///< consecutive non-finite losses that stop the run
  /// Steps per metrics.csv row (the mean of their losses; the loop reads the
  /// device once per row). 0: 1 on the CPU, where a read costs nothing, and
  /// kCudaLogEvery on CUDA, where each read waits for the GPU.
  int log_every = 0;
  std::string device = "auto";    ///< cpu, cuda, cuda:N, auto (resolve_device)
  std::string amp = "none";       ///< none or bf16 (CUDA only)
  /// Data parallel: file:///PATH or tcp://HOST:PORT when the launcher's
  /// variables give no MASTER_ADDR (distributed.hpp); empty: from the environment.
  std::string rendezvous;
  double dist_timeout_s = 120;    ///< a rank silent this long in a collective stops the run
};

inline constexpr int kCudaLogEvery = 25;

struct TrainSummary {
  std::int64_t steps = 0, epochs_done = 0, skipped_nonfinite = 0;
  double best_psnr = 0, seconds = 0, data_wait_share = 0, samples_per_s = 0;
  double first_loss = 0, last_loss = 0;
  std::int64_t planned_steps = 0;  ///< the schedule's length (fitted to the time with fit_schedule)
  std::string vgg_source;
  nlohmann::json last_validation;
  [[nodiscard]] nlohmann::json to_json() const;
};

/// --resume: the options a run was started with (RUN/run.json, read by
/// read_run_json), except those the command line gives again
/// (`given(option name)`, e.g. "crop"), which keep their value in `options`.
/// A run started with a fitted schedule keeps it unless --epochs or
/// --decay-epochs are given; runs from before warm-up existed had none.
/// Throws kDataLoss naming `origin` when a recorded value has the wrong type.
[[nodiscard]] TrainOptions resumed_options(TrainOptions options, const nlohmann::json& started,
                                           const std::function<bool(const std::string&)>& given, const std::string& origin);

/// Trains; throws emt::Error (kAborted after SIGINT/SIGTERM with last.pt saved).
TrainSummary train(const SsanConfig& config, const TrainOptions& options, const std::function<void(const std::string&)>& warn);

}  // namespace emt::ssan
