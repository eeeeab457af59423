#include "emt/ssan/run_record.hpp"

#include <filesystem>

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

}  // namespace emt::ssan
