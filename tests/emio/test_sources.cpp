// One parameterised suite over every SliceSource backend, plus the error kinds
// and messages each bad input must produce.
#include <filesystem>
#include <fstream>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>

#include "emt/common/error.hpp"
#include "emt/emio/hdf5.hpp"
#include "emt/emio/slice_source.hpp"
#include "emt/emio/volume_writer.hpp"
#include "test_support.hpp"

namespace emt::emio {
namespace fs = std::filesystem;

namespace {
constexpr VolumeShape kShape{5, 24, 40};

cv::Mat pattern(std::int64_t z, int bits) {
  cv::Mat m(static_cast<int>(kShape.height), static_cast<int>(kShape.width), bits == 8 ? CV_8UC1 : CV_16UC1);
  for (int y = 0; y < m.rows; ++y)
    for (int x = 0; x < m.cols; ++x) {
      const int v = (x * 5 + y * 3 + static_cast<int>(z) * 17) % 256;
      if (bits == 8) {
        m.at<std::uint8_t>(y, x) = static_cast<std::uint8_t>(v);
      } else {
        m.at<std::uint16_t>(y, x) = static_cast<std::uint16_t>(1000 + v * 100);
      }
    }
  return m;
}

struct Backend {
  std::string name;
  int bits;
  std::function<std::string(const fs::path&)> make;  // writes kShape, returns the path to open
};

void PrintTo(const Backend& b, std::ostream* os) { *os << b.name; }

void write_volume(VolumeWriter& w, int bits) {
  for (std::int64_t z = 0; z < kShape.depth; ++z) w.write_slice(z, pattern(z, bits));
  w.commit();
}

enum class Layout { kZarr, kOmeZarr, kN5 };

ChunkedWriteOptions chunked(Compression c) {
  ChunkedWriteOptions o;
  o.chunks = {2, 16, 16};
  o.compression = c;
  o.resolution_nm = std::array<double, 3>{40, 4, 4};
  return o;
}

std::string write_chunked(const fs::path& dir, int bits, const ChunkedWriteOptions& o, Layout layout) {
  fs::create_directories(dir.parent_path());
  auto w = layout == Layout::kN5 ? create_n5_volume(dir.string(), kShape, bits, o)
                                 : create_zarr_volume(dir.string(), kShape, bits, o, layout == Layout::kOmeZarr);
  write_volume(*w, bits);
  return dir.string();
}

/// A Neuroglancer precomputed volume as its documentation describes it
/// (volume.md: info JSON, raw chunks named x0-x1_y0-y1_z0-z1, x fastest),
/// chunks 16 x 16 x 2 (x, y, z), voxel_offset (3, 5, 7); `gzip`: chunk files
/// stored gzip-compressed under NAME.gz, as CloudVolume does.
std::string write_precomputed(const fs::path& dir, int bits, bool gzip) {
  const std::int64_t off[3] = {3, 5, 7}, ch[3] = {16, 16, 2};  // x, y, z
  fs::create_directories(dir / "s0");
  std::ofstream(dir / "info") << fmt::format(
      R"({{"type": "image", "data_type": "{}", "num_channels": 1, "scales": [{{"key": "s0", "size": [{}, {}, {}],
          "resolution": [4, 4, 40], "voxel_offset": [{}, {}, {}], "chunk_sizes": [[{}, {}, {}]], "encoding": "raw"}}]}})",
      bits == 8 ? "uint8" : "uint16", kShape.width, kShape.height, kShape.depth, off[0], off[1], off[2], ch[0], ch[1], ch[2]);
  for (std::int64_t z0 = 0; z0 < kShape.depth; z0 += ch[2])
    for (std::int64_t y0 = 0; y0 < kShape.height; y0 += ch[1])
      for (std::int64_t x0 = 0; x0 < kShape.width; x0 += ch[0]) {
        const std::int64_t z1 = std::min(z0 + ch[2], kShape.depth), y1 = std::min(y0 + ch[1], kShape.height),
                           x1 = std::min(x0 + ch[0], kShape.width);
        std::string bytes;
        for (std::int64_t z = z0; z < z1; ++z) {
          const cv::Mat m = pattern(z, bits);
          for (std::int64_t y = y0; y < y1; ++y)
            bytes.append(reinterpret_cast<const char*>(m.ptr(static_cast<int>(y))) + x0 * m.elemSize(),
                         static_cast<std::size_t>(x1 - x0) * m.elemSize());
        }
        const std::string name = fmt::format("{}-{}_{}-{}_{}-{}", x0 + off[0], x1 + off[0], y0 + off[1], y1 + off[1], z0 + off[2], z1 + off[2]);
        if (gzip) {
          std::ofstream(dir / "s0" / (name + ".raw")) << bytes;
          const std::string cmd = "gzip -n -c " + (dir / "s0" / (name + ".raw")).string() + " > " + (dir / "s0" / (name + ".gz")).string();
          EXPECT_EQ(std::system(cmd.c_str()), 0);
          fs::remove(dir / "s0" / (name + ".raw"));
        } else {
          std::ofstream(dir / "s0" / name, std::ios::binary) << bytes;
        }
      }
  return dir.string();
}

