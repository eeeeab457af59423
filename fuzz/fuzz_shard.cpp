// Triplet shards: bytes -> s.h5 -> ShardReader, metadata and the first and
// last triplets read.
#include "emt/emio/hdf5.hpp"
#include "emt/triplets/shard.hpp"
#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const bool silenced = (emt::h5::silence_errors(), true);
  (void)silenced;
  const auto file = emt::fuzz::scratch_dir() / "s.h5";
  emt::fuzz::write_bytes(file, data, size);
  emt::fuzz::expect_clean(
      [&] {
        const emt::triplets::ShardReader reader(file.string());
        (void)reader.read_meta();
        if (reader.size() > 0) (void)reader.read(0);
        if (reader.size() > 1) (void)reader.read(reader.size() - 1);
      },
      file.string());
  return 0;
}
