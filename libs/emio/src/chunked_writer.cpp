// Zarr v2 / OME-Zarr 0.4 and N5 writers (em-phantom --format zarr|n5, tests,
// benchmarks). Staged in DIR.tmp/ and moved into place at commit, like the
// image stack writer (emt::StagedDirectory).
#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "codecs.hpp"
#include "emt/common/error.hpp"
#include "emt/common/output_guard.hpp"
#include "emt/emio/volume_writer.hpp"

namespace emt::emio {
namespace fs = std::filesystem;
namespace {

bool digits_and(const std::string& name, const std::string& allowed) {
  return !name.empty() && std::all_of(name.begin(), name.end(), [&](char c) { return (c >= '0' && c <= '9') || allowed.find(c) != std::string::npos; });
}
/// What a Zarr writer puts at the top of its directory (replaced with --force).
bool is_zarr_name(const std::string& name) { return name == ".zarray" || name == ".zattrs" || name == ".zgroup" || digits_and(name, "."); }
bool is_n5_name(const std::string& name) { return name == "attributes.json" || digits_and(name, ""); }

codec::EncodeOptions encode_options(const ChunkedWriteOptions& o) {
  codec::EncodeOptions e;
  switch (o.compression) {
    case Compression::kNone: e.codec = codec::Codec::kRaw; break;
    case Compression::kZlib: e.codec = codec::Codec::kZlib; break;
    case Compression::kGzip: e.codec = codec::Codec::kGzip; break;
    case Compression::kZstd: e.codec = codec::Codec::kZstd; break;
    case Compression::kBlosc: e.codec = codec::Codec::kBlosc; break;
    case Compression::kXz: e.codec = codec::Codec::kXz; break;
  }
  e.level = o.level;
  e.blosc_cname = o.blosc_cname;
  e.blosc_shuffle = o.blosc_shuffle;
  return e;
}

void write_json(const fs::path& path, const nlohmann::json& j) {
  std::ofstream out(path);
  out << j.dump(2) << "\n";
  if (!out) throw Error(ErrorKind::kIo, "cannot write metadata", path.string());
}

/// Zarr and N5 share everything but the chunk file name and bytes: slices are
/// gathered into a layer of chunks[0] slices, written out once complete.
class ChunkedWriter : public VolumeWriter {
 public:
  void write_slice(std::int64_t z, const cv::Mat& slice) override {
    if (z < 0 || z >= shape_.depth || slice.rows != shape_.height || slice.cols != shape_.width || slice.channels() != 1 ||
        slice.depth() != (bits_ == 8 ? CV_8U : CV_16U)) {
      throw Error(ErrorKind::kInvalidArgument, fmt::format("slice {} does not match the volume's shape or {}-bit type", z, bits_), dir_);
    }
    if (written_[static_cast<std::size_t>(z)]) throw Error(ErrorKind::kInvalidArgument, fmt::format("slice {} written twice", z), dir_);
    const std::int64_t layer = z / o_.chunks[0];
    Layer& l = layers_[layer];
    const std::size_t item = static_cast<std::size_t>(bits_ / 8);
    const std::size_t plane = static_cast<std::size_t>(shape_.height * shape_.width) * item;
    if (l.data.empty()) l.data.assign(plane * static_cast<std::size_t>(o_.chunks[0]), 0);
    const cv::Mat c = slice.isContinuous() ? slice : slice.clone();
    std::memcpy(l.data.data() + static_cast<std::size_t>(z % o_.chunks[0]) * plane, c.data, plane);
    written_[static_cast<std::size_t>(z)] = true;
    ++l.slices;
    if (l.slices == std::min(o_.chunks[0], shape_.depth - layer * o_.chunks[0])) {
      write_layer(layer, l);
      layers_.erase(layer);
    }
  }
  void commit() override {
    for (std::size_t z = 0; z < written_.size(); ++z) {
      if (!written_[z]) throw Error(ErrorKind::kInvalidArgument, fmt::format("slice {} was never written", z), dir_);
    }
    stage_.commit();
  }

