#pragma once
// A training run's records: RUN/run.json (the options it was started with,
// which `ssan-train --resume` reuses), metrics.csv (one row per step) and
// val.csv (one row per validation). Torch-free, so run.json can be read (and
// fuzzed) without LibTorch.
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace emt::ssan {

/// Parses RUN/run.json and checks the type of every field ssan-train reads
/// back, so a damaged file is one emt::Error naming it (kNotFound when
/// absent, kDataLoss when not JSON or a field has the wrong type) instead of
/// a JSON type error from deep inside the option handling.
[[nodiscard]] nlohmann::json read_run_json(const std::string& path);

/// The run's logs. A resumed run keeps the rows of metrics.csv and val.csv up
/// to the checkpoint's step and drops later ones: the steps after the
/// checkpoint are trained again, and logging them twice would draw two curves.
class RunLog {
 public:
  /// Starts metrics.csv with `metrics_header`; with `resume_step`, after the
  /// rows kept from the run so far.
  RunLog(std::filesystem::path run, const std::string& metrics_header, std::optional<std::int64_t> resume_step);
  /// RUN/run.json, written atomically.
  void write_run_json(const nlohmann::json& record) const;
  /// One metrics.csv row (without newline), flushed: a killed run keeps its log.
  void add_metrics(const std::string& row);
  void add_validation(std::int64_t step, std::int64_t epoch, double psnr, double ssim, double ie);

 private:
  std::filesystem::path run_;
  std::ofstream metrics_, validation_;
};

}  // namespace emt::ssan
