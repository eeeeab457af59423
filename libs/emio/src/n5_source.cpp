// N5 datasets: attributes.json, one file per block at DATASET/x/y/z, each a
// big-endian header (mode, rank, block size in N5's x-first order) then the
// (compressed) big-endian samples. Edge blocks may be stored clipped (the Java
// reference) or padded (zarr's N5Store); both read.
#include <filesystem>

#include <fmt/format.h>

#include "chunked.hpp"
#include "emt/common/error.hpp"

namespace emt::emio {
namespace fs = std::filesystem;
using detail::Chunk;
using detail::ChunkPtr;
using detail::Index3;

namespace {

codec::Codec n5_codec(const nlohmann::json& attrs, const std::string& file) {
  std::string type;
  bool zlib = false;
  if (attrs.contains("compression")) {
    const auto& c = attrs["compression"];
    type = detail::require(c, "type", file).get<std::string>();
    zlib = c.value("useZlib", false);
  } else if (attrs.contains("compressionType")) {  // N5 before 1.0
    type = attrs["compressionType"].get<std::string>();
  } else {
    type = "raw";
  }
  if (type == "raw") return codec::Codec::kRaw;
  if (type == "gzip") return zlib ? codec::Codec::kZlib : codec::Codec::kGzip;
  if (type == "zstd") return codec::Codec::kZstd;
  if (type == "blosc") return codec::Codec::kBlosc;
  if (type == "xz") return codec::Codec::kXz;
  throw Error(ErrorKind::kInvalidData, "unsupported compression '" + type + "' (supported: raw, gzip, zstd, blosc, xz)", file);
}

std::uint32_t be32(const std::uint8_t* p) {
  return (std::uint32_t(p[0]) << 24) | (std::uint32_t(p[1]) << 16) | (std::uint32_t(p[2]) << 8) | std::uint32_t(p[3]);
}

class N5Source final : public detail::ChunkedSource {
 public:
  N5Source(std::string container, std::string dataset, const SourceOptions& options)
      : ChunkedSource(std::move(container), std::move(dataset), options),
        dir_(dataset_.empty() ? path_ : (fs::path(path_) / dataset_).string()) {
    const std::string file = (fs::path(dir_) / "attributes.json").string();
    const nlohmann::json attrs = detail::read_json(file);
    try {
      parse(attrs, file);
    } catch (const nlohmann::json::exception& e) {
      throw Error(ErrorKind::kInvalidData, std::string("malformed attributes.json: ") + e.what(), file);
    }
  }
  SourceKind kind() const noexcept override { return SourceKind::kN5; }

 protected:
  ChunkPtr load_chunk(const Index3& c) const override {
    const std::string file = block_file(c);
    auto bytes = detail::read_file_if_exists(file);
    if (!bytes) return nullptr;
    const Header h = header(bytes->data(), bytes->size(), file);
    const std::size_t item = bits_ / 8;
    auto chunk = std::make_shared<Chunk>();
    chunk->dims = h.dims;
    chunk->data = codec::decode(codec_, std::vector<std::uint8_t>(bytes->begin() + static_cast<std::ptrdiff_t>(h.bytes), bytes->end()),
                                h.voxels * item, file);
    if (item == 2) detail::byteswap16(chunk->data);  // N5 stores big-endian
    return chunk;
  }
  /// N5 lists x first and x varies fastest in a block: (z, y, x) C order, so
  /// plane dz of a block is contiguous.
  ChunkPtr load_plane(const Index3& c, std::int64_t dz) const override {
    const std::string file = block_file(c);
    const auto mapped = detail::MappedFile::open_if_exists(file);
    if (!mapped) return nullptr;
    const Header h = header(mapped->data(), mapped->size(), file);
    check_covers(c, h.dims, file);  // also makes dz < h.dims[0]
    const std::size_t item = bits_ / 8, plane = static_cast<std::size_t>(h.dims[1] * h.dims[2]) * item;
    auto chunk = new_plane(h.dims[1], h.dims[2]);
    codec::decode_range(codec_, mapped->data() + h.bytes, mapped->size() - h.bytes, h.voxels * item,
                        static_cast<std::size_t>(dz) * plane, plane, chunk->data.data(), file);
    if (item == 2) detail::byteswap16(chunk->data);
    return chunk;
  }

 private:
  std::string block_file(const Index3& c) const {
    fs::path file = fs::path(dir_) / std::to_string(c[2]) / std::to_string(c[1]) / std::to_string(c[0]);
    for (std::size_t i = 3; i < rank_; ++i) file /= "0";
    return file.string();
  }

