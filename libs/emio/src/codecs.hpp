#pragma once
// Chunk codecs shared by the Zarr, N5 and precomputed backends and writers.
// Every codec is the Debian library's own (zlib, libzstd, libblosc, liblzma);
// this file only adapts their calls and turns their failures into emt::Error.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace emt::emio::codec {

enum class Codec { kRaw, kZlib, kGzip, kZstd, kBlosc, kXz };
[[nodiscard]] const char* to_string(Codec codec) noexcept;

/// How a writer compresses (readers need only the Codec: blosc and the others
/// carry their parameters in the stream).
struct EncodeOptions {
  Codec codec = Codec::kBlosc;
  int level = 5;                    ///< zlib/gzip 1-9, zstd 1-19, blosc 0-9, xz 0-9
  std::string blosc_cname = "lz4";  ///< blosc inner codec: blosclz, lz4, lz4hc, zlib, zstd
  int blosc_shuffle = 1;            ///< 0 none, 1 byte, 2 bit
};

/// Decompresses `in`, which must decode to exactly `expected` bytes. Throws
/// kDataLoss naming `where` for a truncated or corrupt stream, or one that
/// decodes to a different size.
[[nodiscard]] std::vector<std::uint8_t> decode(Codec codec, std::vector<std::uint8_t> in, std::size_t expected,
                                               const std::string& where);

/// Whether decode_range() can decode part of a chunk without the rest: raw
/// (a copy) and blosc (only the blosc blocks overlapping the part).
[[nodiscard]] bool decodes_ranges(Codec codec) noexcept;

/// Bytes [offset, offset + n) of what `in` (`in_size` bytes, e.g. a mapped
/// chunk file) decodes to, which must be `expected` bytes in all, written to
/// `out`: the same bytes decode() gives there. Only the pages of `in` that
/// hold them are read. kInvalidArgument for codecs that cannot (see
/// decodes_ranges), kDataLoss as decode().
void decode_range(Codec codec, const std::uint8_t* in, std::size_t in_size, std::size_t expected, std::size_t offset,
                  std::size_t n, std::uint8_t* out, const std::string& where);

/// Compresses `n` bytes of elements `typesize` bytes wide (blosc's shuffle uses it).
[[nodiscard]] std::vector<std::uint8_t> encode(const EncodeOptions& options, const std::uint8_t* data, std::size_t n,
                                               int typesize);

/// True when `bytes` start with the gzip magic (1f 8b).
[[nodiscard]] bool looks_gzipped(const std::vector<std::uint8_t>& bytes) noexcept;

}  // namespace emt::emio::codec
