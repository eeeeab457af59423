#include "chunked.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include <fmt/format.h>

#include "emt/common/error.hpp"

namespace emt::emio::detail {
namespace fs = std::filesystem;

// ---- cache ----

ChunkPtr ChunkCache::get(const CacheKey& key, const std::function<ChunkPtr()>& load) {
  std::unique_lock<std::mutex> lock(mutex_);
  loaded_.wait(lock, [&] { return loading_.count(key) == 0; });
  if (auto it = entries_.find(key); it != entries_.end()) {
    ++stats_.hits;
    lru_.splice(lru_.begin(), lru_, it->second.lru);
    return it->second.chunk;
  }
  loading_[key] = 1;
  lock.unlock();
  ChunkPtr chunk;
  try {
    chunk = load();
  } catch (...) {
    lock.lock();
    loading_.erase(key);
    loaded_.notify_all();
    throw;
  }
  lock.lock();
  loading_.erase(key);
  ++stats_.loads;
  if (key[3] != kWholeChunk) ++stats_.plane_loads;
  lru_.push_front(key);
  // A missing chunk costs a map entry, not its voxels; count a token size so
  // that a volume of empty chunks still has a bounded cache.
  const std::size_t bytes = chunk ? chunk->data.size() : 64;
  entries_[key] = Entry{chunk, lru_.begin(), bytes};
  stats_.bytes_held += bytes;
  evict_locked();
  stats_.peak_bytes = std::max(stats_.peak_bytes, stats_.bytes_held);
  loaded_.notify_all();
  return chunk;
}

void ChunkCache::limit(std::size_t budget_bytes) {
  std::lock_guard<std::mutex> lock(mutex_);
  budget_ = std::min(budget_, budget_bytes);
  evict_locked();
}

void ChunkCache::evict_locked() {
  while (stats_.bytes_held > budget_ && !lru_.empty()) {
    const auto it = entries_.find(lru_.back());
    stats_.bytes_held -= it->second.bytes;
    entries_.erase(it);
    lru_.pop_back();
    ++stats_.evictions;
  }
}

ChunkCacheStats ChunkCache::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

std::vector<std::uint8_t> BufferPool::take(std::size_t n) {
  std::vector<std::uint8_t> buffer;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!free_.empty()) {
      buffer = std::move(free_.back());
      free_.pop_back();
    }
  }
  buffer.resize(n);  // no allocation (and no zeroing) when it had this size
  return buffer;
}

void BufferPool::give(std::vector<std::uint8_t>&& buffer) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (free_.size() < max_) free_.push_back(std::move(buffer));
}

// ---- slices from chunks ----

void ChunkedSource::set_grid(VolumeShape shape, Index3 chunk, int bits, ReadUnit finest, const std::string& codec) {
  if (shape.depth <= 0 || shape.height <= 0 || shape.width <= 0) {
    throw Error(ErrorKind::kInvalidData, fmt::format("empty volume ({}x{}x{})", shape.depth, shape.height, shape.width), path_);
  }
  if (shape.height > INT32_MAX || shape.width > INT32_MAX) throw Error(ErrorKind::kInvalidData, "slice too large", path_);
  for (auto c : chunk) {
    if (c <= 0) throw Error(ErrorKind::kInvalidData, "chunk size must be positive", path_);
  }
  if (chunk[0] * chunk[1] * chunk[2] > (std::int64_t{1} << 31)) {
    throw Error(ErrorKind::kInvalidData, fmt::format("chunks of {}x{}x{} voxels are too large", chunk[0], chunk[1], chunk[2]), path_);
  }
  shape_ = shape;
  chunk_ = chunk;
  bits_ = bits;
  // Sequential z reads decode each chunk once only if the chunks crossing a
  // plane (one layer of the grid) stay cached; otherwise every slice of the
  // layer decodes them all again. Decoding just the plane needed costs about
  // what decoding the layer once does, so prefer it whenever the layer does
  // not fit. Which unit is read never changes the bytes returned.
  if (layer_chunks() * chunk_bytes() <= options_.chunk_cache_bytes) return;
  if (finest == ReadUnit::kPlane) {
    read_unit_ = ReadUnit::kPlane;
    // A plane is decoded once per read of its slice; what the cache can save
    // is a second read of a slice still in flight (two threads, or the
    // neighbouring pairs of the alignment pass). Two slices of planes serve
    // that: triplet-build on a 64 x 8192 x 8192 (64, 512, 512)-chunked volume
    // decoded 32,792 planes with 64 MiB held and 32,768 with 512 MiB, in the
    // same time, at 1.0 GB and 1.5 GB peak RSS.
    cache_.limit(2 * layer_chunks() * (chunk_bytes() / static_cast<std::size_t>(chunk[0])));
    return;
  }
  warn_chunks_decoded_again(codec);
}

