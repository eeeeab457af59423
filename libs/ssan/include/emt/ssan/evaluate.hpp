#pragma once
// ssan-eval's work: SSAN and the classical baselines scored on shard triplets.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "emt/ssan/preprocess.hpp"

namespace emt::ssan {

/// What predicts the middle of a triplet in an evaluation.
enum class EvalMethod {
  kSsan,    ///< the model (needs a checkpoint)
  kLinear,  ///< the mean of the two neighbours
  kFlow,    ///< Farneback flow both ways, half-way warps averaged
  kBlur,    ///< the linear mean smoothed: the PSNR a blurred guess gets
};
[[nodiscard]] std::string to_string(EvalMethod m);
/// Every method in table order.
inline constexpr EvalMethod kEvalMethods[] = {EvalMethod::kSsan, EvalMethod::kLinear, EvalMethod::kFlow, EvalMethod::kBlur};

struct EvalOptions {
  std::string checkpoint;  ///< empty: baselines only
  std::string data_dir, split;  ///< split empty: every triplet
  std::string out_dir;     ///< markdown table and per-sample CSV (optional)
  double blur_sigma = -1;  ///< sigma of the blur row; < 0: the best of a grid on these samples
  std::int64_t max_samples = 0;  ///< 0 = all
  int montage_rows = 6;          ///< samples in out_dir/montage.png (0 = none)
  bool force = false;            ///< out_dir may be an existing non-empty directory (only the eval files are replaced)
  std::string device = "auto";   ///< cpu, cuda, cuda:N, auto (distributed.hpp resolve_device)
  /// kCheckpoint: triplets of a source whose build reference differs from the
  /// model's are mapped to the model's reference for SSAN and its prediction
  /// mapped back (preprocess.hpp); kVolume: the triplets as built.
  ReferenceMode reference = ReferenceMode::kCheckpoint;
};

/// PSNR / SSIM / IE / sharpness ratio per method: ssan (with a checkpoint),
/// linear, flow, blur. With out_dir: eval.md, eval.json, eval_samples.csv and
/// montage.png (slice 0 | each method | truth | slice 2). Returns {"n", "methods": {name: {psnr, ssim, ie, sharpness_ratio}},
/// "reference": {"mode", "remapped_sources"}}.
nlohmann::json evaluate(const EvalOptions& options);
/// The markdown table of an evaluate() result.
std::string format_eval_table(const nlohmann::json& result);

}  // namespace emt::ssan
