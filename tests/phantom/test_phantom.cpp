#include <filesystem>
#include <fstream>
#include <set>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgproc.hpp>

#include "emt/common/atomic_file.hpp"
#include "emt/common/error.hpp"
#include "emt/common/sha256.hpp"
#include "emt/emio/hdf5.hpp"
#include "emt/emio/slice_source.hpp"
#include "emt/phantom/phantom.hpp"
#include "test_support.hpp"

namespace emt::phantom {
namespace fs = std::filesystem;

PhantomOptions small(std::uint64_t seed = 3) {
  PhantomOptions o;
  o.depth = 8;
  o.height = 256;
  o.width = 320;
  o.seed = seed;
  o.cell_size = 48;
  o.max_drift = 4;
  return o;
}

TEST(Phantom, SameSeedByteIdenticalThroughTheTool) {
  test::ScratchDir dir;
  const std::string args = " --size 4x128x160 --seed 9 --quiet --threads ";
  ASSERT_EQ(test::run_tool("em-phantom", "--out " + (dir / "a.h5") + args + "1").exit_code, 0);
  ASSERT_EQ(test::run_tool("em-phantom", "--out " + (dir / "b.h5") + args + "2").exit_code, 0);
  ASSERT_EQ(test::run_tool("em-phantom", "--out " + (dir / "c.h5") + " --size 4x128x160 --seed 10 --quiet").exit_code, 0);
  EXPECT_EQ(sha256_file(dir / "a.h5"), sha256_file(dir / "b.h5"));
  EXPECT_NE(sha256_file(dir / "a.h5"), sha256_file(dir / "c.h5"));
  EXPECT_EQ(read_file(dir / "a.truth.json"), read_file(dir / "b.truth.json"));
  ASSERT_EQ(test::run_tool("em-phantom", "--out " + (dir / "s1") + args + "1 --format png").exit_code, 0);
  ASSERT_EQ(test::run_tool("em-phantom", "--out " + (dir / "s2") + args + "2 --format png").exit_code, 0);
  for (int z = 0; z < 4; ++z) {
    const std::string name = "000" + std::to_string(z) + ".png";
    EXPECT_EQ(sha256_file(fs::path(dir / "s1") / name), sha256_file(fs::path(dir / "s2") / name));
  }
}

TEST(Phantom, CremiLayoutReadBackWithTheHdf5Api) {
  test::ScratchDir dir;
  const Phantom p(small());
  write_phantom(p, dir / "v.h5", OutputFormat::kHdf5, 8, dir / "t.json");
  auto f = h5::open_file_readonly(dir / "v.h5");
  auto guard = h5::lock();
  h5::Handle d(H5Dopen2(f.get(), "/volumes/raw", H5P_DEFAULT));
  ASSERT_TRUE(d.valid());
  h5::Handle space(H5Dget_space(d.get()));
  hsize_t dims[3];
  ASSERT_EQ(H5Sget_simple_extent_ndims(space.get()), 3);
  H5Sget_simple_extent_dims(space.get(), dims, nullptr);
  EXPECT_EQ(dims[0], 8u);
  EXPECT_EQ(dims[1], 256u);
  EXPECT_EQ(dims[2], 320u);
  h5::Handle type(H5Dget_type(d.get()));
  EXPECT_TRUE(H5Tequal(type.get(), H5T_STD_U8LE) > 0);
  std::vector<double> res;
  ASSERT_TRUE(h5::read_double_array_attribute(d.get(), "resolution", res));
  EXPECT_EQ(res, (std::vector<double>{40, 4, 4}));
  // And the volume equals the renderer's slices.
  const auto src = emio::open_source(dir / "v.h5");
  EXPECT_EQ(cv::norm(src->read_slice(5), p.render(5), cv::NORM_INF), 0);
}

TEST(Phantom, SixteenBitOutput) {
  test::ScratchDir dir;
  const Phantom p(small());
  write_phantom(p, dir / "s16", OutputFormat::kTiff, 16, "");
  const auto src = emio::open_source(dir / "s16");
  EXPECT_EQ(src->bits(), 16);
  EXPECT_EQ(src->shape().depth, 8);
}

TEST(Phantom, ZarrAndN5ThroughTheTool) {
  test::ScratchDir dir;
  const std::string args = " --size 6x100x130 --seed 4 --quiet --chunks 4x64x48";
  ASSERT_EQ(test::run_tool("em-phantom", "--out " + (dir / "v.h5") + args).exit_code, 0);
  ASSERT_EQ(test::run_tool("em-phantom", "--out " + (dir / "v.zarr") + args + " --compression blosc:zstd:bit").exit_code, 0);
  ASSERT_EQ(test::run_tool("em-phantom", "--out " + (dir / "v.n5") + args + " --compression xz --compression-level 1").exit_code, 0);
  ASSERT_EQ(test::run_tool("em-phantom", "--out " + (dir / "w") + args + " --format zarr --compression none").exit_code, 0);
  const auto h5 = emio::open_source(dir / "v.h5");
  for (const char* name : {"v.zarr", "v.n5", "w"}) {
    const auto src = emio::open_source(dir / name);
    EXPECT_EQ(emio::to_string(src->kind()), std::string(name == std::string("v.n5") ? "n5" : "ome-zarr"));
    EXPECT_EQ(*src->resolution_nm(), (std::array<double, 3>{40, 4, 4})) << name;
    for (std::int64_t z = 0; z < 6; ++z) EXPECT_EQ(cv::norm(src->read_raw(z), h5->read_raw(z), cv::NORM_INF), 0) << name << " z " << z;
  }
  EXPECT_TRUE(fs::exists(dir / "v.zarr.truth.json"));
  const auto bad = test::run_tool("em-phantom", "--out " + (dir / "x.zarr") + args + " --compression lz4");
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("compression"), std::string::npos) << bad.err;
  EXPECT_FALSE(fs::exists(dir / "x.zarr"));
}