 protected:
  ChunkedWriter(std::string dir, VolumeShape shape, int bits, const ChunkedWriteOptions& o, bool force,
                StagedDirectory::OwnName own)
      : dir_(std::move(dir)), shape_(shape), bits_(bits), o_(o), enc_(encode_options(o)),
        written_(static_cast<std::size_t>(shape.depth), false), stage_(dir_, force, std::move(own)), temp_(stage_.path()) {
    if (bits != 8 && bits != 16) throw Error(ErrorKind::kInvalidArgument, "bits must be 8 or 16", dir_);
    for (auto c : o.chunks) {
      if (c <= 0) throw Error(ErrorKind::kInvalidArgument, "chunk sizes must be positive", dir_);
    }
  }
  /// Encoded bytes of the chunk at grid (cz, cy, cx) whose voxels inside the
  /// volume are `e` (z, y, x), given those voxels in C order.
  virtual void write_chunk(const std::array<std::int64_t, 3>& c, const std::array<std::int64_t, 3>& e,
                           const std::vector<std::uint8_t>& voxels) = 0;
  const std::string dir_;
  const VolumeShape shape_;
  const int bits_;
  const ChunkedWriteOptions o_;
  const codec::EncodeOptions enc_;
  std::vector<bool> written_;
  StagedDirectory stage_;
  const fs::path temp_;  ///< stage_.path(): where files go until commit()

 private:
  struct Layer {
    std::vector<std::uint8_t> data;
    std::int64_t slices = 0;
  };
  void write_layer(std::int64_t cz, const Layer& l) {
    const std::size_t item = static_cast<std::size_t>(bits_ / 8);
    const std::int64_t ez = std::min(o_.chunks[0], shape_.depth - cz * o_.chunks[0]);
    for (std::int64_t cy = 0; cy * o_.chunks[1] < shape_.height; ++cy) {
      for (std::int64_t cx = 0; cx * o_.chunks[2] < shape_.width; ++cx) {
        const std::int64_t ey = std::min(o_.chunks[1], shape_.height - cy * o_.chunks[1]);
        const std::int64_t ex = std::min(o_.chunks[2], shape_.width - cx * o_.chunks[2]);
        std::vector<std::uint8_t> v(static_cast<std::size_t>(ez * ey * ex) * item);
        for (std::int64_t z = 0; z < ez; ++z)
          for (std::int64_t y = 0; y < ey; ++y) {
            const std::size_t src = static_cast<std::size_t>((z * shape_.height + cy * o_.chunks[1] + y) * shape_.width + cx * o_.chunks[2]) * item;
            std::memcpy(v.data() + static_cast<std::size_t>((z * ey + y) * ex) * item, l.data.data() + src, static_cast<std::size_t>(ex) * item);
          }
        write_chunk({cz, cy, cx}, {ez, ey, ex}, v);
      }
    }
  }
  std::map<std::int64_t, Layer> layers_;
};

void write_bytes(const fs::path& path, const std::vector<std::uint8_t>& bytes) {
  fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw Error(ErrorKind::kIo, "cannot write chunk (disk full?)", path.string());
}

class ZarrWriter final : public ChunkedWriter {
 public:
  ZarrWriter(std::string dir, VolumeShape shape, int bits, const ChunkedWriteOptions& o, bool ome, bool force)
      : ChunkedWriter(std::move(dir), shape, bits, o, force, is_zarr_name), array_dir_(ome ? temp_ / "0" : temp_) {
    if (o.dimension_separator != '.' && o.dimension_separator != '/') {
      throw Error(ErrorKind::kInvalidArgument, "dimension separator must be '.' or '/'", dir_);
    }
    fs::create_directories(array_dir_);
    nlohmann::json compressor;
    switch (o.compression) {
      case Compression::kNone: break;
      case Compression::kZlib: compressor = {{"id", "zlib"}, {"level", o.level}}; break;
      case Compression::kGzip: compressor = {{"id", "gzip"}, {"level", o.level}}; break;
      case Compression::kZstd: compressor = {{"id", "zstd"}, {"level", o.level}}; break;
      case Compression::kBlosc:
        compressor = {{"id", "blosc"}, {"cname", o.blosc_cname}, {"clevel", o.level}, {"shuffle", o.blosc_shuffle}, {"blocksize", 0}};
        break;
      case Compression::kXz: compressor = {{"id", "lzma"}, {"format", 1}, {"check", -1}, {"preset", o.level}, {"filters", nullptr}}; break;
    }
    const std::string dtype = bits == 8 ? "|u1" : (o.big_endian ? ">u2" : "<u2");
    write_json(array_dir_ / ".zarray", {{"zarr_format", 2}, {"shape", {shape.depth, shape.height, shape.width}},
                                        {"chunks", o.chunks}, {"dtype", dtype}, {"compressor", compressor},
                                        {"fill_value", 0}, {"order", o.fortran_order ? "F" : "C"}, {"filters", nullptr},
                                        {"dimension_separator", std::string(1, o.dimension_separator)}});
    if (ome) {
      write_json(temp_ / ".zgroup", {{"zarr_format", 2}});
      const auto r = o.resolution_nm.value_or(std::array<double, 3>{1, 1, 1});
      nlohmann::json axes = nlohmann::json::array();
      for (const char* a : {"z", "y", "x"}) axes.push_back({{"name", a}, {"type", "space"}, {"unit", "nanometer"}});
      write_json(temp_ / ".zattrs",
                 {{"multiscales",
                   {{{"version", "0.4"}, {"name", fs::path(dir_).filename().string()}, {"axes", axes},
                     {"datasets", {{{"path", "0"}, {"coordinateTransformations", {{{"type", "scale"}, {"scale", r}}}}}}}}}}});
    } else if (o.resolution_nm) {
      write_json(array_dir_ / ".zattrs", {{"resolution", *o.resolution_nm}});
    }
  }

