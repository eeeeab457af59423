#include <filesystem>

#include <gtest/gtest.h>

#include "emt/common/error.hpp"
#include "emt/common/sha256.hpp"
#include "emt/emio/hdf5.hpp"
#include "emt/triplets/shard.hpp"
#include "test_support.hpp"

namespace emt::triplets {

std::vector<TripletSample> samples(int n, int t) {
  std::vector<TripletSample> out;
  for (int i = 0; i < n; ++i) {
    TripletSample s;
    for (int k = 0; k < 3; ++k) {
      s.slices[k] = cv::Mat(t, t, CV_8UC1);
      cv::randu(s.slices[k], 0, 256);
    }
    s.source = i % 2 ? "B" : "A";
    s.z = 10 + i;
    s.y = 3 * i;
    s.x = 5 * i;
    s.shift = {1.f * i, -1.f, 2.f, 0.f};
    s.ncc = {0.5f, 0.25f * i};
    s.sharpness = {1.f, 2.f, 3.f + i};
    out.push_back(s);
  }
  return out;
}

TEST(Shard, SchemaReadBackWithTheHdf5Api) {
  test::ScratchDir dir;
  ShardAttributes attr{32, "[output]\ntile_size = 32\n", "0.1.0", "triplet-build --out x", false};
  write_shard(dir / "s.h5", samples(3, 32), attr);
  auto f = h5::open_file_readonly(dir / "s.h5");
  auto guard = h5::lock();
  auto dims_of = [&](const char* name) {
    h5::Handle d(H5Dopen2(f.get(), name, H5P_DEFAULT));
    h5::Handle space(H5Dget_space(d.get()));
    std::vector<hsize_t> dims(static_cast<std::size_t>(H5Sget_simple_extent_ndims(space.get())));
    H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
    return dims;
  };
  EXPECT_EQ(dims_of("/triplets"), (std::vector<hsize_t>{3, 3, 32, 32}));
  EXPECT_EQ(dims_of("/meta/source"), (std::vector<hsize_t>{3}));
  EXPECT_EQ(dims_of("/meta/z"), (std::vector<hsize_t>{3}));
  EXPECT_EQ(dims_of("/meta/yx"), (std::vector<hsize_t>{3, 2}));
  EXPECT_EQ(dims_of("/meta/shift"), (std::vector<hsize_t>{3, 2, 2}));
  EXPECT_EQ(dims_of("/meta/ncc"), (std::vector<hsize_t>{3, 2}));
  EXPECT_EQ(dims_of("/meta/sharpness"), (std::vector<hsize_t>{3, 3}));
  {
    h5::Handle d(H5Dopen2(f.get(), "/triplets", H5P_DEFAULT));
    h5::Handle dcpl(H5Dget_create_plist(d.get()));
    hsize_t chunk[4];
    ASSERT_EQ(H5Pget_chunk(dcpl.get(), 4, chunk), 4);
    EXPECT_EQ(chunk[0], 1u);
    EXPECT_EQ(chunk[1], 3u);
    EXPECT_EQ(chunk[2], 32u);
    h5::Handle type(H5Dget_type(d.get()));
    EXPECT_TRUE(H5Tequal(type.get(), H5T_STD_U8LE) > 0);
    h5::Handle src(H5Dopen2(f.get(), "/meta/source", H5P_DEFAULT));
    h5::Handle stype(H5Dget_type(src.get()));
    EXPECT_GT(H5Tis_variable_str(stype.get()), 0);
  }
  std::string spec, version, command;
  ASSERT_TRUE(h5::read_string_attribute(f.get(), "spec", spec));
  ASSERT_TRUE(h5::read_string_attribute(f.get(), "emtriplet_version", version));
  ASSERT_TRUE(h5::read_string_attribute(f.get(), "command", command));
  EXPECT_EQ(spec, attr.spec);
  EXPECT_EQ(command, "triplet-build --out x");
  EXPECT_GT(H5Aexists(f.get(), "tile_size"), 0);
}

TEST(Shard, RoundTripThroughReader) {
  test::ScratchDir dir;
  const auto in = samples(4, 16);
  write_shard(dir / "s.h5", in, {16, "spec", "v", "cmd", true});
  const ShardReader r(dir / "s.h5");
  ASSERT_EQ(r.size(), 4);
  EXPECT_EQ(r.tile_size(), 16);
  for (int i = 0; i < 4; ++i) {
    const TripletSample s = r.read(i);
    for (int k = 0; k < 3; ++k) EXPECT_EQ(cv::norm(s.slices[k], in[i].slices[k], cv::NORM_INF), 0);
    EXPECT_EQ(s.source, in[i].source);
    EXPECT_EQ(s.z, in[i].z);
    EXPECT_EQ(s.x, in[i].x);
    EXPECT_EQ(s.shift, in[i].shift);
    EXPECT_EQ(s.ncc, in[i].ncc);
    EXPECT_EQ(s.sharpness, in[i].sharpness);
  }
  EXPECT_THROW((void)r.read(4), Error);
}

TEST(Shard, SameSamplesByteIdenticalFiles) {
  test::ScratchDir dir;
  const auto in = samples(2, 16);
  write_shard(dir / "a.h5", in, {16, "spec", "v", "cmd", false});
  write_shard(dir / "b.h5", in, {16, "spec", "v", "cmd", false});
  EXPECT_EQ(sha256_file(dir / "a.h5"), sha256_file(dir / "b.h5"));
}

TEST(Shard, CorruptOrForeignFilesAreErrors) {
  test::ScratchDir dir;
  write_shard(dir / "s.h5", samples(2, 16), {16, "spec", "v", "cmd", false});
  std::filesystem::resize_file(dir / "s.h5", 1000);
  EXPECT_THROW(ShardReader{dir / "s.h5"}, Error);
  EXPECT_THROW(ShardReader{dir / "none.h5"}, Error);
}

}  // namespace emt::triplets
