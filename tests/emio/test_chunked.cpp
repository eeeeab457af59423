// Chunked sources beyond the shared backend suite (test_sources.cpp):
// interop with files written by the reference implementations
// (tests/data/chunked, made by tests/data/make_zarr_fixtures.py), the chunk
// cache's decode counts and byte budget, and each bad input's error.
#include <filesystem>
#include <fstream>
#include <cstring>
#include <iterator>
#include <set>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "emt/common/error.hpp"
#include "emt/common/sha256.hpp"
#include "emt/emio/slice_source.hpp"
#include "emt/emio/volume_writer.hpp"
#include "test_support.hpp"

namespace emt::emio {
namespace fs = std::filesystem;

namespace {
const fs::path kFixtures = fs::path(EMT_SOURCE_DIR) / "tests" / "data" / "chunked";

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

nlohmann::json fixture_list() { return nlohmann::json::parse(slurp(kFixtures / "fixtures.json")); }

void expect_error(const std::function<void()>& f, ErrorKind kind, const std::vector<std::string>& must_mention) {
  try {
    f();
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    for (const auto& m : must_mention) EXPECT_NE(std::string(e.what()).find(m), std::string::npos) << e.what() << " lacks " << m;
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << "one line: " << e.what();
  }
}

/// A copy of a fixture in a scratch directory, to damage.
fs::path copy_fixture(const test::ScratchDir& dir, const std::string& name) {
  const fs::path to = dir.path() / name;
  fs::copy(kFixtures / name, to, fs::copy_options::recursive);
  return to;
}

void edit_json(const fs::path& file, const std::function<void(nlohmann::json&)>& f) {
  auto j = nlohmann::json::parse(slurp(file));
  f(j);
  std::ofstream(file) << j.dump();
}
}  // namespace

// ---- interop: every fixture, voxel by voxel ----

class Fixture : public ::testing::TestWithParam<nlohmann::json> {};

TEST_P(Fixture, ReadsExactlyWhatTheReferenceWrote) {
  const auto& f = GetParam();
  const std::string expected = slurp(kFixtures / f.at("expected").get<std::string>());
  ASSERT_EQ(sha256_hex(expected), f.at("sha256").get<std::string>()) << "expected-content file damaged";
  const auto src = open_source((kFixtures / f.at("path").get<std::string>()).string());
  EXPECT_EQ(to_string(src->kind()), f.at("kind").get<std::string>());
  const auto shape = f.at("shape").get<std::vector<std::int64_t>>();
  ASSERT_EQ(src->shape().depth, shape[0]);
  ASSERT_EQ(src->shape().height, shape[1]);
  ASSERT_EQ(src->shape().width, shape[2]);
  ASSERT_EQ(src->bits(), f.at("bits").get<int>());
  const std::size_t plane = static_cast<std::size_t>(shape[1] * shape[2]) * (src->bits() / 8);
  ASSERT_EQ(expected.size(), plane * static_cast<std::size_t>(shape[0]));
  // A cache too small for the chunks crossing a plane: blosc and raw chunks
  // are then decoded a plane at a time, the others whole; same bytes.
  SourceOptions tiny;
  tiny.chunk_cache_bytes = 1;
  tiny.warn = [](const std::string&) {};
  const auto planes = open_source((kFixtures / f.at("path").get<std::string>()).string(), tiny);
  for (std::int64_t z = 0; z < shape[0]; ++z) {
    const cv::Mat raw = src->read_raw(z), by_planes = planes->read_raw(z);
    ASSERT_TRUE(raw.isContinuous());
    // Expected files are little-endian, as is this machine (x86-64, aarch64).
    EXPECT_EQ(std::memcmp(raw.data, expected.data() + static_cast<std::size_t>(z) * plane, plane), 0) << "slice " << z;
    EXPECT_EQ(std::memcmp(by_planes.data, expected.data() + static_cast<std::size_t>(z) * plane, plane), 0) << "slice " << z << " by planes";
  }
  if (src->chunk_cache_stats()) {
    EXPECT_EQ(src->chunk_cache_stats()->plane_loads, 0u);
    const std::string path = f.at("path").get<std::string>();
    const bool blosc_c_order = path.find("blosc") != std::string::npos && path.find("_F") == std::string::npos;
    if (blosc_c_order) {
      EXPECT_EQ(planes->chunk_cache_stats()->plane_loads, planes->chunk_cache_stats()->loads) << "decoded by planes";
    }
  }
  if (f.contains("resolution")) {
    ASSERT_TRUE(src->resolution_nm().has_value());
    for (int i = 0; i < 3; ++i) EXPECT_NEAR((*src->resolution_nm())[i], f["resolution"][i].get<double>(), 1e-9);
  }
}

std::vector<nlohmann::json> fixtures() {
  const auto list = fixture_list();
  return {list.at("fixtures").begin(), list.at("fixtures").end()};
}

INSTANTIATE_TEST_SUITE_P(Reference, Fixture, ::testing::ValuesIn(fixtures()), [](const auto& info) {
  std::string name = info.param.at("path").template get<std::string>();
  for (char& c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return name;
});

TEST(Fixtures, CoverEveryCodecKindAndDtype) {
  // The list itself must not shrink unnoticed: every compressor, both byte
  // orders, both orders and separators, each format.
  std::set<std::string> paths;
  for (const auto& f : fixtures()) paths.insert(f.at("path").get<std::string>());
  for (const char* p : {"raw_u8.zarr", "zlib_u8.zarr", "gzip_u16le.zarr", "zstd_u16be_F.zarr", "none_u16le_F_slash.zarr",
                        "blosc_lz4_byteshuffle_u16le.zarr", "blosc_lz4hc_noshuffle_u8.zarr", "blosc_zstd_bitshuffle_u16be.zarr",
                        "blosc_zlib_byteshuffle_u8_slash.zarr", "fill_missing_u16le.zarr", "vol.n5:raw_u8", "vol.n5:gzip_u16",
                        "vol.n5:zstd_u16", "vol.n5:blosc_u16", "vol.n5:xz_u8", "ome.zarr", "ome.zarr:1", "pc_raw_u8:1",
                        "pc_gzip_u16", "pc_jpeg_u8", "v3_gzip_u16le.zarr", "v3_zstd_u16be_F_dotkeys.zarr",
                        "v3_blosc_bitshuffle_u8_v2keys.zarr", "v3_raw_missing_u8.zarr", "ome05.zarr", "ome05.zarr:1"}) {
    EXPECT_TRUE(paths.count(p)) << p;
  }
}

TEST(Fixtures, ScaleOptionEqualsPathSuffix) {
  SourceOptions o;
  o.scale = 1;
  const auto a = open_source((kFixtures / "ome.zarr").string(), o);
  const auto b = open_source((kFixtures / "ome.zarr:1").string());
  EXPECT_EQ(a->shape().width, b->shape().width);
  EXPECT_EQ(a->shape().width, 10);
  EXPECT_EQ(cv::norm(a->read_raw(4), b->read_raw(4), cv::NORM_INF), 0);
  EXPECT_EQ(a->dataset(), "1");
}

// ---- the chunk cache ----

namespace {
std::string write_zarr(const fs::path& dir, VolumeShape shape, std::array<std::int64_t, 3> chunks) {
  ChunkedWriteOptions o;
  o.chunks = chunks;
  o.compression = Compression::kBlosc;
  auto w = create_zarr_volume(dir.string(), shape, 8, o, false);
  for (std::int64_t z = 0; z < shape.depth; ++z) {
    cv::Mat m(static_cast<int>(shape.height), static_cast<int>(shape.width), CV_8UC1);
    cv::randu(m, 0, 255);
    w->write_slice(z, m);
  }
  w->commit();
  return dir.string();
}
}  // namespace

TEST(ChunkCache, ConsecutiveSlicesDecodeEachChunkOnce) {
  test::ScratchDir dir;
  // Chunks (64, 64, 64): each z slice crosses four chunks; 64 slices read in
  // order must decode each of them once, not 64 times.
  const auto path = write_zarr(dir / "v.zarr", {64, 128, 128}, {64, 64, 64});
  const auto src = open_source(path);
  for (std::int64_t z = 0; z < 64; ++z) (void)src->read_raw(z);
  const auto s = *src->chunk_cache_stats();
  EXPECT_EQ(s.loads, 4u);
  EXPECT_EQ(s.hits, 64u * 4u - 4u);
  EXPECT_EQ(s.evictions, 0u);
}

TEST(ChunkCache, BudgetBoundsWhatIsHeld) {
  test::ScratchDir dir;
  // 16 x 64 x 64 in chunks of 8 x 16 x 16 (2 KiB each): a layer of 16 chunks
  // is 32 KiB, the volume 64 KiB.
  const auto path = write_zarr(dir / "v.zarr", {16, 64, 64}, {8, 16, 16});
  {
    SourceOptions o;
    o.chunk_cache_bytes = 40 << 10;  // one layer fits, the volume does not
    const auto src = open_source(path, o);
    for (std::int64_t z = 0; z < 16; ++z) (void)src->read_raw(z);
    const auto s = *src->chunk_cache_stats();
    EXPECT_EQ(s.loads, 32u);  // each chunk once
    EXPECT_LE(s.peak_bytes, o.chunk_cache_bytes);
    EXPECT_LT(s.peak_bytes, std::size_t{64} << 10);  // never the whole volume
    EXPECT_GT(s.evictions, 0u);
  }
  {
    SourceOptions o;
    o.chunk_cache_bytes = 8 << 10;  // less than one layer: every slice decodes its chunks again
    const auto src = open_source(path, o);
    for (std::int64_t z = 0; z < 16; ++z) (void)src->read_raw(z);
    const auto s = *src->chunk_cache_stats();
    EXPECT_EQ(s.loads, 16u * 16u);
    EXPECT_LE(s.peak_bytes, o.chunk_cache_bytes);
  }
}

namespace {
/// Four threads each read all 16 slices of `src`, thread t starting at
/// t * offset; per thread, how many differed from `reference`'s.
std::vector<int> read_in_four_threads(const SliceSource& src, const SliceSource& reference, int offset) {
  std::vector<std::thread> threads;
  std::vector<int> mismatches(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (std::int64_t z = 0; z < 16; ++z) {
        const std::int64_t k = (z + t * offset) % 16;
        if (cv::norm(src.read_raw(k), reference.read_raw(k), cv::NORM_INF) != 0) ++mismatches[t];
      }
    });
  }
  for (auto& th : threads) th.join();
  return mismatches;
}
}  // namespace

