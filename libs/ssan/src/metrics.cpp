#include "emt/ssan/metrics.hpp"

#include <algorithm>
#include <cmath>

#include <opencv2/imgproc.hpp>
#include <opencv2/video/tracking.hpp>

namespace emt::ssan {
namespace {
cv::Mat as_double(const cv::Mat& m) {
  cv::Mat d;
  m.convertTo(d, CV_64F);
  return d;
}
}  // namespace

double psnr(const cv::Mat& pred, const cv::Mat& gt) {
  CV_Assert(pred.size() == gt.size());
  cv::Mat diff = as_double(pred) - as_double(gt);
  const double mse = diff.dot(diff) / static_cast<double>(diff.total());
  return mse <= 0 ? INFINITY : 10.0 * std::log10(255.0 * 255.0 / mse);
}

double interpolation_error(const cv::Mat& pred, const cv::Mat& gt) {
  CV_Assert(pred.size() == gt.size());
  return cv::mean(cv::abs(as_double(pred) - as_double(gt)))[0];
}

double ssim(const cv::Mat& pred, const cv::Mat& gt) {
  CV_Assert(pred.size() == gt.size());
  const cv::Mat x = as_double(pred), y = as_double(gt);
  const cv::Mat k = cv::getGaussianKernel(11, 1.5, CV_64F);
  auto filter = [&](const cv::Mat& m) {
    cv::Mat out;
    cv::sepFilter2D(m, out, CV_64F, k, k, cv::Point(-1, -1), 0, cv::BORDER_REFLECT);  // scipy 'reflect'
    return out;
  };
  const double c1 = std::pow(0.01 * 255, 2), c2 = std::pow(0.03 * 255, 2);
  const cv::Mat ux = filter(x), uy = filter(y);
  const cv::Mat vx = filter(x.mul(x)) - ux.mul(ux), vy = filter(y.mul(y)) - uy.mul(uy), vxy = filter(x.mul(y)) - ux.mul(uy);
  cv::Mat s = ((2 * ux.mul(uy) + c1).mul(2 * vxy + c2)) / ((ux.mul(ux) + uy.mul(uy) + c1).mul(vx + vy + c2));
  const int pad = 5;
  CV_Assert(s.rows > 2 * pad && s.cols > 2 * pad);
  return cv::mean(s(cv::Rect(pad, pad, s.cols - 2 * pad, s.rows - 2 * pad)))[0];
}

double sharpness(const cv::Mat& image) {
  cv::Mat f, lap;
  image.convertTo(f, CV_64F);
  cv::GaussianBlur(f, f, cv::Size(0, 0), 1.0);
  cv::Laplacian(f, lap, CV_64F);
  cv::Scalar mean, sd;
  cv::meanStdDev(lap, mean, sd);
  return sd[0] * sd[0];
}

cv::Mat linear_baseline(const cv::Mat& s0, const cv::Mat& s2) {
  cv::Mat a, b;
  s0.convertTo(a, CV_32F);
  s2.convertTo(b, CV_32F);
  return 0.5f * (a + b);
}

cv::Mat flow_baseline(const cv::Mat& s0, const cv::Mat& s2) {
  CV_Assert(s0.type() == CV_8UC1 && s2.type() == CV_8UC1);
  cv::Mat f02, f20;
  // I2(x) ~ I0(x + F20(x)) and I0(x) ~ I2(x + F02(x)); the middle frame's
  // match lies half way along the flow.
  cv::calcOpticalFlowFarneback(s2, s0, f20, 0.5, 4, 15, 3, 5, 1.2, 0);
  cv::calcOpticalFlowFarneback(s0, s2, f02, 0.5, 4, 15, 3, 5, 1.2, 0);
  cv::Mat map0(s0.size(), CV_32FC2), map2(s0.size(), CV_32FC2);
  for (int y = 0; y < s0.rows; ++y) {
    for (int x = 0; x < s0.cols; ++x) {
      const auto a = f20.at<cv::Point2f>(y, x), b = f02.at<cv::Point2f>(y, x);
      map0.at<cv::Point2f>(y, x) = cv::Point2f(x + 0.5f * a.x, y + 0.5f * a.y);
      map2.at<cv::Point2f>(y, x) = cv::Point2f(x + 0.5f * b.x, y + 0.5f * b.y);
    }
  }
  cv::Mat a, b, w0, w2;
  s0.convertTo(a, CV_32F);
  s2.convertTo(b, CV_32F);
  cv::remap(a, w0, map0, cv::noArray(), cv::INTER_LINEAR, cv::BORDER_REFLECT);
  cv::remap(b, w2, map2, cv::noArray(), cv::INTER_LINEAR, cv::BORDER_REFLECT);
  return 0.5f * (w0 + w2);
}

cv::Mat blur_baseline(const cv::Mat& s0, const cv::Mat& s2, double sigma) {
  cv::Mat m = linear_baseline(s0, s2);
  if (sigma > 0) cv::GaussianBlur(m, m, cv::Size(0, 0), sigma);
  return m;
}

BlurSearch search_blur_sigma(std::int64_t n, const std::function<std::array<cv::Mat, 3>(std::int64_t)>& triplet) {
  BlurSearch r;
  r.sigmas = {0.5, 0.75, 1, 1.25, 1.5, 2, 2.5, 3, 4, 5, 6, 8};
  r.mean_psnr.assign(r.sigmas.size(), 0.0);
  if (n <= 0) return r;
  for (std::int64_t k = 0; k < n; ++k) {
    const auto t = triplet(k);
    const cv::Mat mean = linear_baseline(t[0], t[2]);
    for (std::size_t g = 0; g < r.sigmas.size(); ++g) {
      cv::Mat blurred, q;
      cv::GaussianBlur(mean, blurred, cv::Size(0, 0), r.sigmas[g]);
      blurred.convertTo(q, CV_8U);
      r.mean_psnr[g] += psnr(q, t[1]) / static_cast<double>(n);
    }
  }
  const auto best = static_cast<std::size_t>(std::max_element(r.mean_psnr.begin(), r.mean_psnr.end()) - r.mean_psnr.begin());
  r.best_sigma = r.sigmas[best];
  r.best_psnr = r.mean_psnr[best];
  return r;
}

}  // namespace emt::ssan