TEST(Phantom, LooksLikeEm) {
  PhantomOptions o = small();
  o.defects = {{7, DefectKind::kBlur}};
  const Phantom p(o);
  const cv::Mat s = p.render(2);
  cv::Scalar mean, sd;
  cv::meanStdDev(s, mean, sd);
  EXPECT_GT(mean[0], 110);  // bright cytoplasm
  EXPECT_LT(mean[0], 190);
  EXPECT_GT(sd[0], 15);  // membranes and organelles give contrast
  // Dark membranes: a visible fraction of pixels well below the mean.
  cv::Mat dark = s < mean[0] - 50;
  EXPECT_GT(cv::countNonZero(dark), static_cast<int>(s.total() / 50));
  // Neighbouring slices are continuous (after undoing drift), distant ones less so.
  auto ncc = [](const cv::Mat& a, const cv::Mat& b) {
    cv::Mat r;
    cv::matchTemplate(a, b, r, cv::TM_CCOEFF_NORMED);
    return static_cast<double>(r.at<float>(0, 0));
  };
  const cv::Rect inner(16, 16, 288, 224);
  EXPECT_GT(ncc(p.render(2)(inner), p.render(3)(inner)), ncc(p.render(2)(inner), p.render(6)(inner)));
}

TEST(Phantom, TruthMatchesVolume) {
  PhantomOptions o = small();
  o.defects = {{1, DefectKind::kPadding}, {2, DefectKind::kMissing}, {4, DefectKind::kFold}, {5, DefectKind::kStain}, {6, DefectKind::kContrastFlip}};
  const Phantom p(o);
  ASSERT_EQ(p.truth().defects.size(), 5u);
  for (const Defect& d : p.truth().defects) {
    const cv::Mat s = p.render(d.z);
    switch (d.kind) {
      case DefectKind::kPadding: EXPECT_EQ(cv::countNonZero(s(d.box)), 0) << "padding box is not black"; break;
      case DefectKind::kMissing: {
        double mn, mx;
        cv::minMaxLoc(s, &mn, &mx);
        EXPECT_EQ(mn, mx) << "blank slice is not flat";
        break;
      }
      case DefectKind::kFold: {
        // Pixels under the band are much darker than the rest of the slice.
        const cv::Mat mask = defect_mask(d, s.size());
        EXPECT_LT(cv::mean(s, mask)[0], 0.5 * cv::mean(s, ~mask)[0]);
        EXPECT_EQ(cv::boundingRect(mask), d.box);
        break;
      }
      case DefectKind::kStain: {
        const cv::Mat mask = defect_mask(d, s.size());
        EXPECT_LT(cv::mean(s, mask)[0], 0.8 * cv::mean(s, ~mask)[0]);
        break;
      }
      case DefectKind::kContrastFlip: EXPECT_LT(cv::mean(s)[0], 128); break;
      default: break;
    }
  }
}

TEST(Phantom, RandomDefectsFollowTheRate) {
  PhantomOptions o = small();
  o.depth = 400;
  o.height = o.width = 32;
  o.cell_size = 16;
  o.defect_rate = 0.25;
  const Phantom p(o);
  const double n = static_cast<double>(p.truth().defects.size());
  EXPECT_NEAR(n / 400.0, 0.25, 0.06);
  std::set<DefectKind> kinds;
  for (const auto& d : p.truth().defects) kinds.insert(d.kind);
  EXPECT_EQ(kinds.size(), std::size(kAllDefectKinds));
}

TEST(Phantom, DriftMeasuredByPhaseCorrelationMatchesTruth) {
  PhantomOptions o = small(11);
  o.defect_rate = 0;
  o.height = o.width = 384;
  const Phantom p(o);
  cv::Mat window;
  cv::createHanningWindow(window, cv::Size(384, 384), CV_64F);
  for (std::int64_t z = 0; z + 1 < o.depth; ++z) {
    cv::Mat a, b;
    p.render(z).convertTo(a, CV_64F);
    p.render(z + 1).convertTo(b, CV_64F);
    const cv::Point2d measured = cv::phaseCorrelate(a, b, window);
    const cv::Point2d expected = p.truth().drift[z + 1] - p.truth().drift[z];
    EXPECT_NEAR(measured.x, expected.x, 0.5) << "z " << z;
    EXPECT_NEAR(measured.y, expected.y, 0.5) << "z " << z;
  }
}

TEST(Phantom, TruthJsonRoundTrips) {
  PhantomOptions o = small();
  o.defects = {{1, DefectKind::kFold}, {3, DefectKind::kStain}};
  const Phantom p(o);
  const PhantomTruth t = truth_from_json(nlohmann::json::parse(truth_to_json(p).dump()));
  ASSERT_EQ(t.defects.size(), 2u);
  EXPECT_EQ(t.defects[0].box, p.truth().defects[0].box);
  EXPECT_NEAR(t.defects[0].width, p.truth().defects[0].width, 1e-9);
  EXPECT_NEAR(t.defects[1].radius, p.truth().defects[1].radius, 1e-9);
  EXPECT_NEAR(t.drift[4].x, p.truth().drift[4].x, 1e-12);
}

TEST(Phantom, BadOptionsAreUsageErrors) {
  PhantomOptions o = small();
  o.defects = {{99, DefectKind::kFold}};
  EXPECT_THROW(Phantom{o}, Error);
  EXPECT_THROW((void)parse_defect_kind("low_contrast"), Error);
  const auto r = test::run_tool("em-phantom", "--out x.h5 --defects 2:lower_contrast");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("lower_contrast"), std::string::npos);
}

}  // namespace emt::phantom