TEST(ChunkCache, ThreadsReadingTheSameSlicesShareDecodes) {
  test::ScratchDir dir;
  const auto path = write_zarr(dir / "v.zarr", {16, 64, 64}, {8, 16, 16});
  const auto src = open_source(path);
  EXPECT_EQ(read_in_four_threads(*src, *open_source(path), 3), std::vector<int>(4, 0));
  EXPECT_EQ(src->chunk_cache_stats()->loads, 32u);  // a chunk being decoded is waited for, not decoded twice
}

TEST(ChunkCache, RegionReadsLoadOnlyTheChunksTheyCross) {
  test::ScratchDir dir;
  // 8 x 64 x 96 in chunks of 4 x 16 x 16: a layer is 4 x 6 chunks.
  const auto path = write_zarr(dir / "v.zarr", {8, 64, 96}, {4, 16, 16});
  const auto src = open_source(path), whole = open_source(path);
  // x 20..49 crosses chunk columns 1..3, y 10..29 chunk rows 0..1: 6 chunks.
  const cv::Rect r(20, 10, 30, 20);
  EXPECT_EQ(cv::norm(src->read_raw_region(5, r), whole->read_raw(5)(r), cv::NORM_INF), 0);
  EXPECT_EQ(src->chunk_cache_stats()->loads, 6u);
  // Inside one of those chunks (row 1, column 2), another slice of the layer: no new decode.
  const cv::Rect inside(33, 17, 10, 10);
  EXPECT_EQ(cv::norm(src->read_raw_region(6, inside), whole->read_raw(6)(inside), cv::NORM_INF), 0);
  EXPECT_EQ(src->chunk_cache_stats()->loads, 6u);
  EXPECT_EQ(src->chunk_cache_stats()->hits, 1u);
  // The same place in the other layer: one chunk.
  EXPECT_EQ(cv::norm(src->read_raw_region(1, inside), whole->read_raw(1)(inside), cv::NORM_INF), 0);
  EXPECT_EQ(src->chunk_cache_stats()->loads, 7u);
  // The last chunk, clipped by nothing (96 = 6 x 16), its last voxel alone.
  const cv::Rect corner(95, 63, 1, 1);
  EXPECT_EQ(src->read_raw_region(7, corner).at<std::uint8_t>(0, 0), whole->read_raw(7).at<std::uint8_t>(63, 95));
  EXPECT_EQ(src->chunk_cache_stats()->loads, 8u);
}