void ChunkedSource::warn_chunks_decoded_again(const std::string& codec) const {
  std::call_once(warned_, [&] {
    const std::size_t layer_mib = (layer_chunks() * chunk_bytes() + (1 << 20) - 1) >> 20;
    const std::string message = fmt::format(
        "{}: the {} chunks crossing one z plane decode to {} MiB, more than the {} MiB chunk cache, and {} chunks cannot be "
        "decoded a plane at a time: each slice read decodes them again (about {}x the work); a cache of {} MiB (--cache-mb) holds them",
        path_ + (dataset_.empty() ? "" : ":" + dataset_), layer_chunks(), layer_mib, options_.chunk_cache_bytes >> 20, codec,
        std::min(chunk_[0], shape_.depth), layer_mib + 64);
    if (options_.warn) {
      options_.warn(message);
    } else {
      std::fprintf(stderr, "warning: %s\n", message.c_str());
    }
  });
}

std::size_t ChunkedSource::layer_chunks() const {
  return static_cast<std::size_t>(((shape_.height + chunk_[1] - 1) / chunk_[1]) * ((shape_.width + chunk_[2] - 1) / chunk_[2]));
}

std::size_t ChunkedSource::chunk_bytes() const {
  return static_cast<std::size_t>(chunk_[0] * chunk_[1] * chunk_[2]) * static_cast<std::size_t>(bits_ / 8);
}

Index3 ChunkedSource::clipped_extent(const Index3& c) const {
  const Index3 full{shape_.depth, shape_.height, shape_.width};
  Index3 e{};
  for (int d = 0; d < 3; ++d) e[d] = std::min(chunk_[d], full[d] - c[d] * chunk_[d]);
  return e;
}

cv::Mat ChunkedSource::read_raw(std::int64_t z) const {
  check_index(z);
  return assemble(z, cv::Rect(0, 0, static_cast<int>(shape_.width), static_cast<int>(shape_.height)));
}

cv::Mat ChunkedSource::read_raw_region(std::int64_t z, const cv::Rect& region) const {
  check_region(z, region);
  return assemble(z, region);
}

namespace {
void check_decoded_size(const Chunk& chunk, std::size_t item, const Index3& c, const std::string& where) {
  if (chunk.data.size() != static_cast<std::size_t>(chunk.dims[0] * chunk.dims[1] * chunk.dims[2]) * item) {
    throw Error(ErrorKind::kDataLoss, fmt::format("chunk {},{},{} (z,y,x) decoded to {} bytes, not {}x{}x{} voxels", c[0], c[1], c[2],
                                                  chunk.data.size(), chunk.dims[0], chunk.dims[1], chunk.dims[2]),
                where);
  }
}
}  // namespace

void ChunkedSource::check_covers(const Index3& c, const Index3& dims, const std::string& where) const {
  const Index3 need = clipped_extent(c);
  if (dims[0] < need[0] || dims[1] < need[1] || dims[2] < need[2]) {
    throw Error(ErrorKind::kDataLoss,
                fmt::format("chunk {},{},{} (z,y,x) holds {}x{}x{} voxels, the volume needs {}x{}x{}", c[0], c[1], c[2], dims[0],
                            dims[1], dims[2], need[0], need[1], need[2]),
                where);
  }
}

