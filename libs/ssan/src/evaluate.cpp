#include "emt/ssan/evaluate.hpp"

#include <array>
#include <map>
#include <set>

#include <fmt/format.h>
#include <opencv2/imgproc.hpp>
#include <torch/torch.h>

#include "emt/common/atomic_file.hpp"
#include "emt/common/cli.hpp"
#include "emt/common/error.hpp"
#include "emt/common/output_guard.hpp"
#include "emt/common/sampling.hpp"
#include "emt/emio/volume_writer.hpp"
#include "emt/ssan/dataset.hpp"
#include "emt/ssan/distributed.hpp"
#include "emt/ssan/interop.hpp"
#include "emt/ssan/metrics.hpp"
#include "emt/triplets/montage.hpp"
#include "emt/triplets/split.hpp"
#include "tensor_image.hpp"

namespace emt::ssan {
using nlohmann::json;

std::string to_string(EvalMethod m) {
  switch (m) {
    case EvalMethod::kSsan: return "ssan";
    case EvalMethod::kLinear: return "linear";
    case EvalMethod::kFlow: return "flow";
    case EvalMethod::kBlur: return "blur";
  }
  return "?";
}

namespace {

/// A source's triplets, matched at build time to its own reference, moved
/// to the model's reference (and back): one LUT each way for the source.
struct SourceRemap {
  std::array<std::uint8_t, 256> to_model{}, back{};
};

std::map<std::string, SourceRemap> remaps_to_model(const std::vector<triplets::PreprocessingRecord>& data,
                                                   const std::vector<triplets::PreprocessingRecord>& model_records) {
  std::map<std::string, SourceRemap> out;
  const auto model_ref = model_reference(model_records);
  if (!model_ref) return out;  // a model without a record: nothing to match to
  for (const auto& rec : data) {
    if (!rec.histogram_matching) continue;
    const auto own = model_reference({rec});  // unit mass, comparable with the model's
    // Built to a reference the model trained with (its own data): as built.
    bool trained_on = false;
    for (const auto& m : model_records) trained_on |= own == model_reference({m});
    if (!own || trained_on) continue;
    SourceRemap r;
    r.to_model = triplets::matching_lut(*own, *model_ref, /*keep_zero=*/true);
    r.back = invert_lut(r.to_model);
    out[rec.source_id] = r;
  }
  return out;
}

cv::Mat predict(Ssan& model, const cv::Mat& s0, const cv::Mat& s2) {
  const torch::Tensor in = torch::stack({from_mat(s0), from_mat(s2)}).unsqueeze(0).to(torch::kFloat32).div(255.0);
  return to_mat(model->forward(in.to(model->parameters().front().device())).output[0][0]);
}

}  // namespace

json evaluate(const EvalOptions& o) {
  // The output rules before any work: not an input, an existing non-empty
  // directory only with --force, locked; files appear together at the end.
  std::unique_ptr<OutputLock> lock;
  if (!o.out_dir.empty()) {
    auto inputs = triplets::shard_directory_inputs(o.data_dir);
    inputs.emplace_back(o.checkpoint);
    refuse_output_overlapping_inputs(o.out_dir, inputs, "--out");
    check_output_directory(o.out_dir, o.force);
    lock = std::make_unique<OutputLock>(o.out_dir);
  }
  const TripletDataset data(o.data_dir, o.split);
  std::unique_ptr<Ssan> model;
  std::map<std::string, SourceRemap> remaps;  // by source id; absent: the triplets as built suit the model
  if (!o.checkpoint.empty()) {
    LoadedModel loaded = load_any_model(o.checkpoint);  // a checkpoint or a state dict with its JSON
    model = std::make_unique<Ssan>(loaded.model);
    (*model)->to(resolve_device(o.device));
    if (o.reference == ReferenceMode::kCheckpoint) remaps = remaps_to_model(triplets::read_preprocessing(o.data_dir), loaded.preprocessing);
  }
  std::vector<EvalMethod> methods;
  for (EvalMethod m : kEvalMethods) {
    if (m != EvalMethod::kSsan || model) methods.push_back(m);
  }
  std::map<EvalMethod, std::array<double, 4>> sums;  // psnr, ssim, ie, sharpness ratio
  std::string csv = "shard,index,source,z,y,x,method,psnr,ssim,ie,sharpness_ratio\n";
  const std::int64_t n = o.max_samples > 0 ? std::min(o.max_samples, data.size()) : data.size();
  json blur_search;
  double blur_sigma = o.blur_sigma;
  if (blur_sigma < 0) {
    const BlurSearch search = search_blur_sigma(n, [&](std::int64_t k) {
      throw_if_interrupted();
      return data.read_u8(evenly_spaced(k, n, data.size()));
    });
    blur_sigma = search.best_sigma;
    blur_search = json::object();
    for (std::size_t g = 0; g < search.sigmas.size(); ++g) blur_search[fmt::format("{}", search.sigmas[g])] = search.mean_psnr[g];
  }
  // Montage: evenly spaced samples, every method's prediction between the
  // inputs and the truth, so a blurred win in PSNR can be seen for what it is.
  const std::int64_t montage_n = o.out_dir.empty() ? 0 : std::min<std::int64_t>(o.montage_rows, n);
  std::set<std::int64_t> montage_at;
  for (std::int64_t j = 0; j < montage_n; ++j) montage_at.insert(evenly_spaced(j, montage_n, n));
  std::vector<cv::Mat> montage_rows;
  std::vector<std::string> montage_labels{"slice 0"};
  for (EvalMethod m : methods) montage_labels.push_back(to_string(m));
  montage_labels.insert(montage_labels.end(), {"truth", "slice 2"});
  torch::NoGradGuard no_grad;
  for (std::int64_t k = 0; k < n; ++k) {
    throw_if_interrupted();
    const std::int64_t i = evenly_spaced(k, n, data.size());
    const auto& r = data.ref(i);
    const auto [s0, gt, s2] = data.read_u8(i);
    const double gt_sharp = sharpness(gt);
    std::vector<cv::Mat> cells{s0};
    std::string caption = fmt::format("{} z={} y={} x={}  PSNR", r.source, r.z, r.y, r.x);
    const auto remap = remaps.find(r.source);
    for (EvalMethod m : methods) {
      cv::Mat pred;
      switch (m) {
        case EvalMethod::kSsan:
          if (remap == remaps.end()) {
            pred = predict(*model, s0, s2);
          } else {
            // In the model's intensities, and the 8-bit prediction back in the source's.
            cv::Mat p8;
            predict(*model, triplets::apply_lut(s0, remap->second.to_model), triplets::apply_lut(s2, remap->second.to_model)).convertTo(p8, CV_8U);
            pred = triplets::apply_lut(p8, remap->second.back);
          }
          break;
        case EvalMethod::kLinear: pred = linear_baseline(s0, s2); break;
        case EvalMethod::kFlow: pred = flow_baseline(s0, s2); break;
        case EvalMethod::kBlur: pred = blur_baseline(s0, s2, blur_sigma); break;
      }
      // Predictions are quantised to 8 bit, as an interpolated slice is stored.
      cv::Mat q;
      pred.convertTo(q, CV_8U);
      const std::array<double, 4> v{psnr(q, gt), ssim(q, gt), interpolation_error(q, gt), gt_sharp > 0 ? sharpness(q) / gt_sharp : 0};
      for (int j = 0; j < 4; ++j) sums[m][static_cast<std::size_t>(j)] += v[static_cast<std::size_t>(j)];
      csv += fmt::format("{},{},{},{},{},{},{},{:.6f},{:.6f},{:.6f},{:.6f}\n", r.shard, r.index, r.source, r.z, r.y, r.x, to_string(m), v[0], v[1], v[2], v[3]);
      cells.push_back(q);
      caption += fmt::format(" {} {:.1f}", to_string(m), v[0]);
    }
    if (montage_at.count(k) != 0) {
      cells.insert(cells.end(), {gt, s2});
      montage_rows.push_back(triplets::captioned_row(cells, data.tile_size(), caption));
    }
  }
  json result;
  result["n"] = n;
  result["blur_sigma"] = blur_sigma;
  if (!blur_search.is_null()) result["blur_sigma_search"] = blur_search;  // mean PSNR per sigma tried
  for (EvalMethod m : methods) {
    const auto& s = sums[m];
    result["methods"][to_string(m)] = {{"psnr", s[0] / n}, {"ssim", s[1] / n}, {"ie", s[2] / n}, {"sharpness_ratio", s[3] / n}};
  }
  if (model) {
    json remapped = json::array();
    for (const auto& [source, remap] : remaps) remapped.push_back(source);
    result["reference"] = {{"mode", to_string(o.reference)}, {"remapped_sources", remapped}};
  }
  if (!o.out_dir.empty()) {
    // All four files or none (a full disk leaves nothing): staged in OUT.tmp/.
    StagedDirectory staged(o.out_dir, o.force);
    write_file(staged.path() / "eval.md", format_eval_table(result));
    write_file(staged.path() / "eval_samples.csv", csv);
    write_file(staged.path() / "eval.json", result.dump(2) + "\n");
    if (!montage_rows.empty()) {
      montage_rows.insert(montage_rows.begin(), triplets::column_labels(montage_labels, data.tile_size()));
      emio::write_image_atomic((staged.path() / "montage.png").string(), triplets::stack_rows(montage_rows));
    }
    throw_if_interrupted(o.out_dir);
    staged.commit();
  }
  return result;
}

std::string format_eval_table(const json& r) {
  std::string t = fmt::format("| method (n = {}) | PSNR dB | SSIM | IE | sharpness ratio |\n|---|---|---|---|---|\n", r.at("n").get<std::int64_t>());
  for (EvalMethod method : kEvalMethods) {
    std::string name = to_string(method);
    if (!r.at("methods").contains(name)) continue;
    const json& v = r.at("methods").at(name);
    if (method == EvalMethod::kBlur) name = fmt::format("blur ({}sigma {})", r.contains("blur_sigma_search") ? "best " : "", r.value("blur_sigma", 0.0));
    t += fmt::format("| {} | {:.2f} | {:.4f} | {:.2f} | {:.2f} |\n", name, v.at("psnr").get<double>(), v.at("ssim").get<double>(),
                     v.at("ie").get<double>(), v.at("sharpness_ratio").get<double>());
  }
  return t;
}

}  // namespace emt::ssan
