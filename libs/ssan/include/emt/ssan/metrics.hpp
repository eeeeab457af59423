#pragma once
// Evaluation metrics and classical baselines for slice interpolation.
// Images are CV_8UC1 or CV_32F/CV_64F on the 0-255 scale.
//   psnr       10 log10(255^2 / MSE)
//   ssim       Wang et al. 2004, Gaussian window 11 (sigma 1.5), K1 0.01, K2 0.03,
//              population covariance, reflect borders, mean over the image minus
//              a 5 px border: skimage's structural_similarity(gaussian_weights=True,
//              sigma=1.5, use_sample_covariance=False, data_range=255)
//   ie         interpolation error: mean absolute difference
//   sharpness  variance of the Laplacian after a sigma-1 Gaussian
#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

namespace emt::ssan {

[[nodiscard]] double psnr(const cv::Mat& pred, const cv::Mat& gt);
[[nodiscard]] double ssim(const cv::Mat& pred, const cv::Mat& gt);
[[nodiscard]] double interpolation_error(const cv::Mat& pred, const cv::Mat& gt);
[[nodiscard]] double sharpness(const cv::Mat& image);

/// Baselines predicting the middle slice from the outer two (CV_8UC1 in, CV_32F out).
[[nodiscard]] cv::Mat linear_baseline(const cv::Mat& s0, const cv::Mat& s2);
/// Farneback flow both ways; each outer slice warped half way; averaged.
[[nodiscard]] cv::Mat flow_baseline(const cv::Mat& s0, const cv::Mat& s2);
/// The linear mean smoothed by a Gaussian: what blurring alone buys.
[[nodiscard]] cv::Mat blur_baseline(const cv::Mat& s0, const cv::Mat& s2, double sigma);

/// The strongest blur reference: every sigma of a grid (0.5 .. 8) tried on
/// the linear mean of n triplets (slice 0, truth, slice 2 as CV_8UC1 from
/// `triplet(k)`, k < n), quantised to 8 bit as a stored slice is. Chosen on
/// the scored data itself, so it is an upper bound for what smoothing buys.
struct BlurSearch {
  double best_sigma = 0, best_psnr = 0;
  std::vector<double> sigmas, mean_psnr;  ///< the grid and each sigma's mean PSNR
};
[[nodiscard]] BlurSearch search_blur_sigma(std::int64_t n, const std::function<std::array<cv::Mat, 3>(std::int64_t)>& triplet);

}  // namespace emt::ssan
