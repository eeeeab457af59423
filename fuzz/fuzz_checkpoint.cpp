// SSAN checkpoints (LibTorch archives): bytes -> c.pt -> load_model, the
// path ssan-eval and ssan-interpolate take.
#include <torch/torch.h>

#include "emt/ssan/checkpoint.hpp"
#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const bool single_thread = (torch::set_num_threads(1), true);
  (void)single_thread;
  const auto file = emt::fuzz::scratch_dir() / "c.pt";
  emt::fuzz::write_bytes(file, data, size);
  emt::fuzz::expect_clean([&] { (void)emt::ssan::load_model(file.string()); }, file.string());
  return 0;
}