std::vector<Backend> backends() {
  return {
      {"hdf5_u8", 8, [](const fs::path& d) { auto w = create_hdf5_volume((d / "v.h5").string(), "volumes/raw", kShape, 8, std::array<double, 3>{40, 4, 4}); write_volume(*w, 8); return (d / "v.h5").string(); }},
      {"hdf5_u16_dataset", 16, [](const fs::path& d) { auto w = create_hdf5_volume((d / "v.h5").string(), "other/data", kShape, 16, std::nullopt); write_volume(*w, 16); return (d / "v.h5").string() + ":other/data"; }},
      {"png_dir", 8, [](const fs::path& d) { auto w = create_image_stack((d / "s").string(), ImageFormat::kPng, kShape, 8); write_volume(*w, 8); return (d / "s").string(); }},
      {"png16_glob", 16, [](const fs::path& d) { auto w = create_image_stack((d / "s").string(), ImageFormat::kPng, kShape, 16); write_volume(*w, 16); return (d / "s" / "*.png").string(); }},
      {"tiff_dir", 8, [](const fs::path& d) { auto w = create_image_stack((d / "t").string(), ImageFormat::kTiff, kShape, 8); write_volume(*w, 8); return (d / "t").string(); }},
      {"multipage_tiff", 8, [](const fs::path& d) {
         std::vector<cv::Mat> pages;
         for (std::int64_t z = 0; z < kShape.depth; ++z) pages.push_back(pattern(z, 8));
         const auto p = (d / "m.tif").string();
         cv::imwritemulti(p, pages);
         return p; }},
      // Chunked volumes: chunks that do not divide the shape, so edge chunks are partial.
      {"zarr_blosc_u8", 8, [](const fs::path& d) { return write_chunked(d / "v.zarr", 8, chunked(Compression::kBlosc), Layout::kZarr); }},
      {"zarr_zstd_u16_F_bigendian_slash", 16, [](const fs::path& d) {
         auto o = chunked(Compression::kZstd);
         o.fortran_order = o.big_endian = true;
         o.dimension_separator = '/';
         return write_chunked(d / "v.zarr", 16, o, Layout::kZarr); }},
      {"zarr_group_colon_dataset", 8, [](const fs::path& d) {
         write_chunked(d / "c.zarr" / "volumes" / "raw", 8, chunked(Compression::kGzip), Layout::kZarr);
         std::ofstream(d / "c.zarr" / ".zgroup") << R"({"zarr_format": 2})";
         return (d / "c.zarr").string() + ":volumes/raw"; }},
      {"omezarr_zlib_u16", 16, [](const fs::path& d) { return write_chunked(d / "v.ome.zarr", 16, chunked(Compression::kZlib), Layout::kOmeZarr); }},
      {"n5_gzip_u8_dataset_dir", 8, [](const fs::path& d) {
         write_chunked(d / "c.n5" / "raw", 8, chunked(Compression::kGzip), Layout::kN5);
         return (d / "c.n5" / "raw").string(); }},
      {"n5_xz_u16", 16, [](const fs::path& d) { return write_chunked(d / "v.n5", 16, chunked(Compression::kXz), Layout::kN5); }},
      {"precomputed_raw_u8", 8, [](const fs::path& d) { return write_precomputed(d / "pc", 8, false); }},
      {"precomputed_gzip_u16_file_url", 16, [](const fs::path& d) { return "file://" + write_precomputed(d / "pc", 16, true); }},
  };
}
}  // namespace

class SourceBackend : public ::testing::TestWithParam<Backend> {};

