#pragma once
// SSAN's training losses (PAPER_NOTES.md, "Training"):
//   total = w_bs * L_bs + w_f * L_f + w_1 * L_1
//   L_1   Charbonnier: mean(sqrt((pred - gt)^2 + eps^2)), eps = 1e-6
//   L_f   VGG16 features at relu1_2, relu2_2, relu3_3, relu4_3: mean squared
//         difference per layer (normalised by C*H*W), summed over layers
//   L_bs  style balance: sum over the three slices j of
//         beta_j * sign(S(pred, I_j) - S(gt, I_j)) * S(pred, I_j), beta = (0.1, 1, 0.1),
//         S = sum over layers of the squared Frobenius distance of Gram
//         matrices normalised by C*H*W; the sign is a constant (no gradient).
// Grey images enter VGG as three repeated channels, ImageNet-normalised.
#include <array>
#include <functional>
#include <string>

#include <torch/torch.h>

#include "emt/ssan/config.hpp"

namespace emt::ssan {

[[nodiscard]] torch::Tensor charbonnier(const torch::Tensor& pred, const torch::Tensor& target, double eps = 1e-6);

/// torchvision's vgg16().features up to relu4_3 (indices 0..22), same parameter names.
class Vgg16FeaturesImpl : public torch::nn::Module {
 public:
  Vgg16FeaturesImpl();
  /// Features at relu1_2, relu2_2, relu3_3, relu4_3 of a [B, 3, H, W] input (already normalised).
  std::vector<torch::Tensor> forward(const torch::Tensor& x);
  /// Copies weights from a TorchScript module saved from torchvision (docs/model.md);
  /// throws emt::Error naming the file when it cannot be used.
  void load_torchscript(const std::string& path);
  /// The fallback when no weights file exists: He-normal weights (fan-in, ReLU
  /// gain), zero biases, from `seed`. This keeps activations O(1) through all
  /// ten convolutions, as in a trained VGG, so all four feature layers count;
  /// torch's default init shrinks them ~2.4x per layer (relu4_3 rms 0.007).
  void randomize(std::uint64_t seed);

 private:
  std::vector<std::pair<int, torch::nn::Conv2d>> convs_;
};
TORCH_MODULE(Vgg16Features);

/// Gram matrices [B, C, C] normalised by C*H*W.
[[nodiscard]] torch::Tensor gram(const torch::Tensor& features);
/// Grey [B, 1, H, W] in [0, 1] -> VGG input (3 channels, ImageNet mean/std).
[[nodiscard]] torch::Tensor to_vgg_input(const torch::Tensor& grey);

struct LossTerms {
  torch::Tensor total, charbonnier, feature, style_balance, gradient, texture;
};

/// Charbonnier distance of the x and y finite differences of pred and target
/// ([B, C, H, W], H and W >= 2): the mean of the two directions.
[[nodiscard]] torch::Tensor gradient_charbonnier(const torch::Tensor& pred, const torch::Tensor& target, double eps = 1e-6);

/// Per image [B, 1, H, W] (H, W >= 4): the mean squared response of each
/// fixed derivative filter (d/dx, d/dy, Laplacian; full and half
/// resolution), [B, 6].
[[nodiscard]] torch::Tensor texture_energy(const torch::Tensor& images);
/// Mean |log(E(pred) + 1e-8) - log(E(target) + 1e-8)| of texture_energy.
[[nodiscard]] torch::Tensor texture_loss(const torch::Tensor& pred, const torch::Tensor& target);

class SsanLoss {
 public:
  /// `warn` receives the loud warning when no VGG weights are available.
  SsanLoss(const LossConfig& config, const std::function<void(const std::string&)>& warn);
  /// pred, gt [B, 1, H, W]; outer [B, 2, H, W] (slices 0 and 2).
  LossTerms operator()(const torch::Tensor& pred, const torch::Tensor& gt, const torch::Tensor& outer);
  /// Where the VGG weights came from: "file:PATH", "random-fixed (no weights file)" or "disabled".
  [[nodiscard]] const std::string& vgg_source() const { return vgg_source_; }
  /// Style distance S(a, b) = sum over layers of the mean squared difference of
  /// the Gram matrices, from precomputed features (exposed for tests).
  [[nodiscard]] static torch::Tensor style_distance(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b);
  /// The style-balance combination of S(pred, I_j) and S(gt, I_j) (exposed for tests).
  [[nodiscard]] static torch::Tensor style_balance(const std::array<torch::Tensor, 3>& pred_to_slice,
                                                   const std::array<torch::Tensor, 3>& gt_to_slice);
  void to(torch::Device device);

 private:
  LossConfig config_;
  Vgg16Features vgg_{nullptr};
  std::string vgg_source_;
};

}  // namespace emt::ssan
