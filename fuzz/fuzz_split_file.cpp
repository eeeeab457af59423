// Split files (DIR/splits/NAME.txt, "SHARD INDEX" per line).
#include "emt/triplets/split.hpp"
#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto dir = emt::fuzz::scratch_dir() / "split";
  emt::fuzz::write_bytes(dir / "splits" / "train.txt", data, size);
  emt::fuzz::expect_clean([&] { (void)emt::triplets::read_split_file(dir.string(), "train"); }, "train.txt");
  return 0;
}