 protected:
  void write_chunk(const std::array<std::int64_t, 3>& c, const std::array<std::int64_t, 3>& e,
                   const std::vector<std::uint8_t>& voxels) override {
    // Zarr stores every chunk at full size: pad edge chunks with the fill value 0.
    const auto& n = o_.chunks;
    const std::size_t item = static_cast<std::size_t>(bits_ / 8);
    std::vector<std::uint8_t> full(static_cast<std::size_t>(n[0] * n[1] * n[2]) * item, 0);
    for (std::int64_t z = 0; z < e[0]; ++z)
      for (std::int64_t y = 0; y < e[1]; ++y)
        for (std::int64_t x = 0; x < e[2]; ++x) {
          const std::int64_t dst = o_.fortran_order ? z + n[0] * (y + n[1] * x) : (z * n[1] + y) * n[2] + x;
          const std::size_t s = static_cast<std::size_t>((z * e[1] + y) * e[2] + x) * item;
          const std::size_t d = static_cast<std::size_t>(dst) * item;
          if (item == 1) {
            full[d] = voxels[s];
          } else {
            // Native (little-endian) samples, swapped for >u2.
            full[d] = voxels[s + (o_.big_endian ? 1 : 0)];
            full[d + 1] = voxels[s + (o_.big_endian ? 0 : 1)];
          }
        }
    const char sep = o_.dimension_separator;
    write_bytes(array_dir_ / fmt::format("{}{}{}{}{}", c[0], sep, c[1], sep, c[2]),
                codec::encode(enc_, full.data(), full.size(), static_cast<int>(item)));
  }

