// bench/train_step: milliseconds per SSAN training step (forward, losses,
// backward, Adam) on a fixed random batch, as one JSON line; the Python
// reference (bench/reference/ssan_ref.py) does the same. Driven by train_step.sh.
//   bench_train_step CONFIG.ini BATCH CROP STEPS THREADS
#include <algorithm>
#include <chrono>
#include <iostream>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "emt/ssan/config.hpp"
#include "emt/ssan/losses.hpp"
#include "emt/ssan/model.hpp"

int main(int argc, char** argv) {
  if (argc != 6) {
    std::cerr << "usage: bench_train_step CONFIG.ini BATCH CROP STEPS THREADS\n";
    return 2;
  }
  using namespace emt::ssan;
  const auto config = load_config(argv[1]);
  const int batch = std::stoi(argv[2]), crop = std::stoi(argv[3]), steps = std::stoi(argv[4]), threads = std::stoi(argv[5]);
  torch::set_num_threads(threads);
  torch::manual_seed(0);
  Ssan model(config.model);
  LossConfig lc = config.loss;
  lc.vgg_weights.clear();
  lc.vgg_fallback = emt::ssan::VggFallback::kRandom;  // the VGG passes run, as in the Python reference
  SsanLoss loss_fn(lc, {});
  torch::optim::Adam opt(model->parameters(), torch::optim::AdamOptions(1e-3).betas({0.9, 0.999}));
  const auto outer = torch::rand({batch, 2, crop, crop}), gt = torch::rand({batch, 1, crop, crop});
  std::vector<double> ms;
  for (int s = 0; s <= steps; ++s) {
    const auto t = std::chrono::steady_clock::now();
    opt.zero_grad();
    const auto terms = loss_fn(model->forward(outer).output, gt, outer);
    terms.total.backward();
    opt.step();
    if (s > 0) ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count());
  }
  std::sort(ms.begin(), ms.end());
  const auto split = model->attention->split_for(crop, crop);
  const double m = ms[ms.size() / 2];
  std::cout << nlohmann::json{{"impl", "cpp"}, {"config", argv[1]}, {"batch", batch}, {"crop", crop}, {"threads", threads},
                              {"ms_per_step", m}, {"samples_per_s", batch / m * 1000}, {"params", model->parameter_count()},
                              {"split", {split.ph, split.pw, split.ph2, split.pw2}}}
                   .dump()
            << std::endl;
  return 0;
}
