// manifest.json of a triplet-build output, through every reader that walks
// it: read_shard_directory (split, training), summarize and verify_directory
// (triplet-inspect). The directory also holds one valid shard, s.h5 (two
// 16 px triplets, sample_shard.hpp), so manifests that name it get past the
// checksum and reach the field checks.
#include <nlohmann/json.hpp>

#include "emt/triplets/inspect.hpp"
#include "emt/triplets/split.hpp"
#include "fuzz_support.hpp"
#include "sample_shard.hpp"

namespace {

std::filesystem::path make_directory() {
  const auto dir = emt::fuzz::scratch_dir() / "manifest";
  std::filesystem::create_directories(dir);
  emt::fuzz::write_sample_shard((dir / "s.h5").string(), 2);
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::filesystem::path dir = make_directory();
  emt::fuzz::write_bytes(dir / "manifest.json", data, size);
  const std::string d = dir.string();
  // Errors name the manifest, the directory or the shard: all lie in `dir`.
  emt::fuzz::expect_clean([&] { (void)emt::triplets::read_shard_directory(d, /*verify_checksums=*/false); }, d);
  emt::fuzz::expect_clean([&] { (void)emt::triplets::read_shard_directory(d, /*verify_checksums=*/true); }, d);
  emt::fuzz::expect_clean([&] { (void)emt::triplets::summarize(d); }, d);
  emt::fuzz::expect_clean([&] { (void)emt::triplets::verify_directory(d); }, d);
  return 0;
}