std::shared_ptr<Chunk> ChunkedSource::new_plane(std::int64_t height, std::int64_t width) const {
  std::shared_ptr<BufferPool> pool = plane_buffers_;
  auto* plane = new Chunk;
  plane->dims = {1, height, width};
  plane->data = pool->take(static_cast<std::size_t>(height * width) * static_cast<std::size_t>(bits_ / 8));
  return std::shared_ptr<Chunk>(plane, [pool](Chunk* p) {
    pool->give(std::move(p->data));
    delete p;
  });
}

ChunkPtr ChunkedSource::load_plane(const Index3& c, std::int64_t dz) const {
  const ChunkPtr whole = load_chunk(c);
  if (!whole) return nullptr;
  const std::size_t item = bits_ / 8;
  const std::string where = location(c[0] * chunk_[0] + dz);
  check_covers(c, whole->dims, where);
  check_decoded_size(*whole, item, c, where);
  const std::size_t plane = static_cast<std::size_t>(whole->dims[1] * whole->dims[2]) * item;
  auto out = new_plane(whole->dims[1], whole->dims[2]);
  const auto* p = whole->data.data() + static_cast<std::size_t>(dz) * plane;
  std::copy(p, p + plane, out->data.begin());
  return out;
}

cv::Mat ChunkedSource::assemble(std::int64_t z, const cv::Rect& region) const {
  const int type = bits_ == 8 ? CV_8UC1 : CV_16UC1;
  const std::size_t item = bits_ / 8;
  cv::Mat out(region.height, region.width, type);
  const std::int64_t cz = z / chunk_[0], dz = z % chunk_[0];
  const bool planes = read_unit_ == ReadUnit::kPlane;
  const std::int64_t y0 = region.y, y1 = y0 + region.height, x0 = region.x, x1 = x0 + region.width;
  for (std::int64_t cy = y0 / chunk_[1]; cy * chunk_[1] < y1; ++cy) {
    for (std::int64_t cx = x0 / chunk_[2]; cx * chunk_[2] < x1; ++cx) {
      const Index3 c{cz, cy, cx};
      const ChunkPtr chunk = planes ? cache_.get({cz, cy, cx, dz}, [&] { return load_plane(c, dz); })
                                    : cache_.get({cz, cy, cx, kWholeChunk}, [&] { return load_chunk(c); });
      const Index3 need = clipped_extent(c);
      // The overlap of this chunk and the region, in slice coordinates.
      const std::int64_t oy0 = std::max(y0, cy * chunk_[1]), oy1 = std::min(y1, cy * chunk_[1] + need[1]);
      const std::int64_t ox0 = std::max(x0, cx * chunk_[2]), ox1 = std::min(x1, cx * chunk_[2] + need[2]);
      const cv::Rect roi(static_cast<int>(ox0 - x0), static_cast<int>(oy0 - y0), static_cast<int>(ox1 - ox0),
                         static_cast<int>(oy1 - oy0));
      if (!chunk) {
        out(roi).setTo(cv::Scalar(fill_value()));
        continue;
      }
      // A plane stands for its chunk's z extent, which its loader checked.
      check_covers(c, {planes ? need[0] : chunk->dims[0], chunk->dims[1], chunk->dims[2]}, location(z));
      check_decoded_size(*chunk, item, c, location(z));
      const std::uint8_t* plane = chunk->data.data() + static_cast<std::size_t>((planes ? 0 : dz) * chunk->dims[1] * chunk->dims[2]) * item;
      const std::int64_t first_row = oy0 - cy * chunk_[1], first_col = ox0 - cx * chunk_[2];
      for (int r = 0; r < roi.height; ++r) {
        std::memcpy(out.ptr(roi.y + r) + roi.x * item,
                    plane + static_cast<std::size_t>((first_row + r) * chunk->dims[2] + first_col) * item,
                    static_cast<std::size_t>(roi.width) * item);
      }
    }
  }
  return out;
}

// ---- helpers ----

