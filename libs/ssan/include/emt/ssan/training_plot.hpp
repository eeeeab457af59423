#pragma once
// RUN/loss.png: what a training run looks like at a glance. Three panels over
// the training steps: the loss (raw and smoothed, log scale), validation PSNR
// per epoch against the linear / flow / best-blur baselines on the same
// validation samples, and the learning rate (warm-up, decay).
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "emt/ssan/dataset.hpp"

namespace emt::ssan {

class TrainingCurves {
 public:
  void add_step(std::int64_t step, double loss, double lr);
  void add_validation(std::int64_t step, double psnr);
  /// Horizontal references: method name -> validation PSNR.
  void set_baselines(std::map<std::string, double> psnr) { baselines_ = std::move(psnr); }
  /// A resumed run's curves up to `last_step`, from RUN/metrics.csv (columns
  /// step, loss, lr by header name) and RUN/val.csv. Missing files: nothing.
  void load(const std::filesystem::path& run, std::int64_t last_step);
  /// Writes the figure (atomically); nothing before two steps.
  void draw(const std::filesystem::path& png);
  /// draw() unless the last drawing is less than `seconds` of wall time ago.
  void draw_every(const std::filesystem::path& png, double seconds);
  [[nodiscard]] std::size_t steps() const { return step_.size(); }

 private:
  std::vector<double> step_, loss_, lr_, val_step_, val_psnr_;
  std::map<std::string, double> baselines_;
  std::optional<std::chrono::steady_clock::time_point> last_draw_;
};

/// Mean PSNR of the linear, flow and best-blur baselines on the validation
/// samples validation uses (`max_samples` evenly spaced; 0 = all).
[[nodiscard]] std::map<std::string, double> validation_baselines(const TripletDataset& data, int max_samples);

}  // namespace emt::ssan