// ---- planes of chunks: the same bytes as whole chunks ----

namespace {
struct Variant {
  std::string name;
  int bits;
  ChunkedWriteOptions options;
  bool n5 = false;
};
void PrintTo(const Variant& v, std::ostream* os) { *os << v.name; }

ChunkedWriteOptions blosc(const std::string& cname, int shuffle, bool big_endian = false) {
  ChunkedWriteOptions o;
  // 4 x 100 x 700 samples: a few blosc blocks per chunk (128 KiB for lz4
  // level 5 and uint8) with a partial last one, planes that straddle blocks,
  // and partial edge chunks for the 7 x 150 x 1000 volume.
  o.chunks = {4, 100, 700};
  o.compression = Compression::kBlosc;
  o.blosc_cname = cname;
  o.blosc_shuffle = shuffle;
  o.big_endian = big_endian;
  return o;
}

std::vector<Variant> plane_variants() {
  ChunkedWriteOptions raw = blosc("lz4", 1);
  raw.compression = Compression::kNone;
  return {{"zarr_lz4_byteshuffle_u8", 8, blosc("lz4", 1)},
          {"zarr_lz4_bitshuffle_u16le", 16, blosc("lz4", 2)},
          {"zarr_lz4_byteshuffle_u16be", 16, blosc("lz4", 1, true)},
          {"zarr_zstd_bitshuffle_u8", 8, blosc("zstd", 2)},
          {"zarr_zstd_byteshuffle_u16be", 16, blosc("zstd", 1, true)},
          {"zarr_blosclz_noshuffle_u16le", 16, blosc("blosclz", 0)},
          {"zarr_raw_u16le", 16, raw},
          {"n5_lz4_byteshuffle_u8", 8, blosc("lz4", 1), true},
          {"n5_zstd_bitshuffle_u16", 16, blosc("zstd", 2), true}};
}

/// Little-endian uint32 at `p` (blosc header fields).
std::uint32_t le32(const std::string& s, std::size_t at) {
  std::uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(s[at + static_cast<std::size_t>(i)]);
  return v;
}
}  // namespace

