#include "emt/ssan/training_plot.hpp"

#include <sstream>

#include "emt/common/atomic_file.hpp"
#include "emt/common/sampling.hpp"
#include "emt/plot/plot.hpp"
#include "emt/ssan/metrics.hpp"

namespace emt::ssan {
namespace fs = std::filesystem;

void TrainingCurves::add_step(std::int64_t step, double loss, double lr) {
  step_.push_back(static_cast<double>(step));
  loss_.push_back(loss);
  lr_.push_back(lr);
}

void TrainingCurves::add_validation(std::int64_t step, double psnr) {
  val_step_.push_back(static_cast<double>(step));
  val_psnr_.push_back(psnr);
}

namespace {
std::vector<std::string> split_csv(const std::string& line) {
  std::vector<std::string> cells;
  std::stringstream in(line);
  for (std::string c; std::getline(in, c, ',');) cells.push_back(c);
  return cells;
}
}  // namespace

void TrainingCurves::load(const fs::path& run, std::int64_t last_step) {
  if (fs::exists(run / "metrics.csv")) {
    std::istringstream in(read_file(run / "metrics.csv"));
    std::string line;
    std::getline(in, line);
    const auto header = split_csv(line);
    auto column = [&](const std::string& name) -> std::ptrdiff_t {
      for (std::size_t i = 0; i < header.size(); ++i) {
        if (header[i] == name) return static_cast<std::ptrdiff_t>(i);
      }
      return -1;
    };
    const auto c_loss = column("loss"), c_lr = column("lr");
    while (std::getline(in, line)) {
      const auto cells = split_csv(line);
      if (cells.empty() || c_loss < 0 || static_cast<std::size_t>(c_loss) >= cells.size()) continue;
      const std::int64_t step = std::stoll(cells[0]);
      if (step > last_step) break;
      const double lr = c_lr >= 0 && static_cast<std::size_t>(c_lr) < cells.size() ? std::stod(cells[static_cast<std::size_t>(c_lr)]) : 0;
      add_step(step, std::stod(cells[static_cast<std::size_t>(c_loss)]), lr);
    }
  }
  if (fs::exists(run / "val.csv")) {
    std::istringstream in(read_file(run / "val.csv"));  // step,epoch,psnr,ssim,ie (no header)
    for (std::string line; std::getline(in, line);) {
      const auto cells = split_csv(line);
      if (cells.size() < 3) continue;
      const std::int64_t step = std::stoll(cells[0]);
      if (step <= last_step) add_validation(step, std::stod(cells[2]));
    }
  }
}

void TrainingCurves::draw_every(const fs::path& png, double seconds) {
  if (last_draw_ && std::chrono::duration<double>(std::chrono::steady_clock::now() - *last_draw_).count() < seconds) return;
  draw(png);
}

void TrainingCurves::draw(const fs::path& png) {
  if (step_.size() < 2) return;
  last_draw_ = std::chrono::steady_clock::now();
  plot::Panel loss{"training loss", "step", "loss", {}, {}, plot::Scale::kLog};
  loss.lines.push_back({"per step", step_, loss_, "h"});
  // About a tenth of an epoch-scale window: smooth enough to show the trend, short enough to follow the decay.
  const double alpha = 2.0 / (1.0 + std::clamp(static_cast<double>(step_.size()) / 20.0, 5.0, 200.0));
  loss.lines.push_back({"smoothed", step_, plot::smooth(loss_, alpha), "b2"});
  plot::Panel val{"validation PSNR (held-out split)", "step", "PSNR dB", {}, {}, plot::Scale::kLinear};
  val.lines.push_back({"ssan", val_step_, val_psnr_, "b2o"});
  const std::map<std::string, std::string> pens{{"linear", "r|"}, {"flow", "g|"}, {"blur", "m;"}};
  for (const auto& [name, value] : baselines_) val.levels.push_back({name, value, pens.count(name) ? pens.at(name) : "k|"});
  plot::Panel rate{"learning rate", "step", "lr", {}, {}, plot::Scale::kLog};
  rate.lines.push_back({"", step_, lr_, "k"});
  plot::write_png(png.string(), {loss, val, rate}, 960, 280);
}

std::map<std::string, double> validation_baselines(const TripletDataset& data, int max_samples) {
  const std::int64_t n = max_samples > 0 ? std::min<std::int64_t>(data.size(), max_samples) : data.size();
  auto triplet = [&](std::int64_t k) { return data.read_u8(evenly_spaced(k, n, data.size())); };
  double linear = 0, flow = 0;
  for (std::int64_t k = 0; k < n; ++k) {
    const auto t = triplet(k);
    linear += psnr(linear_baseline(t[0], t[2]), t[1]) / static_cast<double>(n);
    flow += psnr(flow_baseline(t[0], t[2]), t[1]) / static_cast<double>(n);
  }
  return {{"linear", linear}, {"flow", flow}, {"blur", search_blur_sigma(n, triplet).best_psnr}};
}

}  // namespace emt::ssan
