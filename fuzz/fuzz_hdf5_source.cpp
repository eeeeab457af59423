// CREMI-style HDF5 volumes: bytes -> v.h5 -> SliceSource (volumes/raw), the
// first and last slices read.
#include "emt/emio/hdf5.hpp"
#include "emt/emio/slice_source.hpp"
#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const bool silenced = (emt::h5::silence_errors(), true);
  (void)silenced;
  const auto file = emt::fuzz::scratch_dir() / "v.h5";
  emt::fuzz::write_bytes(file, data, size);
  emt::fuzz::expect_clean(
      [&] {
        const auto source = emt::emio::open_source(file.string());
        const std::int64_t depth = source->shape().depth;
        if (depth > 0) (void)source->read_slice(0);
        if (depth > 1) (void)source->read_slice(depth - 1);
      },
      file.string());
  return 0;
}
