#pragma once
// SHA-256 (FIPS 180-4), used for shard checksums in manifest.json.
// Backed by OpenSSL (hardware SHA extensions where the CPU has them).
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
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
  std::unique_ptr<void, void (*)(void*)> ctx_;  // EVP_MD_CTX, kept out of this header
};

[[nodiscard]] std::string sha256_hex(std::string_view data);
/// Streams a file; throws kNotFound / kIo naming it.
[[nodiscard]] std::string sha256_file(const std::filesystem::path& path);

}  // namespace emt
