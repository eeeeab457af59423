#include "emt/ssan/trainer.hpp"

#include <array>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <set>

#include <sys/resource.h>
#include <tuple>
#include <type_traits>
#include <sstream>

#include <fmt/format.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "emt/common/atomic_file.hpp"
#include "emt/common/cli.hpp"
#include "emt/common/error.hpp"
#include "emt/common/output_guard.hpp"
#include "emt/common/progress.hpp"
#include "emt/common/sampling.hpp"
#include "emt/emio/volume_writer.hpp"
#include "emt/ssan/checkpoint.hpp"
#include "emt/ssan/dataset.hpp"
#include "emt/ssan/distributed.hpp"
#include "emt/ssan/interop.hpp"
#include "emt/ssan/losses.hpp"
#include "emt/ssan/metrics.hpp"
#include "emt/ssan/model.hpp"
#include "emt/ssan/run_record.hpp"
#include "emt/ssan/training_plot.hpp"
#include "emt/triplets/montage.hpp"
#include "emt/triplets/preprocessing.hpp"
#include "emt/triplets/split.hpp"
#include "tensor_image.hpp"

namespace emt::ssan {
namespace fs = std::filesystem;
using nlohmann::json;

BudgetClock parse_budget_clock(const std::string& name) {
  if (name == "wall") return BudgetClock::kWall;
  if (name == "cpu") return BudgetClock::kCpu;
  throw Error(ErrorKind::kInvalidArgument, "--budget-clock must be wall or cpu (got '" + name + "')");
}
std::string to_string(BudgetClock c) { return c == BudgetClock::kCpu ? "cpu" : "wall"; }

TrainAlignment parse_train_alignment(const std::string& name) {
  if (name == "oracle") return TrainAlignment::kOracle;
  if (name == "blind") return TrainAlignment::kBlind;
  throw Error(ErrorKind::kInvalidArgument, "--train-alignment must be oracle or blind (got '" + name + "')");
}
std::string to_string(TrainAlignment a) { return a == TrainAlignment::kBlind ? "blind" : "oracle"; }

TrainOptions resumed_options(TrainOptions o, const json& started, const std::function<bool(const std::string&)>& given,
                             const std::string& origin) {
  // The recorded value of `key` unless the command line gave it again.
  auto keep = [&](bool given_again, const char* key, auto& field) {
    if (given_again || !started.contains(key)) return;
    try {
      field = started.at(key).get<std::decay_t<decltype(field)>>();
    } catch (const json::exception&) {
      throw Error(ErrorKind::kDataLoss, std::string("run.json: '") + key + "' has the wrong type", origin);
    }
  };
  keep(given("data"), "data", o.data_dir);
  keep(given("split"), "split", o.split);
  keep(given("val-split"), "val_split", o.val_split);
  keep(given("batch"), "batch", o.batch);
  keep(given("crop"), "crop", o.crop);
  keep(given("epochs"), "epochs", o.epochs);
  keep(given("decay-epochs"), "decay_epochs", o.decay_epochs);
  keep(given("lr"), "lr", o.lr);
  if (!given("warmup-steps")) o.warmup_steps = 0;  // runs started before warm-up existed had none
  keep(given("warmup-steps"), "warmup_steps", o.warmup_steps);
  keep(given("max-steps"), "max_steps", o.max_steps);  // a resumed bounded run stays bounded
  keep(given("max-minutes"), "max_minutes", o.max_minutes);
  keep(given("epochs") || given("decay-epochs"), "fit_schedule", o.fit_schedule);
  std::string clock = to_string(o.budget_clock), alignment = to_string(o.alignment);
  keep(given("budget-clock"), "budget_clock", clock);
  keep(given("train-alignment"), "train_alignment", alignment);
  o.budget_clock = parse_budget_clock(clock);
  o.alignment = parse_train_alignment(alignment);
  keep(given("seed"), "seed", o.seed);
  keep(given("val-samples"), "val_samples", o.val_samples);
  return o;
}

json TrainSummary::to_json() const {
  return json{{"steps", steps}, {"epochs_done", epochs_done}, {"skipped_nonfinite", skipped_nonfinite}, {"best_val_psnr", best_psnr},
              {"seconds", seconds}, {"data_wait_share", data_wait_share}, {"samples_per_s", samples_per_s},
              {"first_loss", first_loss}, {"last_loss", last_loss}, {"planned_steps", planned_steps}, {"vgg", vgg_source}, {"last_validation", last_validation}};
}

namespace {

cv::Mat to_u8(const torch::Tensor& t) {
  cv::Mat m;
  to_mat(t).convertTo(m, CV_8U);
  return m;
}

// |prediction - truth| on the 0-255 scale, doubled so small errors show.
cv::Mat error_image(const cv::Mat& pred, const cv::Mat& truth) {
  cv::Mat err, u8;
  cv::absdiff(pred, truth, err);
  err.convertTo(u8, CV_8U, 2.0);
  return u8;
}



// The paper's schedule (o.lr for o.epochs, then o.lr * o.decay) with a linear
// warm-up over the first o.warmup_steps steps: Adam's first steps move every
// weight by about lr whatever its gradient, which on a fresh model with
// residual image heads throws the prediction far off (loss x4.5 after step 1
// even with Charbonnier alone) and, through the quartic style term, makes
// the first hundred steps a search for the way back.
//
// A schedule fitted to the time budget decays at a step instead of an epoch.
double learning_rate(const TrainOptions& o, std::int64_t epoch, std::int64_t step, std::int64_t decay_step) {
  const bool decayed = decay_step >= 0 ? step >= decay_step : epoch >= o.epochs;
  const double base = decayed ? o.lr * o.decay : o.lr;
  if (o.warmup_steps <= 0 || step >= o.warmup_steps) return base;
  return base * static_cast<double>(step + 1) / static_cast<double>(o.warmup_steps);
}

struct Validation {
  double psnr = 0, ssim = 0, ie = 0;
  std::vector<cv::Mat> montage_rows;
};

// Data parallel: each rank scores every world-th sample, the sums are
// reduced; rank 0 alone also draws the montage rows.
Validation validate(Ssan& model, const TripletDataset& data, int max_samples, int montage_samples, Distributed& dist, const torch::Device& device) {
  torch::NoGradGuard no_grad;
  model->eval();
  Validation v;
  const std::int64_t n = max_samples > 0 ? std::min<std::int64_t>(data.size(), max_samples) : data.size();
  for (std::int64_t k = 0; k < n; ++k) {
    const bool mine = k % dist.world() == dist.rank(), montage = dist.is_main() && k < montage_samples;
    if (!mine && !montage) continue;
    const std::int64_t i = evenly_spaced(k, n, data.size());
    const torch::Tensor s = data.read(i).to(device).to(torch::kFloat32).div_(255.0);
    const torch::Tensor pred = model->forward(torch::stack({s[0], s[2]}).unsqueeze(0)).output[0][0];
    const cv::Mat p = to_mat(pred), g = to_mat(s[1]);
    const double sample_psnr = psnr(p, g);
    if (mine) {
      v.psnr += sample_psnr;
      v.ssim += ssim(p, g);
      v.ie += interpolation_error(p, g);
    }
    if (montage) {
      const auto& r = data.ref(i);
      v.montage_rows.push_back(triplets::captioned_row({to_u8(s[0]), to_u8(pred), to_u8(s[1]), to_u8(s[2]), error_image(p, g)},
                                                       data.tile_size(), fmt::format("{} z={} y={} x={}  PSNR {:.2f} dB", r.source, r.z, r.y, r.x, sample_psnr)));
    }
  }
  const std::vector<double> sums = dist.sum({v.psnr, v.ssim, v.ie});
  v.psnr = sums[0] / static_cast<double>(n);
  v.ssim = sums[1] / static_cast<double>(n);
  v.ie = sums[2] / static_cast<double>(n);
  model->train();
  return v;
}



double process_cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + 1e-6 * static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

// Minutes of the time budget used since construction, on the chosen clock.
class BudgetTimer {
 public:
  BudgetTimer(BudgetClock clock, int threads) : clock_(clock), threads_(std::max(1, threads)), wall0_(std::chrono::steady_clock::now()), cpu0_(process_cpu_seconds()) {}
  [[nodiscard]] double minutes() const {
    if (clock_ == BudgetClock::kCpu) return (process_cpu_seconds() - cpu0_) / threads_ / 60.0;
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0_).count() / 60.0;
  }