class PlaneDecode : public ::testing::TestWithParam<Variant> {};

TEST_P(PlaneDecode, EqualsWholeChunkDecode) {
  const Variant& v = GetParam();
  test::ScratchDir dir;
  constexpr VolumeShape shape{7, 150, 1000};
  const std::string path = dir / (v.n5 ? "v.n5" : "v.zarr");
  cv::RNG rng(7);
  std::vector<cv::Mat> slices;
  {
    auto w = v.n5 ? create_n5_volume(path, shape, v.bits, v.options) : create_zarr_volume(path, shape, v.bits, v.options, false);
    for (std::int64_t z = 0; z < shape.depth; ++z) {
      // Smooth ramps plus noise: compressible enough that blocks differ in size.
      cv::Mat m(150, 1000, v.bits == 8 ? CV_8UC1 : CV_16UC1);
      rng.fill(m, cv::RNG::UNIFORM, 0, v.bits == 8 ? 16 : 4096);
      for (int y = 0; y < m.rows; ++y) m.row(y) += cv::Scalar(y + static_cast<int>(z) * 3);
      w->write_slice(z, m);
      slices.push_back(m);
    }
    w->commit();
  }
  if (v.options.compression == Compression::kBlosc && !v.n5) {
    // The case this is about: chunks of several blosc blocks.
    const std::string c0 = slurp(fs::path(path) / "0.0.0");
    EXPECT_GT(le32(c0, 4), le32(c0, 8)) << "one blosc block per chunk: planes are not decoded in part";
  }
  const auto whole = open_source(path);
  SourceOptions small;
  small.chunk_cache_bytes = 300 << 10;  // a plane of one chunk fits, a layer of chunks does not
  std::vector<std::string> warnings;
  small.warn = [&](const std::string& w) { warnings.push_back(w); };
  const auto planes = open_source(path, small);
  for (std::int64_t z = 0; z < shape.depth; ++z) {
    const cv::Mat a = whole->read_raw(z), b = planes->read_raw(z);
    EXPECT_EQ(cv::norm(a, slices[static_cast<std::size_t>(z)], cv::NORM_INF), 0) << "slice " << z;
    EXPECT_EQ(cv::norm(b, slices[static_cast<std::size_t>(z)], cv::NORM_INF), 0) << "slice " << z << " by planes";
    const cv::Rect r(650, 90, 120, 40);  // crosses chunk corners
    EXPECT_EQ(cv::norm(planes->read_raw_region(z, r), a(r), cv::NORM_INF), 0) << "slice " << z;
  }
  EXPECT_EQ(whole->chunk_cache_stats()->plane_loads, 0u);
  EXPECT_EQ(whole->chunk_cache_stats()->loads, 2u * 2u * 2u);
  const auto s = *planes->chunk_cache_stats();
  EXPECT_EQ(s.plane_loads, s.loads);
  EXPECT_GE(s.loads, 7u * 2u * 2u);
  EXPECT_LE(s.peak_bytes, small.chunk_cache_bytes + 100u * 700u * 2u);
  EXPECT_TRUE(warnings.empty()) << warnings.front();
}

