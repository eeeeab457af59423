// Zarr v2 and v3 arrays, and OME-Zarr multiscale groups built on them (0.4 on
// Zarr v2, 0.5 on Zarr v3). Both Zarr versions share the chunk grid, padded
// edge chunks and fill value; they differ in metadata, chunk keys and how the
// codecs are named.
#include <filesystem>

#include <fmt/format.h>

#include "chunked.hpp"
#include "emt/common/error.hpp"
#include "emt/common/text.hpp"

namespace emt::emio {
namespace fs = std::filesystem;
using detail::Chunk;
using detail::ChunkPtr;
using detail::Index3;

namespace {

/// .zarray `compressor` -> codec.
codec::Codec zarr_codec(const nlohmann::json& compressor, const std::string& file) {
  if (compressor.is_null()) return codec::Codec::kRaw;
  const std::string id = detail::require(compressor, "id", file).get<std::string>();
  if (id == "zlib") return codec::Codec::kZlib;
  if (id == "gzip") return codec::Codec::kGzip;
  if (id == "zstd") return codec::Codec::kZstd;
  if (id == "blosc") return codec::Codec::kBlosc;
  if (id == "lzma" && compressor.value("format", 1) == 1) return codec::Codec::kXz;
  throw Error(ErrorKind::kInvalidData, "unsupported compressor '" + id + "' (supported: none, zlib, gzip, zstd, blosc, lzma/xz)", file);
}

class ZarrArraySource final : public detail::ChunkedSource {
 public:
  ZarrArraySource(const std::string& array_dir, std::string shown_path, std::string dataset, SourceKind kind,
                  const SourceOptions& options)
      : ChunkedSource(std::move(shown_path), std::move(dataset), options), dir_(array_dir), kind_(kind) {
    const bool v3 = !fs::exists(fs::path(dir_) / ".zarray") && fs::exists(fs::path(dir_) / "zarr.json");
    const std::string meta_file = (fs::path(dir_) / (v3 ? "zarr.json" : ".zarray")).string();
    const nlohmann::json meta = detail::read_json(meta_file);
    try {
      if (v3) {
        parse_v3(meta, meta_file);
      } else {
        parse(meta, meta_file);
      }
    } catch (const nlohmann::json::exception& e) {
      throw Error(ErrorKind::kInvalidData, std::string("malformed Zarr metadata: ") + e.what(), meta_file);
    }
  }

  SourceKind kind() const noexcept override { return kind_; }
  void set_resolution(std::array<double, 3> r) { resolution_ = r; }
  std::size_t rank() const noexcept { return rank_; }
  const std::string& array_dir() const noexcept { return dir_; }

 protected:
  ChunkPtr load_chunk(const Index3& c) const override {
    const std::string file = chunk_file(c);
    auto bytes = detail::read_file_if_exists(file);
    if (!bytes) return nullptr;
    auto chunk = std::make_shared<Chunk>();
    chunk->dims = chunk_;
    const std::size_t item = bits_ / 8;
    chunk->data = codec::decode(codec_, std::move(*bytes), static_cast<std::size_t>(chunk_[0] * chunk_[1] * chunk_[2]) * item, file);
    if (item == 2 && big_endian_) detail::byteswap16(chunk->data);
    if (fortran_) chunk->data = fortran_to_c(chunk->data, item);
    return chunk;
  }
  /// C order: plane dz is bytes [dz, dz + 1) x plane of the decoded chunk.
  ChunkPtr load_plane(const Index3& c, std::int64_t dz) const override {
    const std::string file = chunk_file(c);
    const auto mapped = detail::MappedFile::open_if_exists(file);
    if (!mapped) return nullptr;
    const std::size_t item = bits_ / 8, plane = static_cast<std::size_t>(chunk_[1] * chunk_[2]) * item;
    auto chunk = new_plane(chunk_[1], chunk_[2]);
    codec::decode_range(codec_, mapped->data(), mapped->size(), plane * static_cast<std::size_t>(chunk_[0]),
                        static_cast<std::size_t>(dz) * plane, plane, chunk->data.data(), file);
    if (item == 2 && big_endian_) detail::byteswap16(chunk->data);
    return chunk;
  }
  std::uint16_t fill_value() const override { return fill_; }

