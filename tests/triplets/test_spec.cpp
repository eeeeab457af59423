#include <gtest/gtest.h>

#include "emt/common/error.hpp"
#include "emt/triplets/spec.hpp"

namespace emt::triplets {

TEST(Spec, ParsesSectionsAndSources) {
  const auto s = parse_spec(R"(
# comment
[output]
tile_size = 256
stride = 128
[filters]
min_ncc = 0.25
[source.A]
path = a.h5
dataset = volumes/raw
z = 10:50
skip = 12,20:22
step = 2
[source.B]
path = stack/
)", "test.ini");
  EXPECT_EQ(s.tile_size, 256);
  EXPECT_EQ(s.stride, 128);
  EXPECT_DOUBLE_EQ(s.filters.min_ncc, 0.25);
  ASSERT_EQ(s.sources.size(), 2u);
  EXPECT_EQ(s.sources[0].id, "A");
  EXPECT_EQ(s.sources[0].z.resolve(100), (std::pair<std::int64_t, std::int64_t>{10, 50}));
  EXPECT_EQ(s.sources[0].skip, (std::vector<std::int64_t>{12, 20, 21}));
  EXPECT_EQ(s.sources[0].step, 2);
  EXPECT_EQ(s.sources[1].id, "B");
  EXPECT_EQ(s.sources[1].path, "stack/");
}

TEST(Spec, LateralBlockIsZeroOrAtLeastTwoTiles) {
  EXPECT_EQ(parse_spec("", "x.ini").lateral_block, 8192);
  EXPECT_EQ(parse_spec("[output]\nlateral_block = 0\n", "x.ini").lateral_block, 0);
  EXPECT_EQ(parse_spec("[output]\ntile_size = 64\nlateral_block = 128\n", "x.ini").lateral_block, 128);
  for (const char* bad : {"[output]\ntile_size = 64\nlateral_block = 127\n", "[output]\nlateral_block = -1\n", "[output]\nlateral_block = 1000\n"}) {
    try {
      (void)parse_spec(bad, "x.ini");
      ADD_FAILURE() << bad;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("output.lateral_block"), std::string::npos) << e.what();
    }
  }
}

TEST(Spec, UnknownKeysAndBadValuesAreErrorsNamingTheFile) {
  EXPECT_THROW((void)parse_spec("[filters]\nmin_nc = 0.3\n", "x.ini"), Error);
  EXPECT_THROW((void)parse_spec("[output]\ntile_size = big\n", "x.ini"), Error);
  EXPECT_THROW((void)parse_spec("[output]\ntile_size = 4\n", "x.ini"), Error);
  EXPECT_THROW((void)parse_spec("[source.A]\ndataset = x\n", "x.ini"), Error);  // no path
  try {
    (void)parse_spec("[source.A]\npath = a\ncolour = red\n", "x.ini");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("x.ini"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("colour"), std::string::npos);
  }
}

TEST(Spec, ChunkedSourceKeys) {
  const auto s = parse_spec("[input]\ncache_mb = 64\n[source.A]\npath = v.ome.zarr\nscale = 2\n", "c.ini");
  EXPECT_EQ(s.cache_mb, 64);
  EXPECT_EQ(s.sources[0].scale, 2);
  EXPECT_EQ(parse_spec("", "d.ini").cache_mb, 512);  // the emio default
  for (const char* bad : {"[input]\ncache_mb = 0\n[source.A]\npath = a\n", "[source.A]\npath = a\nscale = -1\n",
                          "[source.A]\npath = a\nscale = two\n"}) {
    try {
      (void)parse_spec(bad, "c.ini");
      ADD_FAILURE() << "accepted: " << bad;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("c.ini"), std::string::npos) << e.what();
    }
  }
}

TEST(Spec, SourceFromPathTakesItsName) {
  EXPECT_EQ(source_from_path("/data/sample_A_padded.hdf").id, "sample_A_padded");
  EXPECT_EQ(source_from_path("../shared/data/isbi2012/").id, "isbi2012");
  EXPECT_EQ(source_from_path("/data/stack/*.png").id, "stack");
}

}  // namespace emt::triplets