INSTANTIATE_TEST_SUITE_P(Codecs, PlaneDecode, ::testing::ValuesIn(plane_variants()), [](const auto& info) { return info.param.name; });

TEST(PlaneDecode, CodecsThatCannotWarnWithTheCacheThatFits) {
  test::ScratchDir dir;
  ChunkedWriteOptions o;
  o.chunks = {8, 16, 16};  // a layer of 16 chunks: 32 KiB
  o.compression = Compression::kZstd;
  const std::string path = dir / "z.zarr";
  {
    auto w = create_zarr_volume(path, {16, 64, 64}, 8, o, false);
    for (std::int64_t z = 0; z < 16; ++z) w->write_slice(z, cv::Mat(64, 64, CV_8UC1, cv::Scalar(static_cast<int>(z))));
    w->commit();
  }
  SourceOptions small;
  small.chunk_cache_bytes = 8 << 10;
  std::vector<std::string> warnings;
  small.warn = [&](const std::string& w) { warnings.push_back(w); };
  const auto src = open_source(path, small);
  ASSERT_EQ(warnings.size(), 1u);
  for (const char* part : {"z.zarr", "16 chunks", "zstd", "--cache-mb", "cannot be decoded a plane at a time"}) {
    EXPECT_NE(warnings[0].find(part), std::string::npos) << warnings[0] << " lacks " << part;
  }
  for (std::int64_t z = 0; z < 16; ++z) EXPECT_EQ(cv::countNonZero(src->read_raw(z) != z), 0);
  EXPECT_EQ(warnings.size(), 1u);  // once, not per slice
  EXPECT_EQ(src->chunk_cache_stats()->plane_loads, 0u);
  EXPECT_EQ(src->chunk_cache_stats()->loads, 16u * 16u);  // what the warning says: each slice decodes its chunks again
  SourceOptions fits = small;
  fits.chunk_cache_bytes = 1 << 20;
  (void)open_source(path, fits);
  EXPECT_EQ(warnings.size(), 1u);
}