 private:
  BudgetClock clock_;
  int threads_;
  std::chrono::steady_clock::time_point wall0_;
  double cpu0_;
};

// The loss terms of the steps since the last metrics row, summed on the
// device: reading a CUDA tensor on the host waits for the GPU's queue to
// drain, so the loop reads these once per row (log_every), not every step.
class StepLog {
 public:
  static constexpr std::size_t kTerms = 6;  ///< total, charbonnier, feature, style_balance, gradient, texture
  explicit StepLog(const torch::Device& device)
      : f64_(torch::TensorOptions().dtype(torch::kFloat64).device(device)), trailing_(torch::zeros({}, f64_)) {
    reset();
  }

  /// One step's terms; `finite`: a bool scalar, false when the step's loss
  /// (on any rank) was not finite and its gradients were zeroed.
  void add(const LossTerms& t, const torch::Tensor& finite) {
    torch::NoGradGuard no_grad;
    const torch::Tensor terms = torch::stack({t.total, t.charbonnier, t.feature, t.style_balance, t.gradient, t.texture}).detach().to(torch::kFloat64);
    sums_.add_(torch::where(finite, terms, torch::zeros_like(terms)));
    const torch::Tensor bad = torch::logical_not(finite).to(torch::kFloat64);
    nonfinite_.add_(bad);
    trailing_.mul_(bad).add_(bad);  // consecutive non-finite steps ending here (across rows)
    longest_.copy_(torch::maximum(longest_, trailing_));
    ++steps_;
  }
  [[nodiscard]] std::int64_t steps() const noexcept { return steps_; }