 private:
  fs::path array_dir_;
};

class N5Writer final : public ChunkedWriter {
 public:
  N5Writer(std::string dir, VolumeShape shape, int bits, const ChunkedWriteOptions& o, bool force)
      : ChunkedWriter(std::move(dir), shape, bits, o, force, is_n5_name) {
    nlohmann::json compression;
    switch (o.compression) {
      case Compression::kNone: compression = {{"type", "raw"}}; break;
      case Compression::kZlib: compression = {{"type", "gzip"}, {"level", o.level}, {"useZlib", true}}; break;
      case Compression::kGzip: compression = {{"type", "gzip"}, {"level", o.level}, {"useZlib", false}}; break;
      case Compression::kZstd: compression = {{"type", "zstd"}, {"level", o.level}}; break;
      case Compression::kBlosc:
        compression = {{"type", "blosc"}, {"cname", o.blosc_cname}, {"clevel", o.level}, {"shuffle", o.blosc_shuffle}, {"blocksize", 0}};
        break;
      case Compression::kXz: compression = {{"type", "xz"}, {"preset", o.level}}; break;
    }
    nlohmann::json attrs = {{"n5", "2.0.0"},
                            {"dimensions", {shape.width, shape.height, shape.depth}},
                            {"blockSize", {o.chunks[2], o.chunks[1], o.chunks[0]}},
                            {"dataType", bits == 8 ? "uint8" : "uint16"},
                            {"compression", compression}};
    if (o.resolution_nm) {
      const auto& r = *o.resolution_nm;
      attrs["pixelResolution"] = {{"dimensions", {r[2], r[1], r[0]}}, {"unit", "nm"}};
    }
    write_json(temp_ / "attributes.json", attrs);
  }

 protected:
  void write_chunk(const std::array<std::int64_t, 3>& c, const std::array<std::int64_t, 3>& e,
                   std::vector<std::uint8_t> const& voxels) override {
    const std::size_t item = static_cast<std::size_t>(bits_ / 8);
    std::vector<std::uint8_t> be = voxels;
    if (item == 2) {
      for (std::size_t i = 0; i + 1 < be.size(); i += 2) std::swap(be[i], be[i + 1]);
    }
    std::vector<std::uint8_t> block;
    auto put16 = [&](std::uint32_t v) { block.push_back(static_cast<std::uint8_t>(v >> 8)); block.push_back(static_cast<std::uint8_t>(v)); };
    auto put32 = [&](std::uint32_t v) { put16(v >> 16); put16(v & 0xFFFF); };
    put16(0);  // mode: default
    put16(3);
    for (int d = 2; d >= 0; --d) put32(static_cast<std::uint32_t>(e[static_cast<std::size_t>(d)]));
    const auto payload = codec::encode(enc_, be.data(), be.size(), static_cast<int>(item));
    block.insert(block.end(), payload.begin(), payload.end());
    write_bytes(temp_ / std::to_string(c[2]) / std::to_string(c[1]) / std::to_string(c[0]), block);
  }
};

}  // namespace

Compression parse_compression(const std::string& name) {
  if (name == "none" || name == "raw") return Compression::kNone;
  if (name == "zlib") return Compression::kZlib;
  if (name == "gzip") return Compression::kGzip;
  if (name == "zstd") return Compression::kZstd;
  if (name == "blosc") return Compression::kBlosc;
  if (name == "xz") return Compression::kXz;
  throw Error(ErrorKind::kInvalidArgument, "compression must be none, zlib, gzip, zstd, blosc or xz, not '" + name + "'");
}

std::unique_ptr<VolumeWriter> create_zarr_volume(const std::string& dir, VolumeShape shape, int bits,
                                                 const ChunkedWriteOptions& options, bool ome, bool force) {
  return std::make_unique<ZarrWriter>(dir, shape, bits, options, ome, force);
}

std::unique_ptr<VolumeWriter> create_n5_volume(const std::string& dir, VolumeShape shape, int bits,
                                               const ChunkedWriteOptions& options, bool force) {
  return std::make_unique<N5Writer>(dir, shape, bits, options, force);
}

}  // namespace emt::emio