TEST(PlaneDecode, ThreadsReadingPlanesGetTheSameBytes) {
  test::ScratchDir dir;
  const auto path = write_zarr(dir / "v.zarr", {16, 64, 64}, {8, 16, 16});
  SourceOptions small;
  small.chunk_cache_bytes = 20 << 10;  // under the 32 KiB layer: planes
  const auto src = open_source(path, small);
  EXPECT_EQ(read_in_four_threads(*src, *open_source(path), 5), std::vector<int>(4, 0));
  EXPECT_GE(src->chunk_cache_stats()->plane_loads, 16u * 16u);
  EXPECT_LE(src->chunk_cache_stats()->peak_bytes, small.chunk_cache_bytes + 256u);
}

TEST(PlaneDecode, TheCacheHoldsTwoSlicesOfPlanes) {
  test::ScratchDir dir;
  // 16 x 64 x 64 in chunks of 8 x 16 x 16: a layer of 16 chunks is 32 KiB,
  // the planes of one slice 4 KiB.
  const auto path = write_zarr(dir / "v.zarr", {16, 64, 64}, {8, 16, 16});
  SourceOptions small;
  small.chunk_cache_bytes = 20 << 10;
  const auto src = open_source(path, small);
  for (std::int64_t z = 0; z < 16; ++z) (void)src->read_raw(z);
  auto s = *src->chunk_cache_stats();
  EXPECT_EQ(s.plane_loads, 16u * 16u);
  EXPECT_EQ(s.peak_bytes, 8u << 10);  // two slices of planes, not the 20 KiB budget
  (void)src->read_raw(14);            // the last two slices read are still held
  (void)src->read_raw(15);
  EXPECT_EQ(src->chunk_cache_stats()->loads, s.loads);
  (void)src->read_raw(0);
  EXPECT_EQ(src->chunk_cache_stats()->loads, s.loads + 16u);
}

TEST(PlaneDecode, GzipPrecomputedChunksDecodeWholeAndWarnOnce) {
  SourceOptions tiny;
  tiny.chunk_cache_bytes = 1;
  std::vector<std::string> warnings;
  tiny.warn = [&](const std::string& w) { warnings.push_back(w); };
  const auto src = open_source((kFixtures / "pc_gzip_u16").string(), tiny);
  EXPECT_TRUE(warnings.empty());  // raw encoding: planes, until a chunk turns out gzip-compressed
  const auto whole = open_source((kFixtures / "pc_gzip_u16").string());
  for (std::int64_t z = 0; z < whole->shape().depth; ++z) EXPECT_EQ(cv::norm(src->read_raw(z), whole->read_raw(z), cv::NORM_INF), 0);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("gzip-compressed chunks cannot be decoded a plane at a time"), std::string::npos) << warnings[0];
}

TEST(PlaneDecode, TruncatedChunkReadByPlanesIsDataLoss) {
  test::ScratchDir dir;
  const auto a = copy_fixture(dir, "blosc_lz4_byteshuffle_u16le.zarr");
  fs::resize_file(a / "1.0.1", fs::file_size(a / "1.0.1") / 2);
  SourceOptions tiny;
  tiny.chunk_cache_bytes = 1;
  const auto src = open_source(a.string(), tiny);
  EXPECT_NO_THROW((void)src->read_raw(0));
  expect_error([&] { (void)src->read_raw(3); }, ErrorKind::kDataLoss, {"blosc", "1.0.1"});
  fs::resize_file(a / "1.0.1", 0);
  expect_error([&] { (void)src->read_raw(4); }, ErrorKind::kDataLoss, {"blosc", "1.0.1"});
}

// ---- bad input: kind, file, what is wrong, one line ----