std::optional<MappedFile> MappedFile::open_if_exists(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return std::nullopt;
    throw Error(ErrorKind::kIo, std::string("cannot open file: ") + std::strerror(errno), path);
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    throw Error(ErrorKind::kIo, std::string("cannot stat file: ") + std::strerror(err), path);
  }
  const auto size = static_cast<std::size_t>(st.st_size);
  if (size == 0) {  // mmap refuses empty files; an empty chunk is the decoder's to reject
    ::close(fd);
    return MappedFile(nullptr, 0);
  }
  void* p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  const int err = errno;
  ::close(fd);  // the mapping keeps the file
  if (p == MAP_FAILED) throw Error(ErrorKind::kIo, std::string("cannot map file: ") + std::strerror(err), path);
  return MappedFile(static_cast<const std::uint8_t*>(p), size);
}

MappedFile::~MappedFile() {
  if (data_ != nullptr) ::munmap(const_cast<std::uint8_t*>(data_), size_);
}

std::optional<std::vector<std::uint8_t>> read_file_if_exists(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::error_code ec;
    if (!fs::exists(path, ec)) return std::nullopt;
    throw Error(ErrorKind::kIo, "cannot open file", path);
  }
  std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw Error(ErrorKind::kIo, "read failed", path);
  return bytes;
}

nlohmann::json read_json(const std::string& path) {
  auto bytes = read_file_if_exists(path);
  if (!bytes) throw Error(ErrorKind::kNotFound, "no such metadata file", path);
  try {
    return nlohmann::json::parse(bytes->begin(), bytes->end());
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorKind::kDataLoss, std::string("metadata is not valid JSON: ") + e.what(), path);
  }
}

const nlohmann::json& require(const nlohmann::json& j, const std::string& key, const std::string& file) {
  if (!j.is_object() || !j.contains(key)) throw Error(ErrorKind::kInvalidData, "missing metadata key '" + key + "'", file);
  return j.at(key);
}

std::vector<std::int64_t> int_list(const nlohmann::json& j, const std::string& what, const std::string& file) {
  std::vector<std::int64_t> out;
  if (j.is_array()) {
    for (const auto& v : j) {
      if (!v.is_number_integer() || v.get<std::int64_t>() < 0) {
        out.clear();
        break;
      }
      out.push_back(v.get<std::int64_t>());
    }
    if (out.size() == j.size()) return out;
  }
  throw Error(ErrorKind::kInvalidData, "'" + what + "' must be a list of non-negative integers, not " + j.dump(), file);
}

Index3 spatial_dims(const std::vector<std::int64_t>& dims, const std::string& what, const std::string& file) {
  if (dims.size() < 3) {
    throw Error(ErrorKind::kInvalidData, fmt::format("{} has rank {}, expected 3 (z, y, x)", what, dims.size()), file);
  }
  for (std::size_t i = 0; i + 3 < dims.size(); ++i) {
    if (dims[i] != 1) {
      throw Error(ErrorKind::kInvalidData,
                  fmt::format("{} has rank {} with a leading axis of size {}; only leading axes of size 1 are supported",
                              what, dims.size(), dims[i]),
                  file);
    }
  }
  const std::size_t n = dims.size();
  return {dims[n - 3], dims[n - 2], dims[n - 1]};
}

void byteswap16(std::vector<std::uint8_t>& data) {
  for (std::size_t i = 0; i + 1 < data.size(); i += 2) std::swap(data[i], data[i + 1]);
}

double unit_in_nm(const std::string& unit, const std::string& file) {
  if (unit.empty() || unit == "nanometer" || unit == "nm") return 1.0;
  if (unit == "micrometer" || unit == "um" || unit == "\u00b5m") return 1e3;
  if (unit == "angstrom") return 0.1;
  if (unit == "picometer") return 1e-3;
  if (unit == "millimeter" || unit == "mm") return 1e6;
  throw Error(ErrorKind::kInvalidData, "unsupported length unit '" + unit + "'", file);
}

}  // namespace emt::emio::detail
