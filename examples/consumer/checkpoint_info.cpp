// checkpoint_info CHECKPOINT: an SSAN checkpoint loaded through the installed
// emtriplet::ssan library; prints its size and runs it once on a flat input.
#include <cstdio>
#include <exception>

#include <torch/torch.h>

#include "emt/ssan/trainer.hpp"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: checkpoint_info CHECKPOINT\n");
    return 2;
  }
  try {
    emt::ssan::Ssan model = emt::ssan::load_model(argv[1]);
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
