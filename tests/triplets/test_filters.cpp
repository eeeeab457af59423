// Each filter fires on the defect it is for, and not on a clean phantom triplet.
#include <algorithm>
#include <cmath>
#include <vector>

#include <gtest/gtest.h>
#include <opencv2/imgproc.hpp>

#include "emt/phantom/phantom.hpp"
#include "emt/triplets/filters.hpp"

namespace emt::triplets {

class FilterTest : public ::testing::Test {
 protected:
  static std::array<cv::Mat, 3> clean() {
    phantom::PhantomOptions o;
    o.depth = 6;
    o.height = o.width = 256;
    o.cell_size = 48;
    o.max_drift = 0;
    o.defect_rate = 0;
    const phantom::Phantom p(o);
    return {p.render(1), p.render(2), p.render(3)};
  }
  FilterOptions options;
};

TEST_F(FilterTest, CleanTripletAccepted) {
  const auto d = evaluate_tile(clean(), options);
  EXPECT_TRUE(d.accepted()) << to_string(d.reason) << " " << d.value;
  EXPECT_GT(d.measures.ncc[0], 0.6);
  EXPECT_GT(d.measures.ncc[1], 0.6);
}

TEST_F(FilterTest, BlackPaddingIsPadding) {
  auto t = clean();
  t[2](cv::Rect(0, 0, 256, 40)).setTo(0);
  const auto d = evaluate_tile(t, options);
  EXPECT_EQ(d.reason, RejectReason::kPadding);
  EXPECT_NEAR(d.value, 40.0 / 256.0, 0.07);
}

TEST_F(FilterTest, SaturatedRegionIsBlank) {
  auto t = clean();
  t[1](cv::Rect(0, 0, 128, 128)).setTo(255);
  EXPECT_EQ(evaluate_tile(t, options).reason, RejectReason::kBlank);
}

TEST_F(FilterTest, DarkBandInMiddleSliceIsDefect) {
  for (int slice = 0; slice < 3; ++slice) {
    auto t = clean();
    cv::Mat band = t[slice](cv::Rect(0, 100, 256, 14));
    band.convertTo(band, -1, 0.25);
    const auto d = evaluate_tile(t, options);
    EXPECT_EQ(d.reason, RejectReason::kDefect) << "slice " << slice << ": " << to_string(d.reason);
  }
}

TEST_F(FilterTest, NonConsecutiveSliceFailsContinuity) {
  auto t = clean();
  phantom::PhantomOptions o;
  o.depth = 2;
  o.height = o.width = 256;
  o.cell_size = 48;
  o.seed = 77;  // unrelated content
  o.defect_rate = 0;
  t[0] = phantom::Phantom(o).render(0);
  const auto d = evaluate_tile(t, options);
  EXPECT_TRUE(d.reason == RejectReason::kContinuity || d.reason == RejectReason::kDefect) << to_string(d.reason);
  EXPECT_LT(d.measures.ncc[0], 0.3);
}

TEST_F(FilterTest, BlurredSliceFailsBlur) {
  auto t = clean();
  cv::GaussianBlur(t[1], t[1], cv::Size(0, 0), 3.0);
  const auto d = evaluate_tile(t, options);
  EXPECT_EQ(d.reason, RejectReason::kBlur) << to_string(d.reason);
  EXPECT_GT(d.value, options.max_blur_ratio);
}

TEST_F(FilterTest, DuplicatedSectionIsDuplicate) {
  auto t = clean();
  t[2] = t[1].clone();
  EXPECT_EQ(evaluate_tile(t, options).reason, RejectReason::kDuplicate);
}

TEST(Sharpness, DropsWithBlur) {
  cv::Mat img(128, 128, CV_8UC1);
  cv::randu(img, 0, 255);
  cv::Mat blurred;
  cv::GaussianBlur(img, blurred, cv::Size(0, 0), 2.0);
  EXPECT_GT(sharpness(img), 4 * sharpness(blurred));
  EXPECT_NEAR(ncc(img, img), 1.0, 1e-9);
  EXPECT_EQ(ncc(img, cv::Mat(128, 128, CV_8UC1, cv::Scalar(3))), 0.0);
}

}  // namespace emt::triplets