 private:
  std::string chunk_file(const Index3& c) const {
    std::string key = key_prefix_;
    for (std::size_t i = 0; i + 3 < rank_; ++i) key += std::string("0") + separator_;
    key += fmt::format("{}{}{}{}{}", c[0], separator_, c[1], separator_, c[2]);
    return (fs::path(dir_) / key).string();
  }
  /// Planes are contiguous in C order; blosc and raw decode them alone.
  detail::ReadUnit finest_unit() const {
    return !fortran_ && codec::decodes_ranges(codec_) ? detail::ReadUnit::kPlane : detail::ReadUnit::kChunk;
  }

  void parse(const nlohmann::json& meta, const std::string& file) {
    const int format = detail::require(meta, "zarr_format", file).get<int>();
    if (format != 2) throw Error(ErrorKind::kInvalidData, fmt::format("zarr_format {} is not supported (expected 2)", format), file);
    const auto shape = detail::int_list(detail::require(meta, "shape", file), "shape", file);
    const auto chunks = detail::int_list(detail::require(meta, "chunks", file), "chunks", file);
    if (chunks.size() != shape.size()) throw Error(ErrorKind::kInvalidData, "'chunks' and 'shape' differ in rank", file);
    rank_ = shape.size();
    const Index3 s = detail::spatial_dims(shape, "array", file);
    const std::string dtype = detail::require(meta, "dtype", file).get<std::string>();
    int bits = 0;
    if (dtype == "|u1" || dtype == "<u1" || dtype == ">u1") bits = 8;
    if (dtype == "<u2" || dtype == ">u2") bits = 16;
    if (bits == 0) throw Error(ErrorKind::kInvalidData, "unsupported dtype '" + dtype + "' (expected uint8 or uint16: |u1, <u2, >u2)", file);
    big_endian_ = dtype[0] == '>';
    const std::string order = detail::require(meta, "order", file).get<std::string>();
    if (order != "C" && order != "F") throw Error(ErrorKind::kInvalidData, "order must be C or F, not '" + order + "'", file);
    fortran_ = order == "F";
    codec_ = zarr_codec(detail::require(meta, "compressor", file), file);
    if (meta.contains("filters") && !meta["filters"].is_null() && !meta["filters"].empty()) {
      throw Error(ErrorKind::kInvalidData, "filters are not supported: " + meta["filters"].dump(), file);
    }
    const std::string sep = meta.value("dimension_separator", std::string("."));
    if (sep != "." && sep != "/") throw Error(ErrorKind::kInvalidData, "dimension_separator must be '.' or '/'", file);
    separator_ = sep[0];
    const nlohmann::json& fill = detail::require(meta, "fill_value", file);
    if (fill.is_number_integer() && fill.get<std::int64_t>() >= 0 && fill.get<std::int64_t>() < (1 << bits)) {
      fill_ = static_cast<std::uint16_t>(fill.get<std::int64_t>());
    } else if (!fill.is_null()) {
      throw Error(ErrorKind::kInvalidData, "fill_value " + fill.dump() + " does not fit " + dtype, file);
    }
    const Index3 c = detail::spatial_dims(chunks, "chunks", file);
    set_grid({s[0], s[1], s[2]}, c, bits, finest_unit(), fortran_ ? std::string("F-order") : codec::to_string(codec_));
    // funlib / daisy write the voxel size of plain arrays as .zattrs "resolution" (z, y, x).
    const std::string attrs = (fs::path(dir_) / ".zattrs").string();
    if (fs::exists(attrs)) {
      const auto a = detail::read_json(attrs);
      if (a.is_object() && a.contains("resolution") && a["resolution"].is_array() && a["resolution"].size() == 3) {
        resolution_ = std::array<double, 3>{a["resolution"][0].get<double>(), a["resolution"][1].get<double>(),
                                            a["resolution"][2].get<double>()};
      }
    }
  }

