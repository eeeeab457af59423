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
    fs::path file = fs::path(dir_) / std::to_string(c[2]) / std::to_string(c[1]) / std::to_string(c[0]);
    for (std::size_t i = 3; i < rank_; ++i) file /= "0";
    auto bytes = detail::read_file_if_exists(file.string());
    if (!bytes) return nullptr;
    const std::string where = file.string();
    const auto& b = *bytes;
    if (b.size() < 4) throw Error(ErrorKind::kDataLoss, "truncated block header", where);
    const int mode = (b[0] << 8) | b[1];
    const std::size_t ndim = static_cast<std::size_t>((b[2] << 8) | b[3]);
    if (mode != 0 && mode != 1) throw Error(ErrorKind::kInvalidData, fmt::format("block mode {} is not supported (expected 0 or 1)", mode), where);
    if (ndim != rank_) throw Error(ErrorKind::kDataLoss, fmt::format("block header has rank {}, the dataset {}", ndim, rank_), where);
    const std::size_t header = 4 + 4 * ndim + (mode == 1 ? 4 : 0);
    if (b.size() < header) throw Error(ErrorKind::kDataLoss, "truncated block header", where);
    std::vector<std::int64_t> dims_zyx(ndim);  // reversed into z, y, x order
    std::size_t voxels = 1;
    for (std::size_t i = 0; i < ndim; ++i) {
      dims_zyx[ndim - 1 - i] = be32(b.data() + 4 + 4 * i);
      voxels *= static_cast<std::size_t>(dims_zyx[ndim - 1 - i]);
    }
    const Index3 dims = detail::spatial_dims(dims_zyx, "block", where);
    if (dims[0] > chunk_[0] || dims[1] > chunk_[1] || dims[2] > chunk_[2]) {
      throw Error(ErrorKind::kDataLoss, fmt::format("block header says {}x{}x{}, larger than the block size", dims[0], dims[1], dims[2]), where);
    }
    if (mode == 1 && be32(b.data() + 4 + 4 * ndim) != voxels) {
      throw Error(ErrorKind::kInvalidData, "varlength blocks are not supported", where);
    }
    const std::size_t item = bits_ / 8;
    auto chunk = std::make_shared<Chunk>();
    chunk->dims = dims;
    chunk->data = codec::decode(codec_, std::vector<std::uint8_t>(b.begin() + static_cast<std::ptrdiff_t>(header), b.end()),
                                voxels * item, where);
    if (item == 2) detail::byteswap16(chunk->data);  // N5 stores big-endian
    return chunk;
  }

 private:
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
    set_grid({s[0], s[1], s[2]}, detail::spatial_dims(block, "blockSize", file), bits);
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
