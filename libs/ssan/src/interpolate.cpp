#include "emt/ssan/interpolate.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <optional>
#include <set>

#include <fmt/format.h>
#include <opencv2/imgproc.hpp>
#include <torch/torch.h>

#include "emt/common/atomic_file.hpp"
#include "emt/common/cli.hpp"
#include "emt/common/error.hpp"
#include "emt/common/output_guard.hpp"
#include "emt/common/progress.hpp"
#include "emt/common/sampling.hpp"
#include "emt/emio/slice_source.hpp"
#include "emt/emio/volume_writer.hpp"
#include "emt/ssan/metrics.hpp"
#include "emt/ssan/distributed.hpp"
#include "emt/ssan/interop.hpp"
#include "emt/ssan/preprocess.hpp"
#include "emt/triplets/align.hpp"
#include "emt/triplets/filters.hpp"
#include "emt/triplets/histogram.hpp"

namespace emt::ssan {
namespace fs = std::filesystem;
using nlohmann::json;

FillMethod parse_fill_method(const std::string& name) {
  if (name == "ssan") return FillMethod::kSsan;
  if (name == "linear") return FillMethod::kLinear;
  if (name == "flow") return FillMethod::kFlow;
  throw Error(ErrorKind::kInvalidArgument, "--method must be ssan, linear or flow (got '" + name + "')");
}

std::string to_string(FillMethod m) {
  switch (m) {
    case FillMethod::kSsan: return "ssan";
    case FillMethod::kLinear: return "linear";
    case FillMethod::kFlow: return "flow";
  }
  return "?";
}

std::vector<FillStep> plan_fill(const std::vector<std::int64_t>& bad_in, std::int64_t depth) {
  std::set<std::int64_t> bad(bad_in.begin(), bad_in.end());
  std::vector<FillStep> plan;
  for (auto it = bad.begin(); it != bad.end();) {
    const std::int64_t first = *it;
    std::int64_t last = first;
    while (std::next(it) != bad.end() && *std::next(it) == last + 1) last = *++it;
    ++it;
    const std::int64_t lower = first - 1, upper = last + 1;
    if (lower < 0 || upper >= depth) {
      throw Error(ErrorKind::kInvalidData, fmt::format("slices {}..{} have no good neighbour on one side (volume depth {})", first, last, depth));
    }
    // Recursive midpoints while the gap allows; else nearest good neighbours.
    std::function<void(std::int64_t, std::int64_t)> fill = [&](std::int64_t lo, std::int64_t hi) {
      if (hi - lo < 2) return;
      if ((hi - lo) % 2 == 0) {
        const std::int64_t m = (lo + hi) / 2;
        plan.push_back({m, lo, hi, true});
        fill(lo, m);
        fill(m, hi);
      } else {
        for (std::int64_t z = lo + 1; z < hi; ++z) plan.push_back({z, lo, hi, false});
      }
    };
    fill(lower, upper);
  }
  return plan;
}

namespace {

cv::Mat translate(const cv::Mat& img, double dy, double dx) {
  cv::Mat out;
  const cv::Mat m = (cv::Mat_<double>(2, 3) << 1, 0, dx, 0, 1, dy);
  cv::warpAffine(img, out, m, img.size(), cv::INTER_LINEAR, cv::BORDER_REFLECT);
  return out;
}

/// SSAN over the whole slice in overlapping tiles, blended with linear ramps.
cv::Mat predict_tiled(Ssan& model, const cv::Mat& a, const cv::Mat& b, int tile, int overlap) {
  const int h = a.rows, w = a.cols;
  const int t = std::min({tile, h, w});
  const int ov = std::min(overlap, t / 2);
  cv::Mat acc = cv::Mat::zeros(h, w, CV_32F), weight = cv::Mat::zeros(h, w, CV_32F);
  auto starts = [&](int n) {
    std::vector<int> s;
    for (int p = 0;; p += t - ov) {
      if (p + t >= n) {
        s.push_back(n - t);
        break;
      }
      s.push_back(p);
    }
    return s;
  };
  cv::Mat ramp(t, t, CV_32F);
  for (int y = 0; y < t; ++y)
    for (int x = 0; x < t; ++x) {
      auto r = [&](int i) { return std::min({1.0f, (i + 1.0f) / (ov + 1.0f), (t - i) / (ov + 1.0f)}); };
      ramp.at<float>(y, x) = r(y) * r(x);
    }
  torch::NoGradGuard no_grad;
  const torch::Device device = model->parameters().front().device();
  for (int y : starts(h)) {
    for (int x : starts(w)) {
      throw_if_interrupted();
      const cv::Rect rect(x, y, t, t);
      cv::Mat fa, fb;
      a(rect).convertTo(fa, CV_32F, 1.0 / 255);
      b(rect).convertTo(fb, CV_32F, 1.0 / 255);
      const auto in = torch::stack({torch::from_blob(fa.data, {t, t}, torch::kFloat32), torch::from_blob(fb.data, {t, t}, torch::kFloat32)}).unsqueeze(0);
      const torch::Tensor out = model->forward(in.to(device)).output[0][0].clamp(0, 1).mul(255).to(torch::kCPU).contiguous();
      const cv::Mat p(t, t, CV_32F, out.data_ptr<float>());
      acc(rect) += p.mul(ramp);
      weight(rect) += ramp;
    }
  }
  cv::Mat result;
  cv::divide(acc, weight, result);
  cv::Mat u8;
  result.convertTo(u8, CV_8U);
  return u8;
}

}  // namespace

json interpolate_volume(const InterpolateOptions& o, const std::function<void(const std::string&)>& warn) {
  // Every value checked before any work (negated comparisons refuse NaN too).
  if (o.tile < 16) throw Error(ErrorKind::kInvalidArgument, fmt::format("--tile must be at least 16, not {}", o.tile));
  if (o.overlap < 0 || o.overlap >= o.tile / 2) {
    throw Error(ErrorKind::kInvalidArgument, fmt::format("--overlap must be in [0, tile / 2) = [0, {}), not {}", o.tile / 2, o.overlap));
  }
  if (!(o.detect_fraction >= 0 && o.detect_fraction <= 1)) throw Error(ErrorKind::kInvalidArgument, "--detect-fraction must be in [0, 1]");
  if (o.search_radius < 0) throw Error(ErrorKind::kInvalidArgument, "--search-radius must be at least 1 (or 0: from the checkpoint)");
  if (o.method == FillMethod::kSsan && o.checkpoint.empty()) throw Error(ErrorKind::kInvalidArgument, "--method ssan needs --checkpoint");
  // The model and the preprocessing of its training data come first: they say how to open and prepare the volume.
  std::optional<Ssan> model;
  std::vector<triplets::PreprocessingRecord> records;
  if (o.method == FillMethod::kSsan) {
    LoadedModel loaded = load_any_model(o.checkpoint);  // a checkpoint or a state dict with its JSON
    model = loaded.model;
    (*model)->to(resolve_device(o.device));
    records = std::move(loaded.preprocessing);
  } else if (!o.checkpoint.empty()) {
    records = preprocessing_of_weights(o.checkpoint);
  }
  const triplets::PreprocessingRecord* record = records.empty() ? nullptr : &records.front();
  emio::SourceOptions source_options;
  if (o.uint16) {
    source_options.uint16 = *o.uint16;
  } else if (record) {
    source_options.uint16 = record->uint16;
  }
  const auto source = emio::open_source(o.input, source_options);
  const auto shape = source->shape();
  if (!o.in_place && o.output.empty()) throw Error(ErrorKind::kInvalidArgument, "give --out (or --in-place)");
  if (o.in_place && source->kind() == emio::SourceKind::kMultipageTiff) {
    throw Error(ErrorKind::kInvalidArgument, "--in-place is not supported for multipage TIFF; write to --out", o.input);
  }
  // The input is written only with --in-place: an --out that is, holds or
  // lies in the input (or the checkpoint) is refused, and an existing
  // directory is written into only with --force.
  std::unique_ptr<OutputLock> lock;
  if (o.in_place) {
    lock = std::make_unique<OutputLock>(source->path());
  } else {
    refuse_output_overlapping_inputs(o.output, {source->path(), o.checkpoint}, "--out");
    refuse_output_overlapping_inputs(o.output + ".report.json", {source->path(), o.checkpoint}, "--out's report");
    if (source->kind() == emio::SourceKind::kHdf5) {
      if (fs::is_directory(o.output)) throw Error(ErrorKind::kIo, "--out is an existing directory; an HDF5 volume does not replace it", o.output);
    } else {
      check_output_directory(o.output, o.force);
    }
    lock = std::make_unique<OutputLock>(o.output);
  }
  json report;
  report["input"] = o.input;
  report["method"] = to_string(o.method);
  if (model) report["checkpoint"] = o.checkpoint;
  std::vector<std::string> warnings;
  auto note = [&](const std::string& w) {
    warnings.push_back(w);
    if (warn) warn(w);
  };
  std::set<std::int64_t> bad(o.slices.begin(), o.slices.end());
  for (auto z : bad) {
    if (z < 0 || z >= shape.depth) throw Error(ErrorKind::kInvalidArgument, fmt::format("slice {} outside the volume (depth {})", z, shape.depth), o.input);
  }
  // Alignment as the training data's, over twice the distance; filters from --spec, else the record.
  triplets::AlignOptions align = record ? record->align : triplets::AlignOptions{};
  align.search_radius = o.search_radius > 0 ? o.search_radius : record ? 2 * record->align.search_radius : 32;
  if (!record) align.coarse_factor = align.search_radius >= 16 ? 4 : 1;
  for (const auto& r : records) {
    if (triplets::to_json(r)["filters"] != triplets::to_json(records.front())["filters"]) {
      note("the checkpoint's sources were built with different filters; --detect-defects uses the first's (" + records.front().source_id + ")");
      break;
    }
  }
  const triplets::FilterOptions filters = o.filters ? *o.filters : record ? record->filters : triplets::FilterOptions{};
  report["preprocessing"] = {{"filters", o.filters ? "spec" : record ? "checkpoint" : "defaults"},
                             {"uint16", o.uint16 ? "spec" : record ? "checkpoint" : "defaults"},
                             {"search_radius", align.search_radius}};

  if (o.detect_defects) {
    // The pipeline's filters, attributed to the middle slice of each triplet.
    const triplets::FilterOptions& f = filters;
    json detected = json::array();
    Progress progress("ssan-interpolate: detecting", shape.depth - 2, "slices", o.quiet);
    for (std::int64_t z = 1; z + 1 < shape.depth; ++z) {
      throw_if_interrupted(o.input);
      const cv::Mat s0 = source->read_slice(z - 1), s1 = source->read_slice(z), s2 = source->read_slice(z + 1);
      const auto a = triplets::estimate_shift(s1, s0, align), b = triplets::estimate_shift(s1, s2, align);
      const cv::Mat a0 = translate(s0, std::round(a.dy), std::round(a.dx)), a2 = translate(s2, std::round(b.dy), std::round(b.dx));
      const int t = std::min<int>({128, s1.rows, s1.cols});  // small tiles: a local stain is a visible share
      int tiles = 0, flagged = 0;
      for (int y = 0; y + t <= s1.rows; y += t) {
        for (int x = 0; x + t <= s1.cols; x += t) {
          const cv::Rect r(x, y, t, t);
          const auto d = triplets::evaluate_tile({a0(r), s1(r), a2(r)}, f);
          ++tiles;
          const bool odd = d.measures.slice_defect[1] > f.max_defect_fraction && d.measures.slice_defect[1] >= std::max(d.measures.slice_defect[0], d.measures.slice_defect[2]);
          flagged += odd || d.measures.slice_flat[1] > f.max_flat_fraction;
        }
      }
      progress.tick();
      if (tiles > 0 && flagged >= o.detect_fraction * tiles) {
        detected.push_back({{"z", z}, {"flagged_tiles", flagged}, {"tiles", tiles}});
        bad.insert(z);
      }
    }
    progress.finish();
    report["detected"] = detected;
  }
  if (bad.empty()) note("no slice to replace");
  const auto plan = plan_fill(std::vector<std::int64_t>(bad.begin(), bad.end()), shape.depth);

  // The reference the neighbours are matched to: the training data's (the
  // contract), else one from the volume's clean slices as triplet-build makes it.
  std::optional<triplets::Histogram> reference;
  if (o.reference == ReferenceMode::kCheckpoint) reference = model_reference(records);
  if (reference) {
    report["preprocessing"]["reference"] = "checkpoint";
  } else {
    if (o.reference == ReferenceMode::kCheckpoint && model) {
      note("the checkpoint carries no preprocessing record (trained before records existed); its inputs are matched to this volume's own reference");
    }
    std::vector<triplets::Histogram> hists;
    std::vector<std::int64_t> good;
    for (std::int64_t z = 0; z < shape.depth; ++z) {
      if (!bad.count(z)) good.push_back(z);
    }
    const std::int64_t n = std::min<std::int64_t>(16, static_cast<std::int64_t>(good.size()));
    for (std::int64_t i = 0; i < n; ++i) {
      hists.push_back(triplets::histogram_of(source->read_slice(good[static_cast<std::size_t>(evenly_spaced(i, n, static_cast<std::int64_t>(good.size())))]), true));
    }
    const auto volume_reference = triplets::reference_histogram(hists);
    if (!volume_reference.used.empty()) reference = volume_reference.counts;
    report["preprocessing"]["reference"] = reference ? "volume" : "none";
  }

  std::map<std::int64_t, cv::Mat> filled;
  auto slice = [&](std::int64_t z) { return filled.count(z) ? filled.at(z) : source->read_slice(z); };
  json replaced = json::array();
  Progress progress("ssan-interpolate", static_cast<std::int64_t>(plan.size()), "slices", o.quiet);
  for (const FillStep& step : plan) {
    throw_if_interrupted(o.input);
    const cv::Mat lo = slice(step.lower), hi = slice(step.upper);
    const double t = static_cast<double>(step.z - step.lower) / static_cast<double>(step.upper - step.lower);
    if (!step.midpoint) note(fmt::format("slice {}: run of bad slices too long for midpoints; predicted from slices {} and {}", step.z, step.lower, step.upper));
    const auto s = triplets::estimate_shift(lo, hi, align);  // aligns hi onto lo
    // z's frame lies a fraction t of the way from lo's to hi's: sub-pixel halves, not integer ones.
    cv::Mat a = translate(lo, -t * s.dy, -t * s.dx), b = translate(hi, (1 - t) * s.dy, (1 - t) * s.dx);
    std::optional<MatchedPair> matched;
    if (reference) {
      matched = match_pair(a, b, *reference);
      a = matched->a;
      b = matched->b;
    }
    cv::Mat pred;
    switch (o.method) {
      case FillMethod::kSsan: pred = predict_tiled(*model, a, b, o.tile, o.overlap); break;
      case FillMethod::kLinear: linear_baseline(a, b).convertTo(pred, CV_8U); break;
      case FillMethod::kFlow: flow_baseline(a, b).convertTo(pred, CV_8U); break;
    }
    if (matched) pred = map_back(pred, *matched, t);  // back to the volume's intensities
    filled[step.z] = pred;
    replaced.push_back({{"z", step.z}, {"lower", step.lower}, {"upper", step.upper}, {"method", step.midpoint ? "midpoint" : "nearest"},
                        {"shift", {s.dy, s.dx}}, {"shift_ncc", s.ncc}});
    progress.tick();
  }
  progress.finish();

  // Write: untouched slices are copied raw (byte-identical), replaced ones from the prediction.
  auto stored = [&](std::int64_t z) -> cv::Mat {
    if (!filled.count(z)) return source->read_raw(z);
    const cv::Mat p = filled.at(z);
    if (source->bits() == 8) return p;
    // 16-bit data: map 8 bit back by the linear fit of a neighbour's raw values to its 8-bit view.
    const std::int64_t nb = z > 0 && !filled.count(z - 1) ? z - 1 : z + 1;
    cv::Mat raw, v8;
    source->read_raw(nb).convertTo(raw, CV_64F);
    source->read_slice(nb).convertTo(v8, CV_64F);
    cv::Scalar mr, sr, m8, s8;
    cv::meanStdDev(raw, mr, sr);
    cv::meanStdDev(v8, m8, s8);
    const double scale = s8[0] > 0 ? sr[0] / s8[0] : 257.0;
    cv::Mat out;
    p.convertTo(out, CV_16U, scale, mr[0] - scale * m8[0]);
    return out;
  };
  std::string written;
  if (o.in_place) {
    written = o.input;
    for (const auto& [z, img] : filled) {
      throw_if_interrupted(o.input);  // slices already written stay replaced (each write is whole)
      const cv::Mat data = stored(z);
      if (source->kind() == emio::SourceKind::kHdf5) {
        emio::overwrite_hdf5_slice(source->path(), source->dataset(), z, data);
      } else {
        emio::write_image_atomic(source->location(z), data);
      }
    }
  } else {
    written = o.output;
    const emio::VolumeShape vs = shape;
    std::unique_ptr<emio::VolumeWriter> writer;
    if (source->kind() == emio::SourceKind::kHdf5) {
      writer = emio::create_hdf5_volume(o.output, source->dataset(), vs, source->bits(), source->resolution_nm());
    } else {
      writer = emio::create_image_stack(o.output, emio::ImageFormat::kPng, vs, source->bits(), o.force);
    }
    for (std::int64_t z = 0; z < shape.depth; ++z) {
      throw_if_interrupted(o.output);
      writer->write_slice(z, stored(z));
    }
    writer->commit();
  }
  report["output"] = written;
  report["replaced"] = replaced;
  report["warnings"] = warnings;
  const std::string report_path = (o.in_place ? source->path() : o.output) + ".report.json";
  write_file_atomic(report_path, report.dump(2) + "\n");
  report["report"] = report_path;
  return report;
}

}  // namespace emt::ssan