  /// Zarr v3 (zarr.json): data_type uint8/uint16, regular chunk grid, default
  /// ("c/0/0/0") or v2 ("0.0.0") chunk keys, codecs `bytes` (endian) followed
  /// by at most one of gzip, zstd, blosc; `transpose` only as the identity or
  /// the full reversal (F order).
  void parse_v3(const nlohmann::json& meta, const std::string& file) {
    const int format = detail::require(meta, "zarr_format", file).get<int>();
    if (format != 3) throw Error(ErrorKind::kInvalidData, fmt::format("zarr_format {} in zarr.json (expected 3)", format), file);
    if (detail::require(meta, "node_type", file).get<std::string>() != "array") {
      throw Error(ErrorKind::kInvalidData, "zarr.json describes a group, not an array", file);
    }
    const auto shape = detail::int_list(detail::require(meta, "shape", file), "shape", file);
    rank_ = shape.size();
    const Index3 s = detail::spatial_dims(shape, "array", file);
    const std::string dtype = detail::require(meta, "data_type", file).get<std::string>();
    const int bits = dtype == "uint8" ? 8 : dtype == "uint16" ? 16 : 0;
    if (bits == 0) throw Error(ErrorKind::kInvalidData, "unsupported data_type '" + dtype + "' (expected uint8 or uint16)", file);
    const auto& grid = detail::require(meta, "chunk_grid", file);
    if (detail::require(grid, "name", file).get<std::string>() != "regular") {
      throw Error(ErrorKind::kInvalidData, "unsupported chunk_grid '" + grid["name"].get<std::string>() + "' (expected regular)", file);
    }
    const auto chunks = detail::int_list(detail::require(detail::require(grid, "configuration", file), "chunk_shape", file), "chunk_shape", file);
    if (chunks.size() != shape.size()) throw Error(ErrorKind::kInvalidData, "'chunk_shape' and 'shape' differ in rank", file);
    const auto& keys = detail::require(meta, "chunk_key_encoding", file);
    const std::string encoding = detail::require(keys, "name", file).get<std::string>();
    const nlohmann::json key_config = keys.value("configuration", nlohmann::json::object());
    if (encoding == "default") {
      separator_ = key_config.value("separator", std::string("/")).at(0);
      key_prefix_ = std::string("c") + separator_;
    } else if (encoding == "v2") {
      separator_ = key_config.value("separator", std::string(".")).at(0);
    } else {
      throw Error(ErrorKind::kInvalidData, "unsupported chunk_key_encoding '" + encoding + "'", file);
    }
    if (separator_ != '.' && separator_ != '/') throw Error(ErrorKind::kInvalidData, "chunk key separator must be '.' or '/'", file);
    bool seen_bytes = false;
    for (const auto& c : detail::require(meta, "codecs", file)) {
      const std::string name = detail::require(c, "name", file).get<std::string>();
      const nlohmann::json config = c.value("configuration", nlohmann::json::object());
      if (name == "transpose" && !seen_bytes) {
        // Identity or full reversal of the axes; nothing else maps onto C/F order.
        const auto order = detail::int_list(detail::require(config, "order", file), "transpose order", file);
        bool identity = true, reversed = true;
        for (std::size_t i = 0; i < order.size(); ++i) {
          identity &= order[i] == static_cast<std::int64_t>(i);
          reversed &= order[i] == static_cast<std::int64_t>(order.size() - 1 - i);
        }
        if (order.size() != rank_ || (!identity && !reversed)) {
          throw Error(ErrorKind::kInvalidData, "transpose order " + config["order"].dump() + " is not supported (identity or reversed only)", file);
        }
        fortran_ = reversed && !identity;
      } else if (name == "bytes" && !seen_bytes) {
        seen_bytes = true;
        big_endian_ = config.value("endian", std::string("little")) == "big";
      } else if (seen_bytes && codec_ == codec::Codec::kRaw && (name == "gzip" || name == "zstd" || name == "blosc")) {
        codec_ = name == "gzip" ? codec::Codec::kGzip : name == "zstd" ? codec::Codec::kZstd : codec::Codec::kBlosc;
      } else {
        throw Error(ErrorKind::kInvalidData,
                    "unsupported codec '" + name + "' here (supported: [transpose,] bytes, then at most one of gzip, zstd, blosc)", file);
      }
    }
    if (!seen_bytes) throw Error(ErrorKind::kInvalidData, "codecs lack the 'bytes' codec", file);
    const nlohmann::json& fill = detail::require(meta, "fill_value", file);
    if (!fill.is_number_integer() || fill.get<std::int64_t>() < 0 || fill.get<std::int64_t>() >= (1 << bits)) {
      throw Error(ErrorKind::kInvalidData, "fill_value " + fill.dump() + " does not fit " + dtype, file);
    }
    fill_ = static_cast<std::uint16_t>(fill.get<std::int64_t>());
    set_grid({s[0], s[1], s[2]}, detail::spatial_dims(chunks, "chunk_shape", file), bits, finest_unit(),
             fortran_ ? std::string("transposed") : codec::to_string(codec_));
    const auto attrs = meta.value("attributes", nlohmann::json::object());
    if (attrs.contains("resolution") && attrs["resolution"].is_array() && attrs["resolution"].size() == 3) {
      resolution_ = std::array<double, 3>{attrs["resolution"][0].get<double>(), attrs["resolution"][1].get<double>(),
                                          attrs["resolution"][2].get<double>()};
    }
  }

