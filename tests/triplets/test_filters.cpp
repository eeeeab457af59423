// Each filter fires on the defect it is for, and not on a clean phantom triplet.
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
