#pragma once
// SSAN: siamese residual dense network -> attention-aware layer -> two
// candidate frames -> sigmoid-mask fusion (docs/model.md), and the family
// around it that the ablations measure: U-Net extractors with the attention
// at their coarsest level, one or two branches, and outputs that correct the
// linear mean (model.fusion = residual / mask_residual).
//
// Reading of the paper's F(t-1 -> t+1) and F(t+1 -> t-1): each branch sees
// both outer slices, in swapped order ([I0, I2] and [I2, I0]); "siamese"
// means the two branches share their weights. The head of branch i predicts
// a residual on its own slice: warp_i = I_i + head(AAL(F_i)), so an untrained
// network starts as the slices themselves. The fusion mask M = sigmoid(conv(
// [A0, A2])) mixes them: out = M warp0 + (1 - M) warp1.
#include <optional>

#include <torch/torch.h>

#include "emt/ssan/attention.hpp"
#include "emt/ssan/config.hpp"

namespace emt::ssan {

/// Sizes of a residual dense network (ModelConfig's features, blocks, layers, growth).
struct RdnOptions {
  explicit RdnOptions(int64_t in_channels) : in_channels_(in_channels) {}
  TORCH_ARG(int64_t, in_channels);
  TORCH_ARG(int64_t, features) = 16;  ///< G0
  TORCH_ARG(int64_t, blocks) = 2;     ///< D
  TORCH_ARG(int64_t, layers) = 3;     ///< C
  TORCH_ARG(int64_t, growth) = 8;     ///< G
};

/// Residual dense network (Zhang et al. 2018): shallow feature extraction,
/// D residual dense blocks of C layers with growth G, dense feature fusion,
/// global residual.
class RdnImpl : public torch::nn::Module {
 public:
  explicit RdnImpl(const RdnOptions& options);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  torch::nn::Conv2d sfe1{nullptr}, sfe2{nullptr}, gff1{nullptr}, gff2{nullptr};
  std::vector<std::vector<torch::nn::Conv2d>> dense_;
  std::vector<torch::nn::Conv2d> lff_;
};
TORCH_MODULE(Rdn);

/// A U-Net's sizes and its optional bottleneck attention.
struct UNetOptions {
  explicit UNetOptions(int64_t in_channels) : in_channels_(in_channels) {}
  TORCH_ARG(int64_t, in_channels);
  TORCH_ARG(int64_t, features) = 16;  ///< channels at level 0 (features << l at level l)
  TORCH_ARG(int64_t, levels) = 2;     ///< poolings
  /// An attention layer on the coarsest features (its channels must be features << levels).
  TORCH_ARG(std::optional<AttentionOptions>, bottleneck_attention) = std::nullopt;
};

/// A small U-Net (the paper's comparison extractor): `levels` poolings,
/// `features << l` channels at level l. With `bottleneck_attention`, an
/// attention layer runs on the coarsest features, where a position sees
/// 2^levels pixels a side: long range for a sixteenth (levels 2) of the
/// full-resolution cost or less.
class UNetImpl : public torch::nn::Module {
 public:
  explicit UNetImpl(const UNetOptions& options);
  torch::Tensor forward(const torch::Tensor& x);
  /// The bottleneck attention layer; null without one.
  [[nodiscard]] AttentionLayer attention() const { return attention_; }

 private:
  std::vector<torch::nn::Sequential> down_, up_;
  torch::nn::Sequential bottom_{nullptr};
  AttentionLayer attention_{nullptr};
  int64_t levels_;
};
TORCH_MODULE(UNet);

struct SsanOutput {
  /// [B, 1, H, W]. warp0/warp1: the candidates (undefined for residual
  /// fusion); mask: undefined unless fusion is mask or mask_residual;
  /// residual: the learned correction (residual and mask_residual only).
  torch::Tensor output, warp0, warp1, mask, residual;
};

class SsanImpl : public torch::nn::Module {
 public:
  explicit SsanImpl(const ModelConfig& config);
  /// `outer` [B, 2, H, W]: slices 0 and 2 in [0, 1].
  SsanOutput forward(const torch::Tensor& outer);
  [[nodiscard]] const ModelConfig& config() const { return config_; }
  /// The attention layers' learned gammas (every layer, in registration order).
  [[nodiscard]] std::vector<torch::Tensor> gammas() const;
  [[nodiscard]] int64_t parameter_count() const;

  /// The full-resolution attention layer (attention_at = full), or the first
  /// branch's bottleneck attention (attention_at = bottleneck).
  AttentionLayer attention{nullptr};

 private:
  /// Branch features: the extractor, then (attention_at = full) the attention layer.
  torch::Tensor features(int branch, const torch::Tensor& x);
  ModelConfig config_;
  torch::nn::AnyModule extractor0_, extractor1_;
  std::vector<AttentionLayer> attention_layers_;
  torch::nn::Conv2d head_{nullptr}, mask_{nullptr}, residual_{nullptr};
};
TORCH_MODULE(Ssan);

}  // namespace emt::ssan
