#include <cstdio>

#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "emt/common/error.hpp"
#include "emt/phantom/phantom.hpp"
#include "emt/triplets/align.hpp"
#include "test_support.hpp"

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

// Our correlation is TM_CCOEFF_NORMED: the same map as cv::matchTemplate on
// real neighbouring slices (ssTEM and FIB-SEM), prepared as the aligner
// prepares them (fine level: smoothed; coarse level: area-downsampled), over
// the offsets the aligner searches. Not skipped: CI has ../shared/data.
TEST(Align, CorrelationAgreesWithMatchTemplateOnRealSlices) {
  struct Case {
    const char* stack;
    int z0, z1;
  };
  for (const Case c : {Case{"isbi2012", 10, 11}, Case{"isbi2012", 3, 4}, Case{"flyem_fibsem_medulla_train1", 100, 104}}) {
    const std::string dir = emt::test::shared_data(c.stack);
    ASSERT_FALSE(dir.empty()) << "../shared/data/" << c.stack << " is absent (EMT_SHARED_DATA=" << EMT_SHARED_DATA << ")";
    auto slice = [&](int z) {
      char name[16];
      std::snprintf(name, sizeof name, "/%04d.png", z);
      const cv::Mat m = cv::imread(dir + name, cv::IMREAD_GRAYSCALE);
      EXPECT_FALSE(m.empty()) << dir + name;
      return m;
    };
    const cv::Mat a = slice(c.z0), b = slice(c.z1);
    ASSERT_FALSE(a.empty() || b.empty());
    for (const bool coarse : {false, true}) {
      cv::Mat fa, fb;
      if (coarse) {
        cv::resize(a, fa, cv::Size(a.cols / 4, a.rows / 4), 0, 0, cv::INTER_AREA);
        cv::resize(b, fb, cv::Size(b.cols / 4, b.rows / 4), 0, 0, cv::INTER_AREA);
        fa.convertTo(fa, CV_32F);
        fb.convertTo(fb, CV_32F);
      } else {
        a.convertTo(fa, CV_32F);
        b.convertTo(fb, CV_32F);
        cv::GaussianBlur(fa, fa, cv::Size(0, 0), 1.0);
        cv::GaussianBlur(fb, fb, cv::Size(0, 0), 1.0);
      }
      const int r = coarse ? 4 : 16;  // offsets searched: +-r
      const cv::Rect t(r, r, fb.cols - 2 * r, fb.rows - 2 * r);
      const cv::Mat ours = match_template_ccoeff_normed(fa, fb(t));
      cv::Mat theirs;
      cv::matchTemplate(fa, fb(t), theirs, cv::TM_CCOEFF_NORMED);
      ASSERT_EQ(ours.size(), theirs.size());
      ASSERT_EQ(ours.size(), cv::Size(2 * r + 1, 2 * r + 1));
      const std::string where = std::string(c.stack) + " " + std::to_string(c.z0) + "/" + std::to_string(c.z1) + (coarse ? " coarse" : " fine");
      EXPECT_LT(cv::norm(ours, theirs, cv::NORM_INF), 1e-5) << where;  // measured <= 1e-6: float rounding
      cv::Point p_ours, p_theirs;
      double v_ours = 0, v_theirs = 0;
      cv::minMaxLoc(ours, nullptr, &v_ours, nullptr, &p_ours);
      cv::minMaxLoc(theirs, nullptr, &v_theirs, nullptr, &p_theirs);
      EXPECT_EQ(p_ours, p_theirs) << where;
      // Real neighbours correlate clearly (not a flat or degenerate map).
      EXPECT_GT(v_ours, 0.1) << where;
      EXPECT_GT(v_ours - cv::mean(ours)[0], 0.05) << where;
    }
  }
}

TEST(Align, CorrelationOfFlatTemplateIsZero) {
  const cv::Mat image(20, 20, CV_32FC1, cv::Scalar(3.0f)), templ(8, 8, CV_32FC1, cv::Scalar(1.0f));
  const cv::Mat m = match_template_ccoeff_normed(image, templ);
  ASSERT_EQ(m.size(), cv::Size(13, 13));
  EXPECT_EQ(cv::countNonZero(m), 0);
}

}  // namespace emt::triplets
