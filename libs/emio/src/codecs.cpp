#include "codecs.hpp"

#include <blosc.h>
#include <lzma.h>
#include <zlib.h>
#include <zstd.h>
#include <zstd_errors.h>

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
      std::size_t nbytes = 0;
      if (in.size() < BLOSC_MIN_HEADER_LENGTH || blosc_cbuffer_validate(in.data(), in.size(), &nbytes) != 0) {
        corrupt(codec, "bad header or stream shorter than its header says", where);
      }
      if (nbytes != expected) wrong_size(codec, nbytes, expected, where);
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
