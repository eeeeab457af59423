#include "emt/ssan/run_record.hpp"

#include <filesystem>
#include <sstream>

#include <fmt/format.h>

#include "emt/common/atomic_file.hpp"
#include "emt/common/error.hpp"

namespace emt::ssan {
using nlohmann::json;

json read_run_json(const std::string& path) {
  if (!std::filesystem::exists(path)) throw Error(ErrorKind::kNotFound, "no run.json: not an ssan-train run directory", path);
  json j;
  try {
    j = json::parse(read_file(path));
  } catch (const json::exception& e) {
    throw Error(ErrorKind::kDataLoss, std::string("run.json is not valid JSON: ") + e.what(), path);
  }
  if (!j.is_object()) throw Error(ErrorKind::kDataLoss, "run.json is not a JSON object", path);
  enum class Type { kString, kInteger, kUnsigned, kNumber, kBool };
  static const std::pair<const char*, Type> kFields[] = {
      {"config", Type::kString},        {"data", Type::kString},          {"split", Type::kString},
      {"val_split", Type::kString},     {"vgg", Type::kString},           {"budget_clock", Type::kString},
      {"train_alignment", Type::kString}, {"batch", Type::kInteger},      {"crop", Type::kInteger},
      {"epochs", Type::kInteger},       {"decay_epochs", Type::kInteger}, {"warmup_steps", Type::kInteger},
      {"max_steps", Type::kInteger},    {"val_samples", Type::kInteger},  {"threads", Type::kInteger},
      {"train_triplets", Type::kInteger}, {"seed", Type::kUnsigned},      {"lr", Type::kNumber},
      {"max_minutes", Type::kNumber},   {"fit_schedule", Type::kBool}};
  for (const auto& [key, type] : kFields) {
    const auto it = j.find(key);
    if (it == j.end()) continue;
    const bool ok = type == Type::kString    ? it->is_string()
                    : type == Type::kInteger ? it->is_number_integer()
                    : type == Type::kUnsigned ? it->is_number_unsigned()
                    : type == Type::kNumber  ? it->is_number()
                                             : it->is_boolean();
    if (!ok) throw Error(ErrorKind::kDataLoss, std::string("run.json: '") + key + "' has the wrong type", path);
  }
  return j;
}

namespace {

// The file's header and the rows whose first column (the step) is at most
// `last_step`, each ending in a newline; "" when there is no such file.
std::string rows_up_to(const std::filesystem::path& path, std::int64_t last_step) {
  if (!std::filesystem::exists(path)) return "";
  std::istringstream in(read_file(path));
  std::string line, kept;
  while (std::getline(in, line)) {
    const auto comma = line.find(',');
    std::int64_t step = 0;
    try {
      step = std::stoll(line.substr(0, comma));
    } catch (const std::exception&) {
      if (kept.empty()) {  // the header
        kept = line + "\n";
        continue;
      }
      throw Error(ErrorKind::kDataLoss, "not a step in the first column: '" + line.substr(0, 40) + "'", path.string());
    }
    if (step > last_step) break;
    kept += line + "\n";
  }
  return kept;
}

}  // namespace

RunLog::RunLog(std::filesystem::path run, const std::string& metrics_header, std::optional<std::int64_t> resume_step) : run_(std::move(run)) {
  std::string metrics = metrics_header + "\n", validation;
  if (resume_step) {
    const std::string kept = rows_up_to(run_ / "metrics.csv", *resume_step);
    metrics += kept.substr(std::min(kept.size(), kept.find('\n') + 1));  // this run's header, the old rows
    validation = rows_up_to(run_ / "val.csv", *resume_step);
  }
  write_file_atomic(run_ / "metrics.csv", metrics);
  write_file_atomic(run_ / "val.csv", validation);
  metrics_.open(run_ / "metrics.csv", std::ios::app);
  validation_.open(run_ / "val.csv", std::ios::app);
  if (!metrics_ || !validation_) throw Error(ErrorKind::kIo, "cannot append to the run's logs", run_.string());
}

void RunLog::write_run_json(const json& record) const { write_file_atomic(run_ / "run.json", record.dump(2) + "\n"); }

void RunLog::add_metrics(const std::string& row) { metrics_ << row << "\n" << std::flush; }

void RunLog::add_validation(std::int64_t step, std::int64_t epoch, double psnr, double ssim, double ie) {
  validation_ << fmt::format("{},{},{:.6f},{:.6f},{:.6f}\n", step, epoch, psnr, ssim, ie) << std::flush;
}

}  // namespace emt::ssan
