#pragma once
// The attention-aware layer (AAL) of SSAN and the variants it is compared with
// (Wang et al. 2021, PAPER_NOTES.md), behind one interface:
//   none  identity
//   kel   kernel estimation layer: per-pixel separable kernels (SepConv-style)
//         predicted from the features and applied to them
//   sa    dense self-attention over all H x W positions
//   isa   interlaced sparse attention: long-range step, then short-range step
//   aal   two-level: inside each long-range group an ISA at the second level,
//         groups merged, then a short-range step at the first level
//
// One attention step on a grouping of positions:
//   A = softmax_i((Wf X)_i . (Wg X)_j / sqrt(d)),  Z = Wv[(Wh X) A],  Y = gamma Z + X
// with Wf, Wg, Wh: C -> C/k and Wv: C/k -> C as 1x1 convolutions, d = C/2 and
// gamma a learned scalar initialised to 0 (each step starts as the identity).
//
// Groupings (H = Ph Qh, W = Pw Qw):
//   long-range:  Ph Pw groups of Qh Qw positions spaced (Ph, Pw) apart
//   short-range: Qh Qw groups of Ph x Pw neighbouring positions
// Inputs whose size does not divide are zero-padded and cropped back.
#include <array>
#include <cstdint>
#include <string>

#include <torch/torch.h>

#include "emt/ssan/config.hpp"

namespace emt::ssan {

// AttentionKind (none, kel, sa, isa, aal) is declared in config.hpp.

/// Group counts of the decomposition; 0 = choose the minimum-cost split.
struct GroupSplit {
  int ph = 0, pw = 0;    ///< first level: H = ph * qh, W = pw * qw
  int ph2 = 0, pw2 = 0;  ///< second level (aal): qh = ph2 * qh2, qw = pw2 * qw2
};

struct AttentionOptions {
  AttentionOptions(int64_t channels) : channels_(channels) {}
  TORCH_ARG(int64_t, channels);
  /// Key/query width is C / reduction (paper: k in 1, 2, 4, 8).
  TORCH_ARG(int64_t, reduction) = 2;
  TORCH_ARG(AttentionKind, kind) = AttentionKind::kAal;
  TORCH_ARG(GroupSplit, split) = {};
  /// kel: kernel size of the per-pixel separable kernels.
  TORCH_ARG(int64_t, kernel_size) = 5;
};

/// Regrouping used by the attention steps (exposed for tests).
enum class Range { kLong, kShort };
/// [B, C, H, W] -> [B * groups, C, positions per group].
[[nodiscard]] torch::Tensor to_groups(const torch::Tensor& x, Range range, int64_t ph, int64_t pw);
/// Inverse of to_groups for an image of height h, width w.
[[nodiscard]] torch::Tensor from_groups(const torch::Tensor& g, Range range, int64_t ph, int64_t pw, int64_t batch,
                                        int64_t h, int64_t w);

/// How an attention step groups the positions of a [B, C, H, W] image:
/// x.view(view).permute(perm) is [group dims..., C, member dims...], so each
/// step reads and writes the image layout directly (the AAL's second level is
/// one composite permutation, not a detour through per-group images).
struct GroupLayout {
  std::vector<int64_t> view;  ///< index 1 is the channel count, filled per tensor
  std::vector<int64_t> perm;
  int64_t channel_position = 0;  ///< where C lands in perm
  /// One group of all positions.
  static GroupLayout dense(int64_t b, int64_t h, int64_t w);
  /// First level: long- or short-range groups of an H x W image.
  static GroupLayout level1(Range range, int64_t b, int64_t h, int64_t w, int64_t ph, int64_t pw);
  /// Second level (aal): long- or short-range groups inside each first-level long-range group.
  static GroupLayout level2(Range range, int64_t b, int64_t h, int64_t w, int64_t ph, int64_t pw, int64_t ph2, int64_t pw2);
  [[nodiscard]] torch::Tensor group(const torch::Tensor& x) const;  ///< -> [G, C, Q]
  [[nodiscard]] torch::Tensor ungroup(const torch::Tensor& g, int64_t b, int64_t h, int64_t w) const;
};

/// One attention step with its own projections and gamma.
class AttentionStepImpl : public torch::nn::Module {
 public:
  AttentionStepImpl(int64_t channels, int64_t reduction);
  /// Attention within the groups of `x` [B, C, H, W].
  torch::Tensor forward(const torch::Tensor& x, const GroupLayout& layout);
  torch::nn::Conv2d wf{nullptr}, wg{nullptr}, wh{nullptr}, wv{nullptr};
  torch::Tensor gamma;

 private:
  double scale_;
};
TORCH_MODULE(AttentionStep);

/// The layer: any AttentionKind, with padding for sizes that do not divide.
class AttentionLayerImpl : public torch::nn::Module {
 public:
  explicit AttentionLayerImpl(const AttentionOptions& options);
  torch::Tensor forward(const torch::Tensor& x);
  [[nodiscard]] const AttentionOptions& options() const { return options_; }
  /// The split used for an input of h x w (after padding to a size it divides).
  [[nodiscard]] GroupSplit split_for(int64_t h, int64_t w) const;
  /// Every gamma of the layer (logged during training).
  [[nodiscard]] std::vector<torch::Tensor> gammas() const;

  std::vector<AttentionStep> steps;
  torch::nn::Conv2d kel_vertical{nullptr}, kel_horizontal{nullptr};
  torch::Tensor kel_gamma;

 private:
  AttentionOptions options_;
};
TORCH_MODULE(AttentionLayer);

/// Multiply-accumulate counts of the layer for a C x H x W input (analytic),
/// split into projections (1x1 convolutions) and attention (the two batched
/// matrix products per group). See docs/model.md for the paper's formulas.
struct AttentionCost {
  double projections = 0, attention = 0;
  [[nodiscard]] double total() const { return projections + attention; }
};
[[nodiscard]] AttentionCost attention_cost(AttentionKind kind, int64_t c, int64_t h, int64_t w, int64_t reduction,
                                           const GroupSplit& split);
/// The minimum-cost split for h x w (both must have the divisors; see pad_size).
[[nodiscard]] GroupSplit min_cost_split(AttentionKind kind, int64_t c, int64_t h, int64_t w, int64_t reduction);
/// Smallest size >= n that the automatic split can decompose well (multiple of 4).
[[nodiscard]] int64_t pad_size(int64_t n);

}  // namespace emt::ssan
