#include "emt/common/zip_check.hpp"

#include <algorithm>
#include <string>

#include <fmt/format.h>
#include <zlib.h>

#include "emt/common/atomic_file.hpp"
#include "emt/common/error.hpp"

namespace emt {
namespace {

constexpr std::uint32_t kLocalSig = 0x04034b50, kCentralSig = 0x02014b50, kEndSig = 0x06054b50;
constexpr std::uint32_t kEnd64Sig = 0x06064b50, kLocator64Sig = 0x07064b50;

/// Little-endian reads that refuse to run past the end of the file.
class Bytes {
 public:
  Bytes(const std::string& data, const std::string& path) : d_(data), path_(path) {}
  [[nodiscard]] std::uint64_t get(std::uint64_t offset, int size) const {
    if (offset > d_.size() || static_cast<std::uint64_t>(size) > d_.size() - offset) fail("a record runs past the end of the file");
    std::uint64_t v = 0;
    for (int i = size - 1; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(d_[offset + static_cast<std::uint64_t>(i)]);
    return v;
  }
  [[noreturn]] void fail(const std::string& what) const {
    throw Error(ErrorKind::kDataLoss, "not an intact checkpoint archive (truncated or corrupt): " + what, path_);
  }
  [[nodiscard]] std::uint64_t size() const { return d_.size(); }
  [[nodiscard]] std::string_view view(std::uint64_t offset, std::uint64_t n) const {
    if (offset > d_.size() || n > d_.size() - offset) fail("a member runs past the end of the file");
    return std::string_view(d_).substr(offset, n);
  }

 private:
  const std::string& d_;
  std::string path_;
};

/// Inflates raw deflate data (ZIP method 8); an empty result on any error.
std::string inflate_raw(std::string_view in, std::uint64_t expected) {
  if (expected > (std::uint64_t{1} << 32)) return {};
  std::string out(static_cast<std::size_t>(expected), '\0');
  z_stream z{};
  if (inflateInit2(&z, -MAX_WBITS) != Z_OK) return {};
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  const int rc = inflate(&z, Z_FINISH);
  const auto produced = z.total_out;
  inflateEnd(&z);
  if (rc != Z_STREAM_END) return {};
  out.resize(produced);
  return out;
}

}  // namespace

std::uint32_t crc32(std::string_view data, std::uint32_t crc) noexcept {
  // zlib's, in pieces its uInt length can hold.
  uLong c = crc;
  constexpr std::size_t kPiece = 1u << 30;
  for (std::size_t at = 0; at < data.size(); at += kPiece) {
    const std::size_t n = std::min(kPiece, data.size() - at);
    c = ::crc32(c, reinterpret_cast<const Bytef*>(data.data() + at), static_cast<uInt>(n));
  }
  return static_cast<std::uint32_t>(c);
}

void verify_zip_archive(const std::filesystem::path& path) {
  const std::string data = read_file(path);  // kNotFound / kIo naming it
  const Bytes b(data, path.string());
  if (b.size() < 22) b.fail("too short for a ZIP archive");
  // End of central directory: the last record, followed by a comment of at most 64 KiB.
  std::uint64_t end = b.size() - 22;
  const std::uint64_t lowest = b.size() > 22 + 65535 ? b.size() - 22 - 65535 : 0;
  while (b.get(end, 4) != kEndSig) {
    if (end == lowest) b.fail("no end-of-directory record");
    --end;
  }
  std::uint64_t entries = b.get(end + 10, 2), cd_size = b.get(end + 12, 4), cd_offset = b.get(end + 16, 4);
  if ((entries == 0xFFFF || cd_size == 0xFFFFFFFF || cd_offset == 0xFFFFFFFF) && end >= 20 && b.get(end - 20, 4) == kLocator64Sig) {
    const std::uint64_t e64 = b.get(end - 20 + 8, 8);
    if (b.get(e64, 4) != kEnd64Sig) b.fail("bad ZIP64 end-of-directory record");
    entries = b.get(e64 + 32, 8);
    cd_size = b.get(e64 + 40, 8);
    cd_offset = b.get(e64 + 48, 8);
  }
  if (entries == 0) b.fail("no members");
  std::uint64_t p = cd_offset;
  for (std::uint64_t i = 0; i < entries; ++i) {
    if (b.get(p, 4) != kCentralSig) b.fail(fmt::format("central directory entry {} is damaged", i));
    const auto method = b.get(p + 10, 2);
    const auto crc = static_cast<std::uint32_t>(b.get(p + 16, 4));
    std::uint64_t comp = b.get(p + 20, 4), uncomp = b.get(p + 24, 4);
    const auto name_len = b.get(p + 28, 2), extra_len = b.get(p + 30, 2), comment_len = b.get(p + 32, 2);
    std::uint64_t local = b.get(p + 42, 4);
    const std::string name(b.view(p + 46, name_len));
    // ZIP64 sizes and offset live in extra field 0x0001, in this order, when the 32-bit ones are saturated.
    for (std::uint64_t x = p + 46 + name_len; x + 4 <= p + 46 + name_len + extra_len;) {
      const auto id = b.get(x, 2), len = b.get(x + 2, 2);
      if (id == 0x0001) {
        std::uint64_t q = x + 4;
        if (uncomp == 0xFFFFFFFF) uncomp = b.get(q, 8), q += 8;
        if (comp == 0xFFFFFFFF) comp = b.get(q, 8), q += 8;
        if (local == 0xFFFFFFFF) local = b.get(q, 8);
      }
      x += 4 + len;
    }
    if (b.get(local, 4) != kLocalSig) b.fail("member '" + name + "' has a damaged local header");
    const std::uint64_t start = local + 30 + b.get(local + 26, 2) + b.get(local + 28, 2);
    if (b.view(local + 30, b.get(local + 26, 2)) != name) b.fail("member '" + name + "' is named differently in its local header");
    std::string_view bytes;
    std::string inflated;  // deflated members (LibTorch compresses its small code files)
    if (method == 0) {
      if (comp != uncomp) b.fail("member '" + name + "' has inconsistent sizes");
      bytes = b.view(start, comp);
    } else if (method == 8) {
      inflated = inflate_raw(b.view(start, comp), uncomp);
      if (inflated.size() != uncomp) b.fail("member '" + name + "' does not inflate to its recorded size");
      bytes = inflated;
    } else {
      b.fail(fmt::format("member '{}' uses compression method {}", name, method));
    }
    if (crc32(bytes) != crc) {
      throw Error(ErrorKind::kDataLoss, "checkpoint is corrupt: member '" + name + "' fails its CRC-32 check", path.string());
    }
    p += 46 + name_len + extra_len + comment_len;
  }
  if (p != cd_offset + cd_size) b.fail("central directory size does not match its entries");
}

}  // namespace emt
