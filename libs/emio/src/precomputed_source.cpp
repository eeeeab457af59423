// Neuroglancer precomputed volumes, unsharded, from a local directory, as
// documented in neuroglancer's src/datasource/precomputed/volume.md: an `info`
// JSON with `scales[]`; each scale's chunks are files
// KEY/x0-x1_y0-y1_z0-z1 (voxel coordinates including voxel_offset, clipped at
// the volume's end), raw (x fastest, little-endian), jpeg or png (an image
// x wide and y*z high). A chunk file may be gzip-compressed on disk (a `.gz`
// name, as CloudVolume writes, or gzip bytes under the plain name).
#include <filesystem>

#include <fmt/format.h>
#include <opencv2/imgcodecs.hpp>

#include "chunked.hpp"
#include "emt/common/error.hpp"

namespace emt::emio {
namespace fs = std::filesystem;
using detail::Chunk;
using detail::ChunkPtr;
using detail::Index3;

namespace {

enum class Encoding { kRaw, kJpeg, kPng };

class PrecomputedSource final : public detail::ChunkedSource {
 public:
  PrecomputedSource(const std::string& dir, const SourceOptions& options) : ChunkedSource(dir, {}, options) {
    const std::string file = (fs::path(dir) / "info").string();
    const nlohmann::json info = detail::read_json(file);
    try {
      parse(info, file, options.scale);
    } catch (const nlohmann::json::exception& e) {
      throw Error(ErrorKind::kInvalidData, std::string("malformed precomputed info: ") + e.what(), file);
    }
  }
  SourceKind kind() const noexcept override { return SourceKind::kPrecomputed; }

 protected:
  ChunkPtr load_chunk(const Index3& c) const override {
    const Index3 e = clipped_extent(c);
    std::string file = chunk_file(c);
    auto bytes = detail::read_file_if_exists(file);
    bool gz = false;
    if (!bytes) {
      file += ".gz";
      bytes = detail::read_file_if_exists(file);
      if (!bytes) return nullptr;  // missing chunks read as 0, as in neuroglancer
      gz = true;
    }
    const std::size_t item = bits_ / 8;
    const std::size_t raw_bytes = static_cast<std::size_t>(e[0] * e[1] * e[2]) * item;
    auto chunk = std::make_shared<Chunk>();
    chunk->dims = e;
    if (encoding_ == Encoding::kRaw) {
      // Plain-named files that hold gzip bytes (HTTP Content-Encoding saved to disk).
      if (!gz && bytes->size() != raw_bytes && codec::looks_gzipped(*bytes)) gz = true;
      chunk->data = codec::decode(gz ? codec::Codec::kGzip : codec::Codec::kRaw, std::move(*bytes), raw_bytes, file);
      return chunk;
    }
    if (gz) throw Error(ErrorKind::kInvalidData, "gzip-compressed jpeg/png chunks are not supported", file);
    const cv::Mat img = cv::imdecode(*bytes, cv::IMREAD_GRAYSCALE | (bits_ == 16 ? cv::IMREAD_ANYDEPTH : 0));
    if (img.empty()) throw Error(ErrorKind::kDataLoss, "cannot decode image chunk (truncated or corrupt?)", file);
    if (img.cols != e[2] || img.rows != e[1] * e[0] || img.elemSize() != item) {
      throw Error(ErrorKind::kDataLoss,
                  fmt::format("image chunk is {}x{}, expected {}x{} (x by y*z)", img.cols, img.rows, e[2], e[1] * e[0]), file);
    }
    const cv::Mat cont = img.isContinuous() ? img : img.clone();
    chunk->data.assign(cont.data, cont.data + raw_bytes);
    return chunk;
  }

  /// Raw chunks are x fastest, so plane dz is contiguous. gzip-compressed
  /// ones (NAME.gz, or gzip bytes under NAME) decode whole.
  ChunkPtr load_plane(const Index3& c, std::int64_t dz) const override {
    const Index3 e = clipped_extent(c);
    const std::string file = chunk_file(c);
    const auto mapped = detail::MappedFile::open_if_exists(file);
    const std::size_t item = bits_ / 8, plane = static_cast<std::size_t>(e[1] * e[2]) * item;
    if (!mapped || mapped->size() != plane * static_cast<std::size_t>(e[0])) {
      if (mapped || fs::exists(file + ".gz")) warn_chunks_decoded_again("gzip-compressed");
      return ChunkedSource::load_plane(c, dz);
    }
    auto chunk = new_plane(e[1], e[2]);
    codec::decode_range(codec::Codec::kRaw, mapped->data(), mapped->size(), mapped->size(), static_cast<std::size_t>(dz) * plane,
                        plane, chunk->data.data(), file);
    return chunk;
  }