TEST_P(SourceBackend, ReadsEverySliceExactly) {
  test::ScratchDir dir;
  const Backend& b = GetParam();
  const auto src = open_source(b.make(dir.path()));
  EXPECT_EQ(src->shape().depth, kShape.depth);
  EXPECT_EQ(src->shape().height, kShape.height);
  EXPECT_EQ(src->shape().width, kShape.width);
  EXPECT_EQ(src->bits(), b.bits);
  for (std::int64_t z = 0; z < kShape.depth; ++z) {
    const cv::Mat raw = src->read_raw(z);
    EXPECT_EQ(cv::norm(raw, pattern(z, b.bits), cv::NORM_INF), 0) << "slice " << z;
    const cv::Mat s8 = src->read_slice(z);
    ASSERT_EQ(s8.type(), CV_8UC1);
    if (b.bits == 8) {
      EXPECT_EQ(cv::norm(s8, raw, cv::NORM_INF), 0);
    }
  }
  EXPECT_THROW((void)src->read_slice(kShape.depth), Error);
}

// Regions of every backend equal the same crop of the whole slice, raw and
// 8-bit, including regions that start or end inside a chunk and the whole slice.
TEST_P(SourceBackend, ReadsRegionsAsCropsOfTheSlice) {
  test::ScratchDir dir;
  const auto src = open_source(GetParam().make(dir.path()));
  const int h = static_cast<int>(kShape.height), w = static_cast<int>(kShape.width);
  const std::vector<cv::Rect> regions = {{0, 0, w, h}, {3, 5, 7, 4}, {w - 9, h - 6, 9, 6}, {1, 0, w - 2, 1}, {0, 2, 1, h - 2}};
  for (std::int64_t z : {std::int64_t{0}, kShape.depth - 1}) {
    const cv::Mat raw = src->read_raw(z), s8 = src->read_slice(z);
    for (const cv::Rect& r : regions) {
      const cv::Mat raw_region = src->read_raw_region(z, r), region = src->read_region(z, r);
      ASSERT_EQ(raw_region.size(), r.size());
      EXPECT_EQ(cv::norm(raw_region, raw(r), cv::NORM_INF), 0) << "z " << z << " region " << r;
      ASSERT_EQ(region.type(), CV_8UC1);
      EXPECT_EQ(cv::norm(region, s8(r), cv::NORM_INF), 0) << "z " << z << " region " << r;
    }
  }
  for (const cv::Rect& bad : {cv::Rect(0, 0, 0, 1), cv::Rect(-1, 0, 2, 2), cv::Rect(w - 1, 0, 2, 1), cv::Rect(0, h, 1, 1)}) {
    EXPECT_THROW((void)src->read_region(0, bad), Error) << bad;
  }
  EXPECT_THROW((void)src->read_region(kShape.depth, cv::Rect(0, 0, 1, 1)), Error);
}

class Uint16Backend : public ::testing::TestWithParam<Backend> {};
class ChunkedBackend : public ::testing::TestWithParam<Backend> {};

TEST_P(Uint16Backend, MappingUsesVolumeWidePercentiles) {
  test::ScratchDir dir;
  const auto src = open_source(GetParam().make(dir.path()));
  // Values span 1000..26500 evenly: the 0.5/99.5 percentiles map near 0 and 255
  // and the mapping is monotone and identical for every slice.
  double lo = 255, hi = 0;
  for (std::int64_t z = 0; z < kShape.depth; ++z) {
    double mn, mx;
    cv::minMaxLoc(src->read_slice(z), &mn, &mx);
    lo = std::min(lo, mn);
    hi = std::max(hi, mx);
  }
  EXPECT_LE(lo, 2);
  EXPECT_GE(hi, 253);
  const cv::Mat r0 = src->read_raw(0), s0 = src->read_slice(0);
  EXPECT_LE(s0.at<std::uint8_t>(0, 0), s0.at<std::uint8_t>(0, 1));
  EXPECT_LT(r0.at<std::uint16_t>(0, 0), r0.at<std::uint16_t>(0, 1));
}

std::vector<Backend> sixteen_bit_backends() {
  std::vector<Backend> out;
  for (const auto& b : backends()) {
    if (b.bits == 16) out.push_back(b);
  }
  return out;
}

std::vector<Backend> chunked_backends() {
  std::vector<Backend> out;
  for (const auto& b : backends()) {
    for (const char* prefix : {"zarr", "omezarr", "n5", "precomputed"}) {
      if (b.name.rfind(prefix, 0) == 0) out.push_back(b);
    }
  }
  return out;
}

INSTANTIATE_TEST_SUITE_P(AllBackends, SourceBackend, ::testing::ValuesIn(backends()),
                         [](const auto& info) { return info.param.name; });
INSTANTIATE_TEST_SUITE_P(SixteenBit, Uint16Backend, ::testing::ValuesIn(sixteen_bit_backends()),
                         [](const auto& info) { return info.param.name; });