TEST(ChunkedErrors, UnsupportedDtypeAndCodec) {
  test::ScratchDir dir;
  const auto a = copy_fixture(dir, "raw_u8.zarr");
  edit_json(a / ".zarray", [](auto& j) { j["dtype"] = "<f4"; });
  expect_error([&] { (void)open_source(a.string()); }, ErrorKind::kInvalidData, {"<f4", ".zarray"});
  const auto b = copy_fixture(dir, "zlib_u8.zarr");
  edit_json(b / ".zarray", [](auto& j) { j["compressor"] = {{"id", "lz4"}}; });
  expect_error([&] { (void)open_source(b.string()); }, ErrorKind::kInvalidData, {"unsupported compressor 'lz4'", ".zarray"});
  const auto n5 = copy_fixture(dir, "vol.n5");
  edit_json(n5 / "gzip_u16" / "attributes.json", [](auto& j) { j["compression"] = {{"type", "bzip2"}}; });
  expect_error([&] { (void)open_source(n5.string() + ":gzip_u16"); }, ErrorKind::kInvalidData, {"bzip2", "attributes.json"});
  edit_json(n5 / "raw_u8" / "attributes.json", [](auto& j) { j["dataType"] = "float32"; });
  expect_error([&] { (void)open_source((n5 / "raw_u8").string()); }, ErrorKind::kInvalidData, {"float32", "attributes.json"});
  const auto v3 = copy_fixture(dir, "v3_gzip_u16le.zarr");
  edit_json(v3 / "zarr.json", [](auto& j) { j["codecs"] = {{{"name", "sharding_indexed"}}}; });
  expect_error([&] { (void)open_source(v3.string()); }, ErrorKind::kInvalidData, {"sharding_indexed", "zarr.json"});
  edit_json(v3 / "zarr.json", [](auto& j) { j["codecs"] = {{{"name", "bytes"}}, {{"name", "crc32c"}}}; });
  expect_error([&] { (void)open_source(v3.string()); }, ErrorKind::kInvalidData, {"crc32c", "zarr.json"});
  edit_json(v3 / "zarr.json", [](auto& j) { j["data_type"] = "int16"; });
  expect_error([&] { (void)open_source(v3.string()); }, ErrorKind::kInvalidData, {"int16", "zarr.json"});
  const auto pc = copy_fixture(dir, "pc_raw_u8");
  edit_json(pc / "info", [](auto& j) { j["scales"][0]["encoding"] = "compressed_segmentation"; });
  expect_error([&] { (void)open_source(pc.string()); }, ErrorKind::kInvalidData, {"compressed_segmentation", "info"});
}

TEST(ChunkedErrors, MissingMetadataKey) {
  test::ScratchDir dir;
  const auto a = copy_fixture(dir, "raw_u8.zarr");
  edit_json(a / ".zarray", [](auto& j) { j.erase("chunks"); });
  expect_error([&] { (void)open_source(a.string()); }, ErrorKind::kInvalidData, {"missing metadata key 'chunks'", ".zarray"});
  const auto ome = copy_fixture(dir, "ome.zarr");
  edit_json(ome / ".zattrs", [](auto& j) { j["multiscales"][0].erase("datasets"); });
  expect_error([&] { (void)open_source(ome.string()); }, ErrorKind::kInvalidData, {"'datasets'", ".zattrs"});
  const auto pc = copy_fixture(dir, "pc_gzip_u16");
  edit_json(pc / "info", [](auto& j) { j["scales"][0].erase("chunk_sizes"); });
  expect_error([&] { (void)open_source(pc.string()); }, ErrorKind::kInvalidData, {"'chunk_sizes'", "info"});
}

TEST(ChunkedErrors, ChunkOfTheWrongSizeAfterDecompression) {
  test::ScratchDir dir;
  // The metadata claims smaller chunks than the files hold.
  const auto a = copy_fixture(dir, "zstd_u16be_F.zarr");
  edit_json(a / ".zarray", [](auto& j) { j["chunks"] = {3, 8, 8}; });
  const auto src = open_source(a.string());
  expect_error([&] { (void)src->read_raw(0); }, ErrorKind::kDataLoss, {"zstd", "expected 384", "0.0.0"});
  const auto b = copy_fixture(dir, "raw_u8.zarr");
  edit_json(b / ".zarray", [](auto& j) { j["chunks"] = {3, 8, 32}; });
  expect_error([&] { (void)open_source(b.string())->read_raw(0); }, ErrorKind::kDataLoss, {"expected 768", "0.0.0"});
}