  struct Interval {
    std::int64_t steps = 0, nonfinite = 0;
    std::int64_t longest_nonfinite_run = 0;  ///< consecutive non-finite steps, counted across rows
    std::array<double, kTerms> sums{};  ///< over the finite steps
  };
  /// The interval so far (one host read) and a fresh one.
  Interval take() {
    const torch::Tensor all = torch::cat({sums_, nonfinite_.reshape({1}), longest_.reshape({1})}).to(torch::kCPU);
    const auto* v = all.data_ptr<double>();
    Interval in;
    in.steps = steps_;
    std::copy(v, v + kTerms, in.sums.begin());
    in.nonfinite = static_cast<std::int64_t>(v[kTerms]);
    in.longest_nonfinite_run = static_cast<std::int64_t>(v[kTerms + 1]);
    reset();
    return in;
  }

 private:
  void reset() {
    sums_ = torch::zeros({static_cast<std::int64_t>(kTerms)}, f64_);
    nonfinite_ = torch::zeros({}, f64_);
    longest_ = trailing_.clone();
    steps_ = 0;
  }
  torch::TensorOptions f64_;  ///< float64 on the training device
  torch::Tensor sums_, nonfinite_, trailing_, longest_;
  std::int64_t steps_ = 0;
};

// Steps timed before a schedule is fitted to the budget: past the first
// step's allocations, few enough to cost well under a minute.
constexpr std::int64_t kCalibrationSteps = 20;
// The decayed share of a fitted schedule: the paper's 20 of 50 epochs.
constexpr double kDecayedShare = 0.4;

}  // namespace

