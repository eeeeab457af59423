#include "codecs.hpp"

#include <blosc.h>
#include <lzma.h>
#include <zlib.h>
#include <zstd.h>
#include <zstd_errors.h>

#include <algorithm>

#include <fmt/format.h>

#include "emt/common/error.hpp"

namespace emt::emio::codec {
namespace {

[[noreturn]] void wrong_size(Codec codec, std::size_t got, std::size_t expected, const std::string& where, bool more = false) {
  throw Error(ErrorKind::kDataLoss,
              fmt::format("chunk decompresses ({}) to {}{} bytes, expected {}", to_string(codec), more ? "more than " : "",
                          got, expected),
              where);
}

[[noreturn]] void corrupt(Codec codec, const std::string& detail, const std::string& where) {
  throw Error(ErrorKind::kDataLoss, fmt::format("truncated or corrupt {} chunk ({})", to_string(codec), detail), where);
}

/// zlib and gzip streams (window bits 15 and 15 + 16).
std::vector<std::uint8_t> inflate_all(Codec codec, const std::vector<std::uint8_t>& in, std::size_t expected,
                                      const std::string& where) {
  std::vector<std::uint8_t> out(expected + 1);  // one spare byte tells "too long" from "exact"
  z_stream zs{};
  if (inflateInit2(&zs, codec == Codec::kGzip ? 15 + 16 : 15) != Z_OK) corrupt(codec, "inflateInit2 failed", where);
  zs.next_in = const_cast<Bytef*>(in.data());
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = out.data();
  zs.avail_out = static_cast<uInt>(out.size());
  const int rc = inflate(&zs, Z_FINISH);
  const std::size_t produced = zs.total_out;
  const char* msg = zs.msg;
  inflateEnd(&zs);
  if (rc == Z_STREAM_END) {
    if (produced != expected) wrong_size(codec, produced, expected, where);
    out.resize(expected);
    return out;
  }
  if (produced > expected) wrong_size(codec, expected, expected, where, true);
  corrupt(codec, msg ? msg : (rc == Z_BUF_ERROR ? "stream ends early" : "inflate failed"), where);
}

/// A blosc stream that claims to be what it is (header sizes, the length it
/// says) and decodes to `expected` bytes: safe to hand to blosc's decoders.
void check_blosc(const std::uint8_t* in, std::size_t in_size, std::size_t expected, const std::string& where) {
  std::size_t nbytes = 0;
  if (in_size < BLOSC_MIN_HEADER_LENGTH || blosc_cbuffer_validate(in, in_size, &nbytes) != 0) {
    corrupt(Codec::kBlosc, "bad header or stream shorter than its header says", where);
  }
  if (nbytes != expected) wrong_size(Codec::kBlosc, nbytes, expected, where);
}

}  // namespace

const char* to_string(Codec codec) noexcept {
  switch (codec) {
    case Codec::kRaw: return "raw";
    case Codec::kZlib: return "zlib";
    case Codec::kGzip: return "gzip";
    case Codec::kZstd: return "zstd";
    case Codec::kBlosc: return "blosc";
    case Codec::kXz: return "xz";
  }
  return "unknown";
}

bool looks_gzipped(const std::vector<std::uint8_t>& bytes) noexcept {
  return bytes.size() >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b;
}

std::vector<std::uint8_t> decode(Codec codec, std::vector<std::uint8_t> in, std::size_t expected, const std::string& where) {
  switch (codec) {
    case Codec::kRaw:
      if (in.size() != expected) {
        throw Error(ErrorKind::kDataLoss, fmt::format("chunk holds {} bytes, expected {}{}", in.size(), expected,
                                                      in.size() < expected ? " (truncated?)" : ""), where);
      }
      return in;
    case Codec::kZlib:
    case Codec::kGzip: return inflate_all(codec, in, expected, where);
    case Codec::kZstd: {
      std::vector<std::uint8_t> out(expected + 1);
      const std::size_t n = ZSTD_decompress(out.data(), out.size(), in.data(), in.size());
      if (ZSTD_isError(n)) {
        if (ZSTD_getErrorCode(n) == ZSTD_error_dstSize_tooSmall) wrong_size(codec, expected, expected, where, true);
        corrupt(codec, ZSTD_getErrorName(n), where);
      }
      if (n != expected) wrong_size(codec, n, expected, where);
      out.resize(expected);
      return out;
    }
    case Codec::kBlosc: {
      check_blosc(in.data(), in.size(), expected, where);
      std::vector<std::uint8_t> out(expected);
      // The _ctx form is thread-safe and keeps blosc's global state out of it.
      if (blosc_decompress_ctx(in.data(), out.data(), out.size(), 1) != static_cast<int>(expected)) {
        corrupt(codec, "blosc_decompress failed", where);
      }
      return out;
    }
    case Codec::kXz: {
      std::vector<std::uint8_t> out(expected + 1);
      std::uint64_t memlimit = UINT64_MAX;
      std::size_t in_pos = 0, out_pos = 0;
      const lzma_ret rc = lzma_stream_buffer_decode(&memlimit, 0, nullptr, in.data(), &in_pos, in.size(), out.data(),
                                                    &out_pos, out.size());
      if (rc == LZMA_BUF_ERROR && out_pos == out.size()) wrong_size(codec, expected, expected, where, true);
      if (rc != LZMA_OK) corrupt(codec, fmt::format("liblzma error {}", static_cast<int>(rc)), where);
      if (out_pos != expected) wrong_size(codec, out_pos, expected, where);
      out.resize(expected);
      return out;
    }
  }
  throw Error(ErrorKind::kInvalidData, "unknown codec", where);
}

bool decodes_ranges(Codec codec) noexcept { return codec == Codec::kRaw || codec == Codec::kBlosc; }

void decode_range(Codec codec, const std::uint8_t* in, std::size_t in_size, std::size_t expected, std::size_t offset,
                  std::size_t n, std::uint8_t* out, const std::string& where) {
  if (offset > expected || n > expected - offset) {
    throw Error(ErrorKind::kInvalidArgument, fmt::format("bytes {}..{} of a {}-byte chunk", offset, offset + n, expected), where);
  }
  if (codec == Codec::kRaw) {
    if (in_size != expected) {
      throw Error(ErrorKind::kDataLoss, fmt::format("chunk holds {} bytes, expected {}{}", in_size, expected,
                                                    in_size < expected ? " (truncated?)" : ""), where);
    }
    std::copy(in + offset, in + offset + n, out);
    return;
  }
  if (codec != Codec::kBlosc) {
    throw Error(ErrorKind::kInvalidArgument, fmt::format("{} chunks cannot be decoded in part", to_string(codec)), where);
  }
  check_blosc(in, in_size, expected, where);
  if (n == 0) return;
  // blosc_getitem counts in items of the stream's typesize (the sample size
  // for Zarr and N5). It keeps its state in a local context and temporary
  // buffer, so threads may call it at once (c-blosc 1.21 blosc.c).
  std::size_t nbytes = 0, cbytes = 0, blocksize = 0, typesize = 0;
  int flags = 0;
  blosc_cbuffer_sizes(in, &nbytes, &cbytes, &blocksize);
  blosc_cbuffer_metainfo(in, &typesize, &flags);
  if (typesize == 0) corrupt(codec, "typesize 0", where);
  const std::size_t first = offset / typesize, last = (offset + n + typesize - 1) / typesize;
  if (first * typesize == offset && last * typesize == offset + n) {
    const int got = blosc_getitem(in, static_cast<int>(first), static_cast<int>(last - first), out);
    if (got != static_cast<int>(n)) corrupt(codec, fmt::format("blosc_getitem failed ({})", got), where);
    return;
  }
  // A range that does not start and end on items: decode all of it (no
  // writer of ours or of Zarr / N5 makes such streams; correct, not fast).
  const std::vector<std::uint8_t> all = decode(codec, std::vector<std::uint8_t>(in, in + in_size), expected, where);
  std::copy(all.begin() + static_cast<std::ptrdiff_t>(offset), all.begin() + static_cast<std::ptrdiff_t>(offset + n), out);
}

std::vector<std::uint8_t> encode(const EncodeOptions& o, const std::uint8_t* data, std::size_t n, int typesize) {
  switch (o.codec) {
    case Codec::kRaw: return {data, data + n};
    case Codec::kZlib:
    case Codec::kGzip: {
      z_stream zs{};
      if (deflateInit2(&zs, o.level, Z_DEFLATED, o.codec == Codec::kGzip ? 15 + 16 : 15, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
        throw Error(ErrorKind::kInvalidArgument, fmt::format("bad {} level {}", to_string(o.codec), o.level));
      }
      std::vector<std::uint8_t> out(deflateBound(&zs, static_cast<uLong>(n)) + 32);
      zs.next_in = const_cast<Bytef*>(data);
      zs.avail_in = static_cast<uInt>(n);
      zs.next_out = out.data();
      zs.avail_out = static_cast<uInt>(out.size());
      const int rc = deflate(&zs, Z_FINISH);
      out.resize(zs.total_out);
      deflateEnd(&zs);
      if (rc != Z_STREAM_END) throw Error(ErrorKind::kIo, "deflate failed");
      return out;
    }
    case Codec::kZstd: {
      std::vector<std::uint8_t> out(ZSTD_compressBound(n));
      const std::size_t m = ZSTD_compress(out.data(), out.size(), data, n, o.level);
      if (ZSTD_isError(m)) throw Error(ErrorKind::kIo, std::string("zstd compression failed: ") + ZSTD_getErrorName(m));
      out.resize(m);
      return out;
    }
    case Codec::kBlosc: {
      std::vector<std::uint8_t> out(n + BLOSC_MAX_OVERHEAD);
      const int m = blosc_compress_ctx(o.level, o.blosc_shuffle, static_cast<std::size_t>(typesize), n, data, out.data(),
                                       out.size(), o.blosc_cname.c_str(), 0, 1);
      if (m <= 0) throw Error(ErrorKind::kInvalidArgument, "blosc compression failed (unknown inner codec '" + o.blosc_cname + "'?)");
      out.resize(static_cast<std::size_t>(m));
      return out;
    }
    case Codec::kXz: {
      std::vector<std::uint8_t> out(lzma_stream_buffer_bound(n));
      std::size_t pos = 0;
      if (lzma_easy_buffer_encode(static_cast<std::uint32_t>(o.level), LZMA_CHECK_CRC64, nullptr, data, n, out.data(), &pos,
                                  out.size()) != LZMA_OK) {
        throw Error(ErrorKind::kIo, "xz compression failed");
      }
      out.resize(pos);
      return out;
    }
  }
  throw Error(ErrorKind::kInvalidArgument, "unknown codec");
}

}  // namespace emt::emio::codec
