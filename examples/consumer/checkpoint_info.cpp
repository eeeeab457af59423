// checkpoint_info WEIGHTS: an SSAN checkpoint (ssan-train's last.pt / best.pt)
// or a state dict with its JSON (ssan-export, models/*.pth) loaded through the
// installed emtriplet::ssan library; prints its size and runs it once.
#include <cstdio>
#include <exception>

#include <torch/torch.h>

#include "emt/ssan/interop.hpp"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: checkpoint_info CHECKPOINT|STATE_DICT.pth\n");
    return 2;
  }
  try {
    emt::ssan::Ssan model = emt::ssan::load_any_model(argv[1]).model;
    std::printf("kind: %s\n", emt::ssan::is_state_dict_file(argv[1]) ? "state dict" : "checkpoint");
    std::printf("parameters: %lld\n", static_cast<long long>(model->parameter_count()));
    torch::NoGradGuard no_grad;
    // Two outer slices of 64 x 64 at grey 0.5: the prediction between them.
    const torch::Tensor out = model->forward(torch::full({1, 2, 64, 64}, 0.5f)).output;
    std::printf("output: %lldx%lldx%lldx%lld, mean %.3f\n", static_cast<long long>(out.size(0)), static_cast<long long>(out.size(1)),
                static_cast<long long>(out.size(2)), static_cast<long long>(out.size(3)), out.mean().item<double>());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "checkpoint_info: error: %s\n", e.what());
    return 1;
  }
}
