#pragma once
// RUN/run.json: the options a training run was started with, which
// `ssan-train --resume` reuses. Torch-free, so it can be read (and fuzzed)
// without LibTorch.
#include <string>

#include <nlohmann/json.hpp>

namespace emt::ssan {

/// Parses RUN/run.json and checks the type of every field ssan-train reads
/// back, so a damaged file is one emt::Error naming it (kNotFound when
/// absent, kDataLoss when not JSON or a field has the wrong type) instead of
/// a JSON type error from deep inside the option handling.
[[nodiscard]] nlohmann::json read_run_json(const std::string& path);

}  // namespace emt::ssan
