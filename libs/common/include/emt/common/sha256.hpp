#pragma once
// SHA-256 (FIPS 180-4), used for shard checksums in manifest.json.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace emt {

class Sha256 {
 public:
  Sha256();
  void update(const void* data, std::size_t size);
  void update(std::string_view s) { update(s.data(), s.size()); }
  /// Finishes the digest; the object must not be updated afterwards.
  [[nodiscard]] std::string hex_digest();

 private:
  void compress(const std::uint8_t* block);
  std::uint32_t h_[8];
  std::uint8_t buffer_[64];
  std::size_t buffered_ = 0;
  std::uint64_t total_bytes_ = 0;
};

[[nodiscard]] std::string sha256_hex(std::string_view data);
/// Streams a file; throws kNotFound / kIo naming it.
[[nodiscard]] std::string sha256_file(const std::filesystem::path& path);

}  // namespace emt