  /// A block's header: mode, rank, its size (x first); checked against the dataset.
  struct Header {
    Index3 dims{};           ///< z, y, x
    std::size_t voxels = 0;  ///< in all dimensions
    std::size_t bytes = 0;   ///< header length; the (compressed) samples follow
  };
  Header header(const std::uint8_t* b, std::size_t size, const std::string& where) const {
    if (size < 4) throw Error(ErrorKind::kDataLoss, "truncated block header", where);
    const int mode = (b[0] << 8) | b[1];
    const std::size_t ndim = static_cast<std::size_t>((b[2] << 8) | b[3]);
    if (mode != 0 && mode != 1) throw Error(ErrorKind::kInvalidData, fmt::format("block mode {} is not supported (expected 0 or 1)", mode), where);
    if (ndim != rank_) throw Error(ErrorKind::kDataLoss, fmt::format("block header has rank {}, the dataset {}", ndim, rank_), where);
    Header h;
    h.bytes = 4 + 4 * ndim + (mode == 1 ? 4 : 0);
    if (size < h.bytes) throw Error(ErrorKind::kDataLoss, "truncated block header", where);
    std::vector<std::int64_t> dims_zyx(ndim);  // reversed into z, y, x order
    h.voxels = 1;
    for (std::size_t i = 0; i < ndim; ++i) {
      dims_zyx[ndim - 1 - i] = be32(b + 4 + 4 * i);
      h.voxels *= static_cast<std::size_t>(dims_zyx[ndim - 1 - i]);
    }
    h.dims = detail::spatial_dims(dims_zyx, "block", where);
    if (h.dims[0] > chunk_[0] || h.dims[1] > chunk_[1] || h.dims[2] > chunk_[2]) {
      throw Error(ErrorKind::kDataLoss, fmt::format("block header says {}x{}x{}, larger than the block size", h.dims[0], h.dims[1], h.dims[2]), where);
    }
    if (mode == 1 && be32(b + 4 + 4 * ndim) != h.voxels) throw Error(ErrorKind::kInvalidData, "varlength blocks are not supported", where);
    return h;
  }

  void parse(const nlohmann::json& attrs, const std::string& file) {
    auto reversed = [&](const char* key) {
      auto v = detail::int_list(detail::require(attrs, key, file), key, file);
      return std::vector<std::int64_t>(v.rbegin(), v.rend());
    };
    const auto dims = reversed("dimensions"), block = reversed("blockSize");
    if (dims.size() != block.size()) throw Error(ErrorKind::kInvalidData, "'blockSize' and 'dimensions' differ in rank", file);
    rank_ = dims.size();
    const Index3 s = detail::spatial_dims(dims, "dataset", file);
    const std::string type = detail::require(attrs, "dataType", file).get<std::string>();
    const int bits = type == "uint8" ? 8 : type == "uint16" ? 16 : 0;
    if (bits == 0) throw Error(ErrorKind::kInvalidData, "unsupported dataType '" + type + "' (expected uint8 or uint16)", file);
    codec_ = n5_codec(attrs, file);
    set_grid({s[0], s[1], s[2]}, detail::spatial_dims(block, "blockSize", file), bits,
             codec::decodes_ranges(codec_) ? detail::ReadUnit::kPlane : detail::ReadUnit::kChunk, codec::to_string(codec_));
    // Voxel size: n5-viewer's pixelResolution {dimensions, unit}, or funlib's
    // resolution; both list x first.
    auto set_res = [&](const nlohmann::json& r, double nm) {
      if (r.is_array() && r.size() >= 3) {
        resolution_ = std::array<double, 3>{r[2].get<double>() * nm, r[1].get<double>() * nm, r[0].get<double>() * nm};
      }
    };
    if (attrs.contains("pixelResolution") && attrs["pixelResolution"].is_object()) {
      const auto& pr = attrs["pixelResolution"];
      set_res(pr.value("dimensions", nlohmann::json()), detail::unit_in_nm(pr.value("unit", std::string()), file));
    } else if (attrs.contains("resolution")) {
      set_res(attrs["resolution"], 1.0);
    }
  }

  std::string dir_;
  std::size_t rank_ = 3;
  codec::Codec codec_ = codec::Codec::kRaw;
};

}  // namespace

std::unique_ptr<SliceSource> open_n5_dataset(const std::string& dir, const SourceOptions& options, const std::string& dataset) {
  return std::make_unique<N5Source>(dir, dataset, options);
}

}  // namespace emt::emio