TEST(ChunkedErrors, TruncatedChunks) {
  test::ScratchDir dir;
  const auto a = copy_fixture(dir, "blosc_lz4_byteshuffle_u16le.zarr");
  fs::resize_file(a / "1.0.1", fs::file_size(a / "1.0.1") / 2);
  const auto src = open_source(a.string());
  EXPECT_NO_THROW((void)src->read_raw(0));  // chunk layer 0 is intact
  expect_error([&] { (void)src->read_raw(3); }, ErrorKind::kDataLoss, {"blosc", "1.0.1"});
  const auto g = copy_fixture(dir, "gzip_u16le.zarr");
  fs::resize_file(g / "0.1.0", fs::file_size(g / "0.1.0") - 9);
  expect_error([&] { (void)open_source(g.string())->read_raw(0); }, ErrorKind::kDataLoss, {"gzip", "0.1.0"});
  const auto n5 = copy_fixture(dir, "vol.n5");
  fs::resize_file(n5 / "xz_u8" / "0" / "0" / "0", 3);
  expect_error([&] { (void)open_source(n5.string() + ":xz_u8")->read_raw(0); }, ErrorKind::kDataLoss, {"header", "xz_u8/0/0/0"});
  const auto pc = copy_fixture(dir, "pc_raw_u8");
  const auto chunk = pc / "4_4_40" / "3-19_5-13_7-10";
  fs::resize_file(chunk, 100);
  expect_error([&] { (void)open_source(pc.string())->read_raw(0); }, ErrorKind::kDataLoss, {"truncated", "3-19_5-13_7-10"});
}

TEST(ChunkedErrors, AddressingAndUnsupportedLayouts) {
  test::ScratchDir dir;
  expect_error([] { (void)open_source("gs://bucket/volume"); }, ErrorKind::kInvalidArgument, {"network sources not supported yet", "gs://bucket/volume"});
  expect_error([] { (void)open_source("precomputed://s3://bucket/v"); }, ErrorKind::kInvalidArgument, {"network"});
  expect_error([] { (void)open_source((kFixtures / "ome.zarr:7").string()); }, ErrorKind::kInvalidArgument, {"scale 7", "levels 0..1"});
  expect_error([] { (void)open_source((kFixtures / "pc_raw_u8:2").string()); }, ErrorKind::kInvalidArgument, {"scale 2", "info"});
  expect_error([] { (void)open_source((kFixtures / "vol.n5:nothing").string()); }, ErrorKind::kNotFound, {"'nothing'", "vol.n5"});
  expect_error([] { (void)open_source((kFixtures / "vol.n5").string()); }, ErrorKind::kNotFound, {"'volumes/raw'", "GROUP:ARRAY"});
  const auto pc = copy_fixture(dir, "pc_raw_u8");
  edit_json(pc / "info", [](auto& j) { j["scales"][0]["sharding"] = {{"@type", "neuroglancer_uint64_sharded_v1"}}; });
  expect_error([&] { (void)open_source(pc.string()); }, ErrorKind::kInvalidData, {"sharded", "info"});
  const auto ome = copy_fixture(dir, "ome.zarr");
  edit_json(ome / ".zattrs", [](auto& j) { j["multiscales"][0]["axes"][0]["name"] = "q"; });
  expect_error([&] { (void)open_source(ome.string()); }, ErrorKind::kInvalidData, {"'q'", ".zattrs"});
}

TEST(ChunkedSources, MissingChunksReadAsFillValue) {
  test::ScratchDir dir;
  const auto a = copy_fixture(dir, "raw_u8.zarr");
  edit_json(a / ".zarray", [](auto& j) { j["fill_value"] = 9; });
  fs::remove(a / "0.0.0");
  const auto src = open_source(a.string());
  const cv::Mat s = src->read_raw(1);
  EXPECT_EQ(cv::countNonZero(s(cv::Rect(0, 0, 16, 8)) != 9), 0);
  EXPECT_EQ(s.at<std::uint8_t>(8, 16), open_source((kFixtures / "raw_u8.zarr").string())->read_raw(1).at<std::uint8_t>(8, 16));
}

}  // namespace emt::emio