TrainSummary train(const SsanConfig& config, const TrainOptions& options, const std::function<void(const std::string&)>& warn_all) {
  const auto start = std::chrono::steady_clock::now();
  // Data parallel (docs/scale.md): ranks other than 0 are quiet and keep
  // their copies of the run files in a scratch directory of their own.
  const Rendezvous rendezvous = rendezvous_from_environment(options.rendezvous);
  const torch::Device device = resolve_device(options.device, rendezvous.local_rank);
  Distributed dist(rendezvous, std::chrono::milliseconds(static_cast<std::int64_t>(options.dist_timeout_s * 1000)), device);
  const RankScratch scratch(dist);
  TrainOptions o = options;
  if (!dist.is_main()) o.quiet = true;
  const std::function<void(const std::string&)> warn = dist.is_main() ? warn_all : std::function<void(const std::string&)>();
  const Amp amp = parse_amp(o.amp, device);
  if (o.log_every < 0) throw Error(ErrorKind::kInvalidArgument, "--log-every must be >= 0 (0: automatic)");
  const std::int64_t log_every = o.log_every > 0 ? o.log_every : device.is_cuda() ? kCudaLogEvery : 1;
  const BudgetTimer budget(o.budget_clock, torch::get_num_threads());
  if (o.fit_schedule && !(o.max_minutes > 0)) throw Error(ErrorKind::kInvalidArgument, "fitting the schedule to the time needs --max-minutes > 0");
  if (o.alignment == TrainAlignment::kBlind && o.crop <= 0) throw Error(ErrorKind::kInvalidArgument, "--train-alignment blind needs --crop smaller than the tiles");
  if (o.batch < 1 || o.crop < 8 || o.epochs < 0 || o.decay_epochs < 0 || !(o.lr > 0 && std::isfinite(o.lr))) {
    throw Error(ErrorKind::kInvalidArgument, "batch >= 1, crop >= 8, epochs >= 0 and lr > 0 required");
  }
  const fs::path run = dist.is_main() ? fs::path(o.run_dir) : scratch.path();
  if (o.resume) check_world_size(fs::path(o.run_dir) / "run.json", dist.world());
  const TripletDataset train_data(o.data_dir, o.split);
  std::unique_ptr<TripletDataset> val_data;
  if (!o.val_split.empty()) val_data = std::make_unique<TripletDataset>(o.data_dir, o.val_split);
  if (o.crop > train_data.tile_size()) {
    throw Error(ErrorKind::kInvalidArgument, fmt::format("--crop {} is larger than the tiles ({} px)", o.crop, train_data.tile_size()), o.data_dir);
  }
  refuse_output_overlapping_inputs(run, triplets::shard_directory_inputs(o.data_dir), "the run directory");
  ensure_writable_directory(run);
  const OutputLock lock(run);  // a second ssan-train on this run fails at once
  if (!o.resume && fs::exists(run / "last.pt")) {
    throw Error(ErrorKind::kInvalidArgument, "run directory already holds a checkpoint; use --resume to continue it or another --out", run.string());
  }

  // The data's preprocessing travels with every checkpoint (the contract: preprocessing.hpp).
  const CheckpointMeta meta{config.text, triplets::read_preprocessing(o.data_dir)};
  torch::manual_seed(o.seed);
  Ssan model(config.model);
  model->to(device);
  torch::optim::Adam optimizer(model->parameters(), torch::optim::AdamOptions(o.lr).betas({0.9, 0.999}));
  SsanLoss loss_fn(config.loss, warn);
  loss_fn.to(device);
  CheckpointState state;
  if (o.resume) {
    state = load_checkpoint(fs::path(o.run_dir) / "last.pt", model, &optimizer);  // every rank: rank 0's checkpoint
  } else if (!o.init_from.empty()) {
    // Fine-tuning: weights only (a checkpoint or a state dict from Python);
    // optimizer, schedule and data order start afresh.
    init_weights_from(model, o.init_from);
  }
  dist.broadcast(model->parameters());  // DDP: every rank starts from rank 0's weights
  const std::int64_t global_batch = std::int64_t{o.batch} * dist.world();

  const std::int64_t per_epoch = std::max<std::int64_t>(1, train_data.size() / global_batch);
  std::int64_t total = o.fit_schedule ? std::numeric_limits<std::int64_t>::max() : (o.epochs + o.decay_epochs) * per_epoch;
  if (o.fit_schedule && state.planned_steps >= 0) total = state.planned_steps;
  if (o.max_steps >= 0) total = std::min(total, o.max_steps);
  Augmentation aug;
  aug.crop = o.crop;
  aug.blind_alignment = o.alignment == TrainAlignment::kBlind;
  if (aug.blind_alignment && o.crop >= train_data.tile_size()) {
    throw Error(ErrorKind::kInvalidArgument, fmt::format("--train-alignment blind needs --crop smaller than the tiles ({})", train_data.tile_size()));
  }
  BatchLoader loader(train_data, o.batch, aug, o.seed, /*shuffle=*/true, 4, state.epoch, state.position, dist.rank(), dist.world());

  // Logs: keep rows up to the checkpoint's step when resuming.
  TrainingCurves curves;
  if (val_data) curves.set_baselines(validation_baselines(*val_data, o.val_samples));
  if (o.resume) curves.load(run, state.step);
  const int n_gammas = static_cast<int>(model->gammas().size());
  std::string header = "step,epoch,loss,charbonnier,feature,style_balance,gradient,texture,lr,samples_per_s";
  for (int g = 0; g < n_gammas; ++g) header += ",gamma" + std::to_string(g);
  RunLog run_log(run, header, o.resume ? std::optional<std::int64_t>(state.step) : std::nullopt);
  run_log.write_run_json(json{{"config", config.text}, {"vgg", loss_fn.vgg_source()}, {"seed", o.seed},
                                            {"data", o.data_dir}, {"split", o.split}, {"val_split", o.val_split}, {"val_samples", o.val_samples},
                                            {"train_triplets", train_data.size()},
                                            {"batch", o.batch}, {"crop", o.crop}, {"lr", o.lr}, {"epochs", o.epochs},
                                            {"decay_epochs", o.decay_epochs}, {"warmup_steps", o.warmup_steps}, {"threads", torch::get_num_threads()},
                                            {"max_steps", o.max_steps},
                                            {"fit_schedule", o.fit_schedule}, {"max_minutes", o.max_minutes}, {"budget_clock", to_string(o.budget_clock)},
                                            {"train_alignment", to_string(o.alignment)}, {"init_from", o.init_from},
                                            {"device", device.str()}, {"amp", to_string(amp)}, {"log_every", log_every}, {"world_size", dist.world()}, {"launcher", dist.rendezvous().launcher},
                                            {"comm_backend", dist.active() ? to_string(dist.backend()) : "none"}});

  TrainSummary summary;
  summary.vgg_source = loss_fn.vgg_source();
  summary.best_psnr = state.best_psnr;
  Progress progress("ssan-train", o.fit_schedule && state.planned_steps < 0 ? 0 : total, "steps", o.quiet, 10.0);
  progress.tick(state.step);
  std::int64_t step = state.step;
  const auto t_loop = std::chrono::steady_clock::now();
  std::int64_t samples = 0;
  std::int64_t resume_epoch = state.epoch, resume_position_after = state.position;  // after the last batch used
  model->train();
  auto checkpoint_now = [&](std::int64_t epoch, std::int64_t position) {
    state.step = step;
    state.epoch = epoch;
    state.position = position;
    save_checkpoint(run / "last.pt", model, optimizer, state, meta);
  };
  const std::int64_t first_step = step;
  double next_snapshot = o.snapshot_minutes;
  std::optional<std::pair<double, std::int64_t>> calibration_start;  // (minutes, step)
  // DDP: rank 0's clock and the stop decision, agreed at each metrics row, so
  // every rank stops and fits the schedule alike.
  double shared_minutes = 0;
  bool shared_stop = false;
  StepLog step_log(device);
  double lr = o.lr;
  std::int64_t epoch = state.epoch;
  // One metrics row for the steps since the last: the interval's one host
  // read of the device accumulators (and, in DDP, one small allreduce).
  auto write_metrics_row = [&] {
    if (step_log.steps() == 0) return;
    StepLog::Interval in = step_log.take();
    if (dist.active()) {
      std::vector<double> values{interrupt_requested() ? 1.0 : 0.0, dist.is_main() ? budget.minutes() : 0.0};
      values.insert(values.end(), in.sums.begin(), in.sums.end());
      const auto agreed = dist.sum(values);
      shared_stop = agreed[0] > 0;
      shared_minutes = agreed[1];
      std::copy(agreed.begin() + 2, agreed.end(), in.sums.begin());
    }
    const double good = static_cast<double>(in.steps - in.nonfinite) * dist.world();
    std::array<double, StepLog::kTerms> mean{};
    for (std::size_t i = 0; i < mean.size(); ++i) mean[i] = good > 0 ? in.sums[i] / good : 0.0;
    if (in.nonfinite > 0) {
      summary.skipped_nonfinite += in.nonfinite;
      if (warn) warn(fmt::format("non-finite loss in {} of the {} steps up to step {} (epoch {}): their gradients were zeroed", in.nonfinite, in.steps, step, epoch));
      if (in.longest_nonfinite_run >= o.max_nonfinite) {
        throw Error(ErrorKind::kInvalidData, fmt::format("loss not finite for {} consecutive batches; last good checkpoint kept", in.longest_nonfinite_run),
                    (run / "last.pt").string());
      }
    }
    if (in.nonfinite == in.steps) return;  // nothing finite to log
    const double rate = static_cast<double>(samples) / std::max(1e-9, std::chrono::duration<double>(std::chrono::steady_clock::now() - t_loop).count());
    if (summary.first_loss == 0) summary.first_loss = mean[0];
    summary.last_loss = mean[0];
    curves.add_step(step, mean[0], lr);
    std::string row = fmt::format("{},{},{:.8g},{:.8g},{:.8g},{:.8g},{:.8g},{:.8g},{:.6g},{:.3f}", step, epoch, mean[0], mean[1], mean[2],
                                  mean[3], mean[4], mean[5], lr, rate);
    for (const auto& g : model->gammas()) row += fmt::format(",{:.6g}", g.item<double>());
    run_log.add_metrics(row);
    progress.set_status(fmt::format("loss {:.4g}, {:.2f} samples/s", mean[0], rate));
  };
  while (step < total) {
    const double minutes = dist.active() ? shared_minutes : budget.minutes();
    if (o.max_minutes > 0 && minutes >= o.max_minutes) break;
    // The clock is fresh at every step alone, and in DDP at every row.
    const bool clock_fresh = !dist.active() || step_log.steps() == 0;
    if (o.fit_schedule && state.planned_steps < 0 && clock_fresh && step > first_step) {
      // Time the calibration steps, then fix the schedule's length for the rest of the budget.
      if (!calibration_start) {
        calibration_start = std::make_pair(minutes, step);
      } else if (step - calibration_start->second >= kCalibrationSteps) {
        const double per_step = (minutes - calibration_start->first) / static_cast<double>(step - calibration_start->second);
        state.planned_steps = step + static_cast<std::int64_t>((o.max_minutes - minutes) / std::max(per_step, 1e-9));
        state.decay_step = static_cast<std::int64_t>(std::llround((1.0 - kDecayedShare) * static_cast<double>(state.planned_steps)));
        total = o.max_steps >= 0 ? std::min(state.planned_steps, o.max_steps) : state.planned_steps;
        progress.set_total(total);
        if (warn && !o.quiet) warn(fmt::format("schedule fitted to {} budget minutes: {} steps ({:.2f} s each), lr x {} from step {}", o.max_minutes,
                                               state.planned_steps, per_step * 60, o.decay, state.decay_step));
        if (step >= total) break;
      }
    }
    if (o.snapshot_minutes > 0 && minutes >= next_snapshot) {
      const fs::path dir = run / "snapshots";
      fs::create_directories(dir);
      state.step = step;
      save_checkpoint(dir / fmt::format("step{:07d}-min{:06.2f}.pt", step, minutes), model, optimizer, state, meta);
      while (next_snapshot <= minutes) next_snapshot += o.snapshot_minutes;
    }
    const Batch batch = loader.next();
    epoch = batch.epoch;
    lr = learning_rate(o, epoch, step, o.fit_schedule ? (state.decay_step >= 0 ? state.decay_step : std::numeric_limits<std::int64_t>::max()) : -1);
    for (auto& group : optimizer.param_groups()) static_cast<torch::optim::AdamOptions&>(group.options()).lr(lr);
    optimizer.zero_grad();
    const torch::Tensor outer = batch.outer.to(device), gt = batch.gt.to(device);
    std::optional<AutocastScope> autocast(std::in_place, amp);  // forward and loss only
    const SsanOutput out = model->forward(outer);
    const LossTerms terms = loss_fn(out.output, gt, outer);
    autocast.reset();
    // A non-finite loss is decided on the device, not read back each step:
    // the step's gradients (NaN or not) are zeroed before Adam steps, so the
    // weights stay finite; the interval's row counts such steps.
    torch::Tensor finite = torch::isfinite(terms.total.detach());
    terms.total.backward();
    if (dist.active()) {
      // Gradients averaged; whether any rank's loss was non-finite rides in the last bucket.
      finite = dist.average_gradients(model->parameters(), torch::logical_not(finite).to(torch::kFloat64).reshape({1}))[0].eq(0);
    }
    const torch::Tensor nonfinite = torch::logical_not(finite);
    for (const auto& p : model->parameters()) {
      if (p.grad().defined()) p.grad().masked_fill_(nonfinite, 0.0);
    }
    optimizer.step();
    step_log.add(terms, finite);
    ++step;
    samples += global_batch;
    progress.tick();

    const std::int64_t next_position = batch.position + global_batch;
    const bool epoch_end = next_position + global_batch > train_data.size();
    const std::int64_t next_epoch = epoch_end ? epoch + 1 : epoch, resume_position = epoch_end ? 0 : next_position;
    resume_epoch = next_epoch;
    resume_position_after = resume_position;
    // Rows every log_every steps and wherever a checkpoint or the end needs them.
    if (step_log.steps() >= log_every || epoch_end || step == total) write_metrics_row();
    // DDP: all ranks stop at the same step, agreed at a row; rank 0's checkpoint is the run's.
    if (dist.active() ? shared_stop : interrupt_requested()) {
      write_metrics_row();
      checkpoint_now(next_epoch, resume_position);
      throw Error(ErrorKind::kAborted, fmt::format("interrupted at step {}; checkpoint saved, --resume continues", step), (run / "last.pt").string());
    }
    if (epoch_end || step == total) {
      bool improved = false;
      if (val_data) {
        Validation v = validate(model, *val_data, o.val_samples, o.montage_samples, dist, device);
        summary.last_validation = json{{"step", step}, {"epoch", epoch}, {"psnr", v.psnr}, {"ssim", v.ssim}, {"ie", v.ie}};
        run_log.add_validation(step, epoch, v.psnr, v.ssim, v.ie);
        curves.add_validation(step, v.psnr);
        if (!v.montage_rows.empty()) {
          v.montage_rows.insert(v.montage_rows.begin(),
                                triplets::column_labels({"slice 0", "prediction", "truth", "slice 2", "|error| x2"}, val_data->tile_size()));
          emio::write_image_atomic((run / fmt::format("montage-epoch{:03d}.png", epoch)).string(), triplets::stack_rows(v.montage_rows));
        }
        improved = v.psnr > state.best_psnr;
        if (improved) {
          state.best_psnr = v.psnr;
          summary.best_psnr = v.psnr;
        }
      }
      curves.draw_every(run / "loss.png", 30.0);  // rendering costs ~1 s: short epochs must not pay it each time
      checkpoint_now(next_epoch, resume_position);
      if (improved) {
        // best.pt is the checkpoint just written: copy it rather than serialise twice.
        fs::copy_file(run / "last.pt", run / "best.pt.tmp", fs::copy_options::overwrite_existing);
        fsync_path(run / "best.pt.tmp");
        fs::rename(run / "best.pt.tmp", run / "best.pt");
      }
      ++summary.epochs_done;
    }
  }
  // Bounded runs (--max-steps, --max-minutes) end with a checkpoint too: the
  // loader ran ahead (prefetch), so the resume point is the batch after the last one used.
  write_metrics_row();
  if (step != state.step) checkpoint_now(resume_epoch, resume_position_after);
  curves.draw(run / "loss.png");
  summary.steps = step;
  summary.planned_steps = total == std::numeric_limits<std::int64_t>::max() ? step : total;
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double loop = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_loop).count();
  summary.data_wait_share = loop > 0 ? loader.wait_seconds() / loop : 0;
  summary.samples_per_s = loop > 0 ? static_cast<double>(samples) / loop : 0;
  progress.finish();
  return summary;
}


}  // namespace emt::ssan
