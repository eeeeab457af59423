#include <algorithm>
#include <cmath>
#include <filesystem>

#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>

#include "emt/common/error.hpp"
#include "emt/plot/plot.hpp"
#include "test_support.hpp"

namespace emt::test {
namespace fs = std::filesystem;

TEST(Smooth, ConstantStaysConstantAndAStepIsFollowedGeometrically) {
  const auto c = plot::smooth({3, 3, 3, 3}, 0.1);
  for (double v : c) EXPECT_NEAR(v, 3.0, 1e-12);  // bias-corrected: no pull towards 0 at the start
  const auto s = plot::smooth({0, 0, 0, 1, 1, 1}, 0.5);
  EXPECT_NEAR(s[2], 0.0, 1e-12);
  EXPECT_GT(s[3], 0.0);
  EXPECT_LT(s[3], 1.0);
  EXPECT_LT(s[3], s[4]);
  EXPECT_LT(s[4], s[5]);
  EXPECT_THROW((void)plot::smooth({1}, 0.0), Error);
  EXPECT_THROW((void)plot::smooth({1}, std::nan("")), Error);
}

TEST(Figure, PanelsStackAtTheRequestedSizeWithTheirLinesDrawn) {
  ScratchDir dir;
  std::vector<double> x, y;
  for (int i = 1; i <= 50; ++i) {
    x.push_back(i);
    y.push_back(1.0 / i);
  }
  plot::Panel loss{"loss", "step", "loss", {{"raw", x, y, "h"}, {"smoothed", x, plot::smooth(y, 0.2), "b2"}}, {}, plot::Scale::kLog};
  plot::Panel val{"PSNR", "step", "dB", {{"ssan", {10, 20, 30}, {22, 23, 24}, "b2o"}}, {{"linear", 22.5, "r|"}}, plot::Scale::kLinear};
  plot::Panel empty{"nothing", "x", "y", {}, {}, plot::Scale::kLinear};
  const std::string png = dir / "f.png";
  plot::write_png(png, {loss, val, empty}, 640, 200);
  const cv::Mat img = cv::imread(png, cv::IMREAD_COLOR);
  ASSERT_FALSE(img.empty());
  EXPECT_EQ(img.cols, 640);
  EXPECT_EQ(img.rows, 600);
  EXPECT_FALSE(fs::exists(png + ".tmp"));
  // Blue (the smoothed loss, the PSNR line) and red (the baseline level) pixels exist in their panels.
  auto count = [&](int y0, int y1, auto&& is) {
    int n = 0;
    for (int r = y0; r < y1; ++r)
      for (int c = 0; c < img.cols; ++c) n += is(img.at<cv::Vec3b>(r, c));
    return n;
  };
  auto blue = [](const cv::Vec3b& p) { return p[0] > 150 && p[2] < 100 && p[1] < 120; };
  // Red-dominant (MathGL draws dashed levels antialiased, a light red).
  auto red = [](const cv::Vec3b& p) { return p[2] > 150 && p[2] - std::max(p[0], p[1]) > 60; };
  EXPECT_GT(count(0, 200, blue), 100);
  EXPECT_GT(count(200, 400, blue), 50);
  EXPECT_GT(count(200, 400, red), 50);
  EXPECT_EQ(count(0, 200, red), 0);
}

TEST(Figure, BadSizesAndUnwritablePlacesAreErrorsNamingTheFile) {
  plot::Panel p{"t", "x", "y", {{"", {0, 1}, {0, 1}, "b"}}, {}, plot::Scale::kLinear};
  EXPECT_THROW(plot::write_png("/tmp/x.png", {}, 640, 200), Error);
  EXPECT_THROW(plot::write_png("/tmp/x.png", {p}, 10, 200), Error);
  try {
    plot::write_png("/nonexistent-dir/f.png", {p});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent-dir/f.png"), std::string::npos) << e.what();
  }
}

}  // namespace emt::test