  /// F order over (z, y, x): x varies slowest.
  std::vector<std::uint8_t> fortran_to_c(const std::vector<std::uint8_t>& f, std::size_t item) const {
    std::vector<std::uint8_t> c(f.size());
    const auto [nz, ny, nx] = chunk_;
    for (std::int64_t z = 0; z < nz; ++z)
      for (std::int64_t y = 0; y < ny; ++y)
        for (std::int64_t x = 0; x < nx; ++x) {
          const std::size_t src = static_cast<std::size_t>(z + nz * (y + ny * x)) * item;
          const std::size_t dst = static_cast<std::size_t>((z * ny + y) * nx + x) * item;
          for (std::size_t b = 0; b < item; ++b) c[dst + b] = f[src + b];
        }
    return c;
  }

  std::string dir_;
  SourceKind kind_;
  std::size_t rank_ = 3;
  bool big_endian_ = false, fortran_ = false;
  char separator_ = '.';
  std::string key_prefix_;  ///< "c/" or "c." for Zarr v3 default chunk keys
  codec::Codec codec_ = codec::Codec::kRaw;
  std::uint16_t fill_ = 0;
};

}  // namespace

std::unique_ptr<SliceSource> open_zarr_array(const std::string& dir, const SourceOptions& options, const std::string& dataset) {
  const std::string array_dir = dataset.empty() ? dir : (fs::path(dir) / dataset).string();
  return std::make_unique<ZarrArraySource>(array_dir, dir, dataset, SourceKind::kZarr, options);
}

std::unique_ptr<SliceSource> open_ome_zarr(const std::string& dir, const SourceOptions& options) {
  // 0.4: .zattrs {multiscales}; 0.5: zarr.json {attributes: {ome: {version, multiscales}}}.
  const bool v05 = !fs::exists(fs::path(dir) / ".zattrs") && fs::exists(fs::path(dir) / "zarr.json");
  const std::string attrs_file = (fs::path(dir) / (v05 ? "zarr.json" : ".zattrs")).string();
  nlohmann::json attrs = detail::read_json(attrs_file);
  try {
    if (v05) attrs = detail::require(detail::require(attrs, "attributes", attrs_file), "ome", attrs_file);
    const auto& multiscales = detail::require(attrs, "multiscales", attrs_file);
    if (!multiscales.is_array() || multiscales.empty()) throw Error(ErrorKind::kInvalidData, "'multiscales' is empty", attrs_file);
    const auto& ms = multiscales[0];
    const std::string version = v05 ? detail::require(attrs, "version", attrs_file).get<std::string>() : ms.value("version", std::string("0.4"));
    if (version != (v05 ? "0.5" : "0.4")) {
      throw Error(ErrorKind::kInvalidData, "OME-Zarr version " + version + " is not supported (expected 0.4 on Zarr v2, 0.5 on v3)", attrs_file);
    }
    // Axes: the last three must be z, y, x (spatial); leading ones (c, t) must have size 1.
    const auto& axes = detail::require(ms, "axes", attrs_file);
    std::vector<std::string> names, units;
    for (const auto& a : axes) {
      names.push_back(a.is_string() ? a.get<std::string>() : detail::require(a, "name", attrs_file).get<std::string>());
      units.push_back(a.is_object() ? a.value("unit", std::string()) : std::string());
    }
    if (names.size() < 3 || names[names.size() - 3] != "z" || names[names.size() - 2] != "y" || names.back() != "x") {
      throw Error(ErrorKind::kInvalidData, "axes must end with z, y, x, not " + axes.dump(), attrs_file);
    }
    for (std::size_t i = 0; i + 3 < names.size(); ++i) {
      if (names[i] != "c" && names[i] != "t") {
        throw Error(ErrorKind::kInvalidData, "only a leading c or t axis of size 1 is supported, not '" + names[i] + "'", attrs_file);
      }
    }
    const auto& datasets = detail::require(ms, "datasets", attrs_file);
    if (options.scale < 0 || options.scale >= static_cast<int>(datasets.size())) {
      throw Error(ErrorKind::kInvalidArgument,
                  fmt::format("scale {} does not exist (the multiscale group has levels 0..{})", options.scale,
                              static_cast<int>(datasets.size()) - 1),
                  attrs_file);
    }
    const auto& level = datasets[static_cast<std::size_t>(options.scale)];
    const std::string level_path = detail::require(level, "path", attrs_file).get<std::string>();
    auto src = std::make_unique<ZarrArraySource>((fs::path(dir) / level_path).string(), dir, level_path, SourceKind::kOmeZarr, options);
    if (src->rank() != names.size()) {
      throw Error(ErrorKind::kInvalidData, fmt::format("level '{}' has rank {} but the group names {} axes", level_path, src->rank(), names.size()),
                  attrs_file);
    }
    // Voxel size: the level's scale times the group-wide scale, if any.
    std::vector<double> scale(names.size(), 1.0);
    auto apply = [&](const nlohmann::json& transforms) {
      for (const auto& t : transforms) {
        if (t.value("type", std::string()) != "scale") continue;
        const auto& v = detail::require(t, "scale", attrs_file);
        if (v.size() != names.size()) throw Error(ErrorKind::kInvalidData, "scale has the wrong number of entries", attrs_file);
        for (std::size_t i = 0; i < names.size(); ++i) scale[i] *= v[i].get<double>();
      }
    };
    apply(detail::require(level, "coordinateTransformations", attrs_file));
    if (ms.contains("coordinateTransformations")) apply(ms["coordinateTransformations"]);
    const std::size_t n = names.size();
    std::array<double, 3> res{};
    for (std::size_t i = 0; i < 3; ++i) res[i] = scale[n - 3 + i] * detail::unit_in_nm(units[n - 3 + i], attrs_file);
    src->set_resolution(res);
    return src;
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorKind::kInvalidData, std::string("malformed OME-Zarr multiscales: ") + e.what(), attrs_file);
  }
}

}  // namespace emt::emio