INSTANTIATE_TEST_SUITE_P(Chunked, ChunkedBackend, ::testing::ValuesIn(chunked_backends()),
                         [](const auto& info) { return info.param.name; });

TEST_P(ChunkedBackend, ReportsVoxelSizeAndCountsChunks) {
  test::ScratchDir dir;
  const auto src = open_source(GetParam().make(dir.path()));
  ASSERT_TRUE(src->resolution_nm().has_value()) << to_string(src->kind());
  EXPECT_EQ(*src->resolution_nm(), (std::array<double, 3>{40, 4, 4}));
  // Every slice read twice: each chunk decoded once (3 x 2 x 3 chunks of 2 x 16 x 16).
  for (int pass = 0; pass < 2; ++pass)
    for (std::int64_t z = 0; z < kShape.depth; ++z) (void)src->read_raw(z);
  const auto stats = src->chunk_cache_stats();
  ASSERT_TRUE(stats.has_value());
  EXPECT_EQ(stats->loads, 3u * 2u * 3u);
  EXPECT_EQ(stats->hits, 2u * 5u * 2u * 3u - 18u);
}

// Sections of more than sample_side^2 pixels set the 16-bit window from their
// central sample_side x sample_side region; smaller ones from whole slices.
TEST(Uint16Window, LargeSlicesAreSampledInTheirCentre) {
  test::ScratchDir dir;
  // 4 x 40 x 60: the central 20 x 20 holds 1000..1399, the rest 60000.
  const VolumeShape shape{4, 40, 60};
  const std::string path = (dir.path() / "v.h5").string();
  {
    auto w = create_hdf5_volume(path, "volumes/raw", shape, 16, std::nullopt);
    for (std::int64_t z = 0; z < shape.depth; ++z) {
      cv::Mat m(40, 60, CV_16UC1, cv::Scalar(60000));
      for (int y = 0; y < 20; ++y)
        for (int x = 0; x < 20; ++x) m.at<std::uint16_t>(10 + y, 20 + x) = static_cast<std::uint16_t>(1000 + y * 20 + x);
      w->write_slice(z, m);
    }
    w->commit();
  }
  const cv::Rect centre(20, 10, 20, 20);
  SourceOptions small;
  small.uint16.sample_side = 20;  // 2400 pixels > 20^2: the centre alone
  const cv::Mat by_centre = open_source(path, small)->read_slice(1);
  double lo = 0, hi = 0;
  cv::minMaxLoc(by_centre(centre), &lo, &hi);
  EXPECT_LE(lo, 2);  // the centre's own 0.5 / 99.5 percentiles span 0..255
  EXPECT_GE(hi, 253);
  EXPECT_EQ(by_centre.at<std::uint8_t>(0, 0), 255);  // 60000 is above that window
  // Whole slices: 75% of the samples are 60000, so the centre maps near 0.
  const cv::Mat whole = open_source(path)->read_slice(1);
  cv::minMaxLoc(whole(centre), &lo, &hi);
  EXPECT_LE(hi, 10);
  SourceOptions exact;
  exact.uint16.sample_side = 49;  // 2400 <= 49^2: whole slices, the same bytes as the default
  EXPECT_EQ(cv::norm(open_source(path, exact)->read_slice(1), whole, cv::NORM_INF), 0);
  // The same window whichever slice is read first (the first read's own slice is reused, cropped).
  const auto src = open_source(path, small);
  (void)src->read_region(3, centre);
  EXPECT_EQ(cv::norm(src->read_slice(1), by_centre, cv::NORM_INF), 0);
}

TEST(Hdf5Source, ReadsResolutionAttribute) {
  test::ScratchDir dir;
  const auto path = backends()[0].make(dir.path());
  const auto src = open_source(path);
  ASSERT_TRUE(src->resolution_nm().has_value());
  EXPECT_EQ((*src->resolution_nm())[0], 40);
  EXPECT_EQ(src->kind(), SourceKind::kHdf5);
}

// ---- bad input: error kind and a message naming the file ----

void expect_error(const std::function<void()>& f, ErrorKind kind, const std::string& must_mention) {
  try {
    f();
    FAIL() << "expected an error mentioning " << must_mention;
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    EXPECT_NE(std::string(e.what()).find(must_mention), std::string::npos) << e.what();
  }
}

TEST(SourceErrors, MissingPath) {
  expect_error([] { (void)open_source("/no/such/volume.h5"); }, ErrorKind::kNotFound, "/no/such/volume.h5");
}

