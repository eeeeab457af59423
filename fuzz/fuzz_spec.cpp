// triplet-build data specs (INI through Boost.Program_options): any text is
// either a valid spec or an emt::Error naming the spec.
#include <string>

#include "emt/triplets/spec.hpp"
#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  emt::fuzz::expect_clean([&] { (void)emt::triplets::parse_spec(text, "fuzz.ini"); }, "fuzz.ini");
  return 0;
}
