#include <cmath>

#include <gtest/gtest.h>
#include <opencv2/imgproc.hpp>

#include "emt/ssan/metrics.hpp"

namespace emt::ssan {

// Fixture and expected values computed once with scikit-image 0.19.3:
//   y, x = np.mgrid[0:24, 0:32]
//   gt = (np.sin(x/3)*60 + np.cos(y/4)*50 + 128).astype(np.uint8)
//   pred = clip(gt + ((x*7 + y*13) % 23) - 11, 0, 255); pred[5:9, 10:20] = 40
//   peak_signal_noise_ratio(gt, pred, data_range=255)
//   structural_similarity(gt, pred, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)
void fixture(cv::Mat& gt, cv::Mat& pred) {
  gt.create(24, 32, CV_8UC1);
  pred.create(24, 32, CV_8UC1);
  for (int y = 0; y < 24; ++y)
    for (int x = 0; x < 32; ++x) {
      const double v = std::sin(x / 3.0) * 60 + std::cos(y / 4.0) * 50 + 128;
      const int g = static_cast<int>(v);  // numpy astype truncates
      gt.at<std::uint8_t>(y, x) = static_cast<std::uint8_t>(g);
      pred.at<std::uint8_t>(y, x) = static_cast<std::uint8_t>(std::clamp(g + (x * 7 + y * 13) % 23 - 11, 0, 255));
    }
  pred(cv::Rect(10, 5, 10, 4)).setTo(40);
}

TEST(Metrics, AgreeWithScikitImage) {
  cv::Mat gt, pred;
  fixture(gt, pred);
  EXPECT_NEAR(psnr(pred, gt), 25.1289942605, 1e-6);
  EXPECT_NEAR(ssim(pred, gt), 0.8636944493, 1e-6);
  EXPECT_NEAR(interpolation_error(pred, gt), 8.0052083333, 1e-6);
}

TEST(Metrics, IdentityAndOrdering) {
  cv::Mat gt, pred;
  fixture(gt, pred);
  EXPECT_TRUE(std::isinf(psnr(gt, gt)));
  EXPECT_NEAR(ssim(gt, gt), 1.0, 1e-12);
  EXPECT_EQ(interpolation_error(gt, gt), 0.0);
  cv::Mat blurred;
  cv::GaussianBlur(gt, blurred, cv::Size(0, 0), 2.0);
  EXPECT_LT(sharpness(blurred), 0.5 * sharpness(gt));
}

TEST(Baselines, LinearFlowAndBlur) {
  // A bright square moving 4 px right per slice: the flow baseline finds it
  // half way, the linear mean shows two half-bright copies.
  cv::Mat s0(64, 64, CV_8UC1, cv::Scalar(40)), s1 = s0.clone(), s2 = s0.clone();
  for (int y = 0; y < 64; ++y)
    for (int x = 0; x < 64; ++x) {
      const double v = 40 + 30 * std::sin(x / 5.0) * std::cos(y / 7.0);
      s0.at<std::uint8_t>(y, x) = s1.at<std::uint8_t>(y, x) = s2.at<std::uint8_t>(y, x) = static_cast<std::uint8_t>(v);
    }
  s0(cv::Rect(20, 24, 12, 12)).setTo(220);
  s1(cv::Rect(24, 24, 12, 12)).setTo(220);
  s2(cv::Rect(28, 24, 12, 12)).setTo(220);
  const cv::Mat lin = linear_baseline(s0, s2), flow = flow_baseline(s0, s2), blur = blur_baseline(s0, s2, 2.0);
  EXPECT_NEAR(lin.at<float>(30, 22), (220 + s2.at<std::uint8_t>(30, 22)) / 2.0, 1e-4);
  EXPECT_GT(psnr(flow, s1), psnr(lin, s1) + 3);
  EXPECT_LT(sharpness(blur), sharpness(lin));
}

}  // namespace emt::ssan