namespace emt::triplets {

// The repeated-section rule on neighbour-NCC series shaped like the real
// stacks: ssTEM-like (median ~0.5) and FIB-SEM-like (median ~0.95).
std::vector<double> wobbly_series(double centre, double spread, int n) {
  std::vector<double> v;
  for (int i = 0; i < n; ++i) v.push_back(centre + spread * std::sin(1.7 * i + 0.3));  // deterministic, symmetric spread
  return v;
}

TEST(RepeatedSections, FiresOnTheOutlierPairOnly) {
  auto ncc = wobbly_series(0.5, 0.08, 30);
  ncc[12] = 0.91;  // re-imaged: far above the stack, far below a fixed duplicate threshold of 0.985
  const FilterOptions o;
  const auto r = repeated_sections(ncc, o);
  ASSERT_TRUE(r.active);
  EXPECT_NEAR(r.median_ncc, 0.5, 0.05);
  for (std::size_t i = 0; i < ncc.size(); ++i) {
    EXPECT_EQ(r.repeated[i], i == 12) << "pair " << i << " ncc " << ncc[i] << " z " << r.z[i];
  }
  EXPECT_GT(r.z[12], o.repeat_max_z);
}

TEST(RepeatedSections, ExactDuplicateInSmoothStackIsFiniteOutlier) {
  auto ncc = wobbly_series(0.95, 0.01, 40);
  ncc[5] = 1.0;
  const auto r = repeated_sections(ncc, FilterOptions{});
  EXPECT_TRUE(std::isfinite(r.z[5]));
  EXPECT_GT(r.z[5], 20.0);
  EXPECT_EQ(std::count(r.repeated.begin(), r.repeated.end(), true), 1);
}

TEST(RepeatedSections, NoOutlierNoFire) {
  for (double centre : {0.2, 0.5, 0.8, 0.95}) {
    const auto r = repeated_sections(wobbly_series(centre, 0.3 * (1 - centre), 50), FilterOptions{});
    EXPECT_TRUE(r.active);
    EXPECT_EQ(std::count(r.repeated.begin(), r.repeated.end(), true), 0) << "centre " << centre;
  }
}

TEST(RepeatedSections, TooFewPairsNeverFire) {
  const FilterOptions o;
  std::vector<double> ncc(static_cast<std::size_t>(o.repeat_min_pairs - 1), 0.3);
  ncc[0] = 1.0;
  const auto r = repeated_sections(ncc, o);
  EXPECT_FALSE(r.active);
  EXPECT_EQ(std::count(r.repeated.begin(), r.repeated.end(), true), 0);
  EXPECT_TRUE(repeated_sections({}, o).repeated.empty());
}

TEST(RepeatedSections, ConstantSeriesUsesTheScaleFloor) {
  FilterOptions o;
  std::vector<double> ncc(20, 0.6);
  auto r = repeated_sections(ncc, o);
  EXPECT_DOUBLE_EQ(r.mad_log_d, 0.0);
  EXPECT_DOUBLE_EQ(r.scale, o.repeat_min_scale);
  EXPECT_EQ(std::count(r.repeated.begin(), r.repeated.end(), true), 0);
  // With MAD 0 a tiny rise is not an outlier (floor), a large one is.
  ncc[3] = 0.61;
  ncc[9] = 0.95;
  r = repeated_sections(ncc, o);
  EXPECT_FALSE(r.repeated[3]) << r.z[3];
  EXPECT_TRUE(r.repeated[9]) << r.z[9];
}

TEST(RepeatedSections, JudgedAgainstTheGivenSample) {
  const auto sample = wobbly_series(0.5, 0.08, 30);
  const auto r = repeated_sections({0.5, 0.93}, sample, FilterOptions{});
  EXPECT_FALSE(r.repeated[0]);
  EXPECT_TRUE(r.repeated[1]);
  EXPECT_NEAR(r.z[0], 0.0, 0.5);
}

}  // namespace emt::triplets
