// The first reader a checkpoint meets: verify_zip_archive (every member's
// CRC-32 against the central directory) runs before LibTorch sees the file.
// Torch-free, so libFuzzer can drive it at full speed; fuzz_checkpoint goes
// on through load_model (its mutations rarely keep the CRCs valid).
#include "emt/common/zip_check.hpp"
#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto file = emt::fuzz::scratch_dir() / "c.pt";
  emt::fuzz::write_bytes(file, data, size);
  emt::fuzz::expect_clean([&] { emt::verify_zip_archive(file); }, file.string());
  return 0;
}
