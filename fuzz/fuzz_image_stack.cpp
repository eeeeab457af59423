// PNG / TIFF stacks: bytes -> file -> SliceSource, every slice read. Bytes
// with the PNG signature become a one-image directory (the image-stack
// backend); anything else a multipage TIFF.
#include <algorithm>
#include <cstring>

#include "emt/emio/slice_source.hpp"
#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const bool png = size >= 4 && std::memcmp(data, "\x89PNG", 4) == 0;
  const auto dir = emt::fuzz::scratch_dir() / "stack";
  const auto file = png ? dir / "0.png" : dir / "v.tif";
  std::filesystem::remove_all(dir);
  emt::fuzz::write_bytes(file, data, size);
  const std::string path = png ? dir.string() : file.string();
  emt::fuzz::expect_clean(
      [&] {
        const auto source = emt::emio::open_source(path);
        const std::int64_t depth = std::min<std::int64_t>(source->shape().depth, 8);
        for (std::int64_t z = 0; z < depth; ++z) (void)source->read_slice(z);
      },
      path);
  return 0;
}
