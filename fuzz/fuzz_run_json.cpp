// RUN/run.json, as ssan-train --resume reads it (read_run_json). Torch-free
// (run_record.cpp only).
#include "emt/ssan/run_record.hpp"
#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto file = emt::fuzz::scratch_dir() / "run" / "run.json";
  emt::fuzz::write_bytes(file, data, size);
  emt::fuzz::expect_clean([&] { (void)emt::ssan::read_run_json(file.string()); }, file.string());
  return 0;
}