TEST(SourceErrors, HdfWithoutTheDataset) {
  test::ScratchDir dir;
  const auto path = backends()[0].make(dir.path());
  expect_error([&] { (void)open_source(path + ":volumes/labels"); }, ErrorKind::kNotFound, "volumes/labels");
  expect_error([&] { (void)open_source(path, {}, "nothing/here"); }, ErrorKind::kNotFound, "v.h5");
}

void write_raw_dataset(const std::string& path, int rank, hid_t type) {
  auto f = h5::create_file(path);
  auto guard = h5::lock();
  const hsize_t dims[4] = {3, 16, 16, 2};
  h5::Handle space(H5Screate_simple(rank, dims, nullptr));
  h5::Handle lcpl = h5::link_create_plist();
  h5::Handle d(H5Dcreate2(f.get(), "volumes/raw", type, space.get(), lcpl.get(), H5P_DEFAULT, H5P_DEFAULT));
  ASSERT_TRUE(d.valid());
}

TEST(SourceErrors, WrongRank) {
  test::ScratchDir dir;
  write_raw_dataset(dir / "r2.h5", 2, H5T_STD_U8LE);
  expect_error([&] { (void)open_source(dir / "r2.h5"); }, ErrorKind::kInvalidData, "rank 2");
  write_raw_dataset(dir / "r4.h5", 4, H5T_STD_U8LE);
  expect_error([&] { (void)open_source(dir / "r4.h5"); }, ErrorKind::kInvalidData, "r4.h5");
}

TEST(SourceErrors, UnsupportedDtype) {
  test::ScratchDir dir;
  write_raw_dataset(dir / "f.h5", 3, H5T_IEEE_F32LE);
  expect_error([&] { (void)open_source(dir / "f.h5"); }, ErrorKind::kInvalidData, "float32");
  write_raw_dataset(dir / "i.h5", 3, H5T_STD_I16LE);
  expect_error([&] { (void)open_source(dir / "i.h5"); }, ErrorKind::kInvalidData, "int16");
}

TEST(SourceErrors, TruncatedHdf5) {
  test::ScratchDir dir;
  const auto path = backends()[0].make(dir.path());
  fs::resize_file(path, fs::file_size(path) / 2);
  expect_error([&] { (void)open_source(path); }, ErrorKind::kDataLoss, "v.h5");
}

TEST(SourceErrors, CorruptPngInTheMiddle) {
  test::ScratchDir dir;
  const auto path = backends()[2].make(dir.path());
  const auto bad = (fs::path(path) / "0002.png").string();
  fs::resize_file(bad, 40);
  const auto src = open_source(path);
  EXPECT_NO_THROW((void)src->read_slice(1));
  expect_error([&] { (void)src->read_slice(2); }, ErrorKind::kDataLoss, "0002.png");
}

TEST(SourceErrors, ImagesOfDifferentSizes) {
  test::ScratchDir dir;
  const auto path = backends()[2].make(dir.path());
  cv::imwrite((fs::path(path) / "0003.png").string(), cv::Mat(10, 10, CV_8UC1, cv::Scalar(3)));
  const auto src = open_source(path);
  expect_error([&] { (void)src->read_slice(3); }, ErrorKind::kInvalidData, "0003.png");
}

TEST(SourceErrors, EmptyDirectoryAndUnknownKind) {
  test::ScratchDir dir;
  fs::create_directories(dir / "empty");
  expect_error([&] { (void)open_source(dir / "empty"); }, ErrorKind::kNotFound, "empty");
  std::ofstream(dir / "notes.txt") << "hello";
  expect_error([&] { (void)open_source(dir / "notes.txt"); }, ErrorKind::kInvalidArgument, "notes.txt");
}

TEST(VolumeWriter, UncommittedWriterLeavesNoOutput) {
  test::ScratchDir dir;
  {
    auto w = create_hdf5_volume(dir / "x.h5", "volumes/raw", kShape, 8, std::nullopt);
    w->write_slice(0, pattern(0, 8));
  }
  EXPECT_FALSE(fs::exists(dir / "x.h5"));
  EXPECT_FALSE(fs::exists(dir / "x.h5.tmp"));
  {
    auto w = create_image_stack(dir / "s", ImageFormat::kPng, kShape, 8);
    w->write_slice(0, pattern(0, 8));
    EXPECT_THROW(w->commit(), Error);  // slices 1.. missing
  }
  EXPECT_FALSE(fs::exists(dir / "s"));
  EXPECT_FALSE(fs::exists(dir / "s.tmp"));
}

}  // namespace emt::emio
