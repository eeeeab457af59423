// bench/attention: one attention case per process (so peak memory is this
// case's alone), printed as one JSON line. Driven by bench/attention.sh.
//   bench_attention VARIANT C H W K [PH PW PH2 PW2] [--threads N]
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "emt/ssan/attention.hpp"

namespace {
long max_rss_bytes() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss * 1024L;
}
double ms_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count();
}
}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args;
  int threads = 2;
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--threads" && i + 1 < argc) {
      threads = std::stoi(argv[++i]);
    } else {
      args.emplace_back(argv[i]);
    }
  }
  if (args.size() != 5 && args.size() != 9) {
    std::cerr << "usage: bench_attention VARIANT C H W K [PH PW PH2 PW2] [--threads N]\n";
    return 2;
  }
  using namespace emt::ssan;
  torch::set_num_threads(threads);
  const auto kind = parse_attention_kind(args[0]);
  const int64_t c = std::stoll(args[1]), h = std::stoll(args[2]), w = std::stoll(args[3]), k = std::stoll(args[4]);
  GroupSplit split{};
  if (args.size() == 9) split = {std::stoi(args[5]), std::stoi(args[6]), std::stoi(args[7]), std::stoi(args[8])};
  torch::manual_seed(0);
  AttentionOptions o(c);
  o.kind(kind).reduction(k).split(split);
  AttentionLayer layer(o);
  {
    torch::NoGradGuard g;
    for (auto& gm : layer->gammas()) gm.fill_(0.5);
  }
  const auto x = torch::randn({1, c, h, w});
  const GroupSplit used = layer->split_for(h, w);
  const long base = max_rss_bytes();
  std::vector<double> fwd, fb;
  {
    torch::NoGradGuard g;
    (void)layer->forward(x);
    for (int i = 0; i < 3; ++i) {
      const auto t = std::chrono::steady_clock::now();
      (void)layer->forward(x);
      fwd.push_back(ms_since(t));
    }
  }
  for (int i = 0; i < 2; ++i) {
    layer->zero_grad();
    const auto t = std::chrono::steady_clock::now();
    layer->forward(x).square().mean().backward();
    fb.push_back(ms_since(t));
  }
  std::sort(fwd.begin(), fwd.end());
  int64_t params = 0;
  for (const auto& p : layer->parameters()) params += p.numel();
  const auto cost = attention_cost(kind, c, h, w, k, used);
  nlohmann::json j{{"impl", "cpp"}, {"variant", args[0]}, {"c", c}, {"h", h}, {"w", w}, {"k", k},
                   {"split", {used.ph, used.pw, used.ph2, used.pw2}}, {"forward_ms", fwd[1]},
                   {"forward_backward_ms", *std::min_element(fb.begin(), fb.end())}, {"peak_bytes", max_rss_bytes() - base},
                   {"flops", 2 * cost.total()}, {"macs", cost.total()}, {"params", params}, {"threads", threads},
                   {"gflops_per_s", 2 * cost.total() / (fwd[1] * 1e6)}};
  std::cout << j.dump() << std::endl;
  return 0;
}