 private:
  /// KEY/x0-x1_y0-y1_z0-z1 in voxel coordinates (voxel_offset applied, clipped at the end).
  std::string chunk_file(const Index3& c) const {
    const Index3 e = clipped_extent(c);
    Index3 lo{}, hi{};
    for (int d = 0; d < 3; ++d) {
      lo[d] = offset_[d] + c[d] * chunk_[d];
      hi[d] = lo[d] + e[d];
    }
    return (fs::path(path_) / key_ / fmt::format("{}-{}_{}-{}_{}-{}", lo[2], hi[2], lo[1], hi[1], lo[0], hi[0])).string();
  }

  void parse(const nlohmann::json& info, const std::string& file, int scale) {
    const std::string type = info.value("type", std::string("image"));
    if (type != "image") throw Error(ErrorKind::kInvalidData, "volume type '" + type + "' is not supported (expected image)", file);
    const std::string dtype = detail::require(info, "data_type", file).get<std::string>();
    const int bits = dtype == "uint8" ? 8 : dtype == "uint16" ? 16 : 0;
    if (bits == 0) throw Error(ErrorKind::kInvalidData, "unsupported data_type '" + dtype + "' (expected uint8 or uint16)", file);
    const int channels = detail::require(info, "num_channels", file).get<int>();
    if (channels != 1) throw Error(ErrorKind::kInvalidData, fmt::format("{} channels (only 1 is supported)", channels), file);
    const auto& scales = detail::require(info, "scales", file);
    if (!scales.is_array() || scale < 0 || scale >= static_cast<int>(scales.size())) {
      throw Error(ErrorKind::kInvalidArgument,
                  fmt::format("scale {} does not exist (the volume has scales 0..{})", scale,
                              scales.is_array() ? static_cast<int>(scales.size()) - 1 : -1), file);
    }
    const auto& s = scales[static_cast<std::size_t>(scale)];
    key_ = detail::require(s, "key", file).get<std::string>();
    dataset_ = key_;
    if (s.contains("sharding") && !s["sharding"].is_null()) {
      throw Error(ErrorKind::kInvalidData, "sharded precomputed volumes are not supported yet (scale '" + key_ + "')", file);
    }
    const std::string enc = detail::require(s, "encoding", file).get<std::string>();
    if (enc == "raw") encoding_ = Encoding::kRaw;
    else if (enc == "jpeg" && bits == 8) encoding_ = Encoding::kJpeg;
    else if (enc == "png") encoding_ = Encoding::kPng;
    else throw Error(ErrorKind::kInvalidData, "unsupported encoding '" + enc + "' for " + dtype + " (supported: raw, jpeg for uint8, png)", file);
    auto xyz = [&](const nlohmann::json& j, const char* what) {
      const auto v = detail::int_list(j, what, file);
      if (v.size() != 3) throw Error(ErrorKind::kInvalidData, std::string("'") + what + "' must have 3 entries (x, y, z)", file);
      return Index3{v[2], v[1], v[0]};
    };
    const Index3 size = xyz(detail::require(s, "size", file), "size");
    offset_ = s.contains("voxel_offset") ? xyz(s["voxel_offset"], "voxel_offset") : Index3{0, 0, 0};
    const auto& chunk_sizes = detail::require(s, "chunk_sizes", file);
    if (!chunk_sizes.is_array() || chunk_sizes.empty()) throw Error(ErrorKind::kInvalidData, "'chunk_sizes' is empty", file);
    set_grid({size[0], size[1], size[2]}, xyz(chunk_sizes[0], "chunk_sizes"), bits,
             encoding_ == Encoding::kRaw ? detail::ReadUnit::kPlane : detail::ReadUnit::kChunk, enc);
    const auto& r = detail::require(s, "resolution", file);
    if (r.is_array() && r.size() == 3) resolution_ = std::array<double, 3>{r[2].get<double>(), r[1].get<double>(), r[0].get<double>()};
  }

  std::string key_;
  Index3 offset_{};
  Encoding encoding_ = Encoding::kRaw;
};

}  // namespace

std::unique_ptr<SliceSource> open_precomputed(const std::string& dir, const SourceOptions& options) {
  return std::make_unique<PrecomputedSource>(dir, options);
}

}  // namespace emt::emio
