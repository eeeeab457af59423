#pragma once
// SSAN: siamese residual dense network -> attention-aware layer -> two
// candidate frames -> sigmoid-mask fusion (docs/model.md).
//
// Reading of the paper's F(t-1 -> t+1) and F(t+1 -> t-1): each branch sees
// both outer slices, in swapped order ([I0, I2] and [I2, I0]); "siamese"
// means the two branches share their weights. The head of branch i predicts
// a residual on its own slice: warp_i = I_i + head(AAL(F_i)), so an untrained
// network starts as the slices themselves. The fusion mask M = sigmoid(conv(
// [A0, A2])) mixes them: out = M warp0 + (1 - M) warp1.
#include <torch/torch.h>

#include "emt/ssan/attention.hpp"
#include "emt/ssan/config.hpp"

namespace emt::ssan {

/// Residual dense network (Zhang et al. 2018): shallow feature extraction,
/// D residual dense blocks of C layers with growth G, dense feature fusion,
/// global residual.
class RdnImpl : public torch::nn::Module {
 public:
  RdnImpl(int64_t in_channels, int64_t features, int64_t blocks, int64_t layers, int64_t growth);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  torch::nn::Conv2d sfe1{nullptr}, sfe2{nullptr}, gff1{nullptr}, gff2{nullptr};
  std::vector<std::vector<torch::nn::Conv2d>> dense_;
  std::vector<torch::nn::Conv2d> lff_;
};
TORCH_MODULE(Rdn);

/// A small U-Net (the paper's comparison extractor): `levels` poolings.
class UNetImpl : public torch::nn::Module {
 public:
  UNetImpl(int64_t in_channels, int64_t features, int64_t levels);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  std::vector<torch::nn::Sequential> down_, up_;
  torch::nn::Sequential bottom_{nullptr};
  int64_t levels_;
};
TORCH_MODULE(UNet);

struct SsanOutput {
  torch::Tensor output, warp0, warp1, mask;  ///< [B, 1, H, W]; mask undefined for mean fusion
};

class SsanImpl : public torch::nn::Module {
 public:
  explicit SsanImpl(const ModelConfig& config);
  /// `outer` [B, 2, H, W]: slices 0 and 2 in [0, 1].
  SsanOutput forward(const torch::Tensor& outer);
  [[nodiscard]] const ModelConfig& config() const { return config_; }
  [[nodiscard]] std::vector<torch::Tensor> gammas() const { return attention->gammas(); }
  [[nodiscard]] int64_t parameter_count() const;

  AttentionLayer attention{nullptr};

 private:
  torch::Tensor extract(int branch, const torch::Tensor& x);
  ModelConfig config_;
  torch::nn::AnyModule extractor0_, extractor1_;
  torch::nn::Conv2d head_{nullptr}, mask_{nullptr};
};
TORCH_MODULE(Ssan);

}  // namespace emt::ssan
