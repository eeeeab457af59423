#pragma once
// Conversions between [H, W] tensors and OpenCV images, shared by the
// trainer's validation and ssan-eval (private to libs/ssan).
#include <opencv2/core.hpp>
#include <torch/torch.h>

namespace emt::ssan {

inline cv::Mat to_mat(const torch::Tensor& t) {  // [H, W] float in [0, 1] -> CV_32F on 0-255
  const torch::Tensor c = (t.detach().clamp(0, 1) * 255.0).to(torch::kCPU, torch::kFloat32).contiguous();
  return cv::Mat(static_cast<int>(c.size(0)), static_cast<int>(c.size(1)), CV_32F, c.data_ptr<float>()).clone();
}

inline torch::Tensor from_mat(const cv::Mat& u8) {  // CV_8UC1 -> [H, W] uint8 (a copy)
  return torch::from_blob(u8.data, {u8.rows, u8.cols}, torch::kUInt8).clone();
}

}  // namespace emt::ssan
