#include <gtest/gtest.h>

#include "emt/triplets/histogram.hpp"

namespace emt::triplets {

// Fixture and expected values computed once with scikit-image 0.19.3:
//   y, x = np.mgrid[0:8, 0:12]
//   src = ((y*37 + x*11) % 97 + 40).astype(np.uint8)
//   ref = (((y*13 + x*29) % 61)*3 + 20).astype(np.uint8)
//   skimage.exposure.match_histograms(src, ref)
constexpr double kSkimage[96] = {
    20.0, 41.0, 62.0, 81.5, 100.25, 122.0, 147.0, 167.0, 186.0, 26.0, 50.0, 68.0, 90.0, 108.5, 131.0, 153.5,
    174.0, 194.75, 32.0, 59.0, 74.0, 95.0, 110.0, 137.0, 158.0, 178.0, 197.0, 38.0, 61.25, 80.0, 99.5, 119.0,
    146.0, 165.0, 182.0, 22.0, 51.0, 69.5, 89.0, 107.75, 129.5, 152.0, 172.0, 194.0, 30.0, 53.0, 71.0, 91.0,
    113.0, 138.0, 156.5, 177.0, 196.25, 35.0, 60.5, 78.0, 98.75, 117.0, 139.0, 161.0, 186.0, 26.0, 50.0, 68.0,
    86.0, 107.0, 128.0, 149.0, 170.0, 188.0, 28.0, 52.0, 74.0, 95.0, 110.0, 137.0, 155.0, 176.0, 195.5, 33.5,
    59.75, 76.0, 98.0, 115.0, 146.0, 165.0, 182.0, 22.0, 42.5, 65.0, 83.0, 101.0, 125.0, 148.0, 168.5, 187.0};

cv::Mat fixture(bool reference) {
  cv::Mat m(8, 12, CV_8UC1);
  for (int y = 0; y < 8; ++y)
    for (int x = 0; x < 12; ++x) {
      m.at<std::uint8_t>(y, x) = static_cast<std::uint8_t>(reference ? ((y * 13 + x * 29) % 61) * 3 + 20 : (y * 37 + x * 11) % 97 + 40);
    }
  return m;
}

TEST(HistogramMatching, AgreesWithSkimageWithinOneGreyLevel) {
  const cv::Mat src = fixture(false), ref = fixture(true);
  const auto values = matching_values(histogram_of(src), histogram_of(ref));
  const cv::Mat matched = apply_lut(src, matching_lut(histogram_of(src), histogram_of(ref)));
  for (int i = 0; i < 96; ++i) {
    const std::uint8_t v = src.at<std::uint8_t>(i / 12, i % 12);
    EXPECT_NEAR(values[v], kSkimage[i], 1e-9) << "pixel " << i;  // unrounded: exact
    EXPECT_LE(std::abs(matched.at<std::uint8_t>(i / 12, i % 12) - kSkimage[i]), 1.0) << "pixel " << i;
  }
}

TEST(HistogramMatching, MatchedHistogramApproximatesReference) {
  cv::Mat src(64, 64, CV_8UC1), ref(64, 64, CV_8UC1);
  cv::randu(src, 0, 100);
  cv::randn(ref, 150, 20);
  const cv::Mat out = apply_lut(src, matching_lut(histogram_of(src), histogram_of(ref)));
  cv::Scalar m, sd;
  cv::meanStdDev(out, m, sd);
  EXPECT_NEAR(m[0], 150, 3);
  EXPECT_NEAR(sd[0], 20, 3);
}

TEST(HistogramMatching, LutIsMonotoneAndKeepsZeroWhenAsked) {
  Histogram src{}, ref{};
  for (int v = 10; v < 200; v += 3) src[v] = v;
  for (int v = 50; v < 250; ++v) ref[v] = 1;
  const auto lut = matching_lut(src, ref, /*keep_zero=*/true);
  EXPECT_EQ(lut[0], 0);
  for (int v = 2; v < 256; ++v) EXPECT_GE(lut[v], lut[v - 1]);
  EXPECT_GE(lut[10], 50);
}

TEST(ReferenceHistogram, DropsBlankAndOutlierSlices) {
  std::vector<Histogram> slices(5);
  for (int i = 0; i < 5; ++i)
    for (int v = 100; v < 160; ++v) slices[i][v] = 10;
  slices[1] = Histogram{};
  slices[1][40] = 1000;  // blank (flat) slice
  slices[3] = Histogram{};
  for (int v = 10; v < 40; ++v) slices[3][v] = 10;  // much darker: a defective slice
  const auto ref = reference_histogram(slices);
  EXPECT_EQ(ref.used, (std::vector<std::size_t>{0, 2, 4}));
  EXPECT_EQ(ref.counts[40], 0);
  EXPECT_GT(ref.counts[120], 0);
}

}  // namespace emt::triplets
