#include <gtest/gtest.h>
#include <opencv2/imgproc.hpp>

#include "emt/common/error.hpp"
#include "emt/phantom/phantom.hpp"
#include "emt/triplets/align.hpp"

namespace emt::triplets {

phantom::Phantom clean_phantom(double max_drift, std::uint64_t seed = 5) {
  phantom::PhantomOptions o;
  o.depth = 8;
  o.height = o.width = 512;
  o.cell_size = 64;
  o.max_drift = max_drift;
  o.defect_rate = 0;
  o.seed = seed;
  return phantom::Phantom(o);
}

TEST(Align, RecoversPhantomDriftWithinHalfPixel) {
  const auto p = clean_phantom(6.0);
  AlignOptions opt;
  opt.search_radius = 16;
  for (std::int64_t z = 0; z + 1 < 8; ++z) {
    const Shift s = estimate_shift(p.render(z), p.render(z + 1), opt);
    // Aligning z+1 onto z means translating by drift[z] - drift[z+1].
    const cv::Point2d expected = p.truth().drift[z] - p.truth().drift[z + 1];
    EXPECT_NEAR(s.dy, expected.y, 0.5) << "z " << z;
    EXPECT_NEAR(s.dx, expected.x, 0.5) << "z " << z;
    EXPECT_GT(s.ncc, 0.5);
    EXPECT_FALSE(s.at_border);
  }
}

TEST(Align, FullResolutionOnlyGivesTheSameAnswer) {
  const auto p = clean_phantom(3.0, 8);
  AlignOptions coarse, full;
  full.coarse_factor = 1;
  full.search_radius = coarse.search_radius = 8;
  const Shift a = estimate_shift(p.render(2), p.render(3), coarse), b = estimate_shift(p.render(2), p.render(3), full);
  EXPECT_NEAR(a.dy, b.dy, 0.05);
  EXPECT_NEAR(a.dx, b.dx, 0.05);
}

TEST(Align, KnownIntegerTranslation) {
  const auto p = clean_phantom(0.0, 9);
  const cv::Mat ref = p.render(3);
  cv::Mat moved;
  const cv::Mat m = (cv::Mat_<double>(2, 3) << 1, 0, -7, 0, 1, 4);  // moved(y, x) = ref(y - 4, x + 7)
  cv::warpAffine(ref, moved, m, ref.size(), cv::INTER_NEAREST, cv::BORDER_REFLECT);
  const Shift s = estimate_shift(ref, moved);
  EXPECT_NEAR(s.dy, -4, 0.2);
  EXPECT_NEAR(s.dx, 7, 0.2);
  EXPECT_GT(s.ncc, 0.95);
}

TEST(Align, ShiftBeyondRadiusIsFlagged) {
  const auto p = clean_phantom(0.0, 9);
  const cv::Mat ref = p.render(3);
  cv::Mat moved;
  const cv::Mat m = (cv::Mat_<double>(2, 3) << 1, 0, 30, 0, 1, 0);
  cv::warpAffine(ref, moved, m, ref.size(), cv::INTER_NEAREST, cv::BORDER_REFLECT);
  AlignOptions opt;
  opt.search_radius = 8;
  EXPECT_TRUE(estimate_shift(ref, moved, opt).at_border);
}

TEST(Align, ImageTooSmallForRadius) {
  const cv::Mat a(20, 20, CV_8UC1, cv::Scalar(5));
  AlignOptions opt;
  opt.search_radius = 12;
  opt.coarse_factor = 1;
  EXPECT_THROW((void)estimate_shift(a, a, opt), Error);
}

}  // namespace emt::triplets
