// SSAN model configs (data_specs/ssan_*.ini): any text is either a valid
// config or an emt::Error naming it. Torch-free (config.cpp only).
#include <string>

#include "emt/ssan/config.hpp"
#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  emt::fuzz::expect_clean([&] { (void)emt::ssan::parse_config(text, "fuzz.ini"); }, "fuzz.ini");
  return 0;
}
