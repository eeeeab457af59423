// Scores regenerated whole slices against the truth (bench/quality, not a test).
//
//   bench_quality_score --truth STACK --slices 1,3,5 --pred ssan=DIR --pred linear=DIR [--pred flow=DIR] [--name LABEL]
//
// Each --pred is a volume ssan-interpolate wrote (its other slices are copies
// of the input). Prints one JSON object: per method the mean PSNR, SSIM, IE
// and sharpness ratio over the listed slices, with the metrics of
// emt/ssan/metrics.hpp (the ones ssan-eval reports). With a `linear`
// prediction it adds "blur": the linear slices smoothed by the Gaussian sigma
// with the best mean PSNR on these very slices (a bound on what blurring alone
// buys, chosen on the scored data, so it favours the baseline; the search
// is ssan-eval's, emt::ssan::search_blur_sigma).
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <opencv2/imgproc.hpp>

#include "emt/common/error.hpp"
#include "emt/common/text.hpp"
#include "emt/emio/slice_source.hpp"
#include "emt/ssan/metrics.hpp"

namespace {

struct Scores {
  double psnr = 0, ssim = 0, ie = 0, sharpness_ratio = 0;
  int n = 0;
  void add(const cv::Mat& pred, const cv::Mat& truth) {
    psnr += emt::ssan::psnr(pred, truth);
    ssim += emt::ssan::ssim(pred, truth);
    ie += emt::ssan::interpolation_error(pred, truth);
    const double s = emt::ssan::sharpness(truth);
    sharpness_ratio += s > 0 ? emt::ssan::sharpness(pred) / s : 0;
    ++n;
  }
  [[nodiscard]] nlohmann::json to_json() const {
    return {{"psnr", psnr / n}, {"ssim", ssim / n}, {"ie", ie / n}, {"sharpness_ratio", sharpness_ratio / n}, {"slices", n}};
  }
};

int run(int argc, char** argv) {
  std::string truth_path, slices_arg, label;
  std::vector<std::pair<std::string, std::string>> preds;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) throw emt::Error(emt::ErrorKind::kInvalidArgument, "option " + a + " needs a value");
    const std::string v = argv[++i];
    if (a == "--truth") {
      truth_path = v;
    } else if (a == "--slices") {
      slices_arg = v;
    } else if (a == "--name") {
      label = v;
    } else if (a == "--pred") {
      const auto eq = v.find('=');
      if (eq == std::string::npos) throw emt::Error(emt::ErrorKind::kInvalidArgument, "--pred NAME=DIR, got " + v);
      preds.emplace_back(v.substr(0, eq), v.substr(eq + 1));
    } else {
      throw emt::Error(emt::ErrorKind::kInvalidArgument, "unknown option " + a);
    }
  }
  if (truth_path.empty() || slices_arg.empty() || preds.empty()) {
    throw emt::Error(emt::ErrorKind::kInvalidArgument, "usage: bench_quality_score --truth STACK --slices LIST --pred NAME=DIR ...");
  }
  const auto slices = emt::parse_index_list(slices_arg);
  const auto truth = emt::emio::open_source(truth_path);
  nlohmann::json out;
  if (!label.empty()) out["name"] = label;
  std::map<std::string, cv::Mat> linear_slices;
  std::vector<cv::Mat> truths;
  for (const auto& [name, dir] : preds) {
    const auto pred = emt::emio::open_source(dir);
    Scores s;
    for (const auto z : slices) {
      const cv::Mat t = truth->read_slice(z), p = pred->read_slice(z);
      s.add(p, t);
      if (name == "linear") {
        linear_slices[std::to_string(z)] = p;
        truths.push_back(t);
      }
    }
    out["methods"][name] = s.to_json();
  }
  if (!linear_slices.empty()) {
    // The linear slices blurred: the search blurs the mean of its outer two, here both the linear slice.
    const emt::ssan::BlurSearch blur = emt::ssan::search_blur_sigma(static_cast<std::int64_t>(slices.size()), [&](std::int64_t k) {
      const cv::Mat& linear = linear_slices.at(std::to_string(slices[static_cast<std::size_t>(k)]));
      return std::array<cv::Mat, 3>{linear, truths[static_cast<std::size_t>(k)], linear};
    });
    Scores best;
    for (std::size_t k = 0; k < slices.size(); ++k) {
      cv::Mat blurred, q;
      cv::GaussianBlur(linear_slices.at(std::to_string(slices[k])), blurred, cv::Size(0, 0), blur.best_sigma);
      blurred.convertTo(q, CV_8U);
      best.add(q, truths[k]);
    }
    out["methods"]["blur"] = best.to_json();
    out["methods"]["blur"]["sigma"] = blur.best_sigma;
  }
  std::cout << out.dump() << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const emt::Error& e) {
    std::cerr << "bench_quality_score: error: " << e.what() << std::endl;
    return emt::exit_code_for(e.kind());
  }
}
