#pragma once
// SSAN model and loss configuration, read from INI (data_specs/ssan_*.ini).
// Torch-free, so tools can parse and validate configs cheaply.
#include <cstdint>
#include <string>

namespace emt::ssan {

/// The feature extractor.
enum class Extractor {
  kRdn,          ///< residual dense network, one per branch
  kSiameseRdn,   ///< one RDN shared by both branches (the paper)
  kUNet,         ///< U-Net, one per branch
  kSiameseUNet,  ///< one U-Net shared by both branches
};
[[nodiscard]] Extractor parse_extractor(const std::string& name);
[[nodiscard]] std::string to_string(Extractor e);
[[nodiscard]] bool is_unet(Extractor e);
[[nodiscard]] bool is_siamese(Extractor e);

/// The attention-aware layer's variant (attention.hpp): none, kernel
/// estimation (KEL), full self-attention (SA), interlaced sparse (ISA), the
/// paper's attention-aware layer (AAL).
enum class AttentionKind { kNone, kKel, kSa, kIsa, kAal };
[[nodiscard]] const char* to_string(AttentionKind kind) noexcept;
[[nodiscard]] AttentionKind parse_attention_kind(const std::string& name);

/// What the loss does without ImageNet VGG16 weights.
enum class VggFallback {
  kDisable,  ///< no feature or style loss
  kRandom,   ///< fixed random VGG16 weights
};
[[nodiscard]] VggFallback parse_vgg_fallback(const std::string& name);
[[nodiscard]] std::string to_string(VggFallback f);

/// How the network's output is formed from the two branches' features.
enum class Fusion {
  kMask,          ///< sigmoid weight map mixing two warped candidates (the paper)
  kMean,          ///< the two candidates averaged
  kResidual,      ///< the linear mean of slices 0 and 2 plus a learned residual (zero at step 0)
  kMaskResidual,  ///< mask fusion of the candidates plus a learned residual (both heads zero at step 0)
};
[[nodiscard]] Fusion parse_fusion(const std::string& name);
[[nodiscard]] std::string to_string(Fusion f);

/// Where the attention-aware layer runs.
enum class AttentionPlacement {
  kFull,        ///< on the extractor's full-resolution output (the paper)
  kBottleneck,  ///< inside a U-Net extractor, at its coarsest level (2^levels smaller in each axis)
};
[[nodiscard]] AttentionPlacement parse_attention_placement(const std::string& name);
[[nodiscard]] std::string to_string(AttentionPlacement p);

struct ModelConfig {
  Extractor extractor = Extractor::kSiameseRdn;
  // RDN: shallow convs to `features` channels (G0), `blocks` residual dense
  // blocks (D) of `layers` conv layers (C) with growth `growth` (G).
  int features = 16, blocks = 2, layers = 3, growth = 8;
  // U-Net: `unet_levels` down/up levels starting at `features` channels.
  int unet_levels = 2;
  AttentionKind attention = AttentionKind::kAal;
  int reduction = 2;                        ///< k: key/query width C/k
  int ph = 0, pw = 0, ph2 = 0, pw2 = 0;     ///< group counts; 0 = minimum-cost split
  int kel_kernel = 5;
  AttentionPlacement attention_at = AttentionPlacement::kFull;
  Fusion fusion = Fusion::kMask;
  /// 2: two passes, over [I0, I2] and [I2, I0] (the paper's F(t-1 -> t+1) and
  /// F(t+1 -> t-1)); 1: one pass over [I0, I2] (half the cost; needs
  /// fusion = residual, the temporal-swap augmentation keeps it symmetric).
  int branches = 2;
};

struct LossConfig {
  double charbonnier_weight = 1.0;
  double feature_weight = 1.0;        ///< VGG16 feature loss L_f
  double style_weight = 1e6;          ///< style-balance loss L_bs
  double charbonnier_eps = 1e-6;
  /// Charbonnier distance of the images' finite differences (x and y): a
  /// gradient-domain term that penalises the loss of edges a pixel loss
  /// averages away (not in the paper; 0 = off).
  double gradient_weight = 0.0;
  /// Texture-energy matching: |log E_f(pred) - log E_f(gt)| averaged over
  /// fixed derivative filters f (x, y, Laplacian, at full and half
  /// resolution), E_f the mean squared response of one image. It charges for
  /// missing (or extra) fine structure without asking where it is, so unlike
  /// a pixel or gradient loss it does not reward averaging uncertain detail
  /// away: a style term whose features need no download (not in the paper; 0 = off).
  double texture_weight = 0.0;
  /// VGG16 feature weights: a TorchScript file (docs/model.md). Empty or
  /// missing: `vgg_fallback` decides, with a loud warning either way:
  /// disable = no feature or style loss (default: measured better, see
  /// docs/training.md), random = fixed random weights.
  std::string vgg_weights;
  VggFallback vgg_fallback = VggFallback::kDisable;
};

struct SsanConfig {
  ModelConfig model;
  LossConfig loss;
  std::string text;  ///< the INI as given (stored in checkpoints)
};

/// Parses a config file; throws emt::Error naming the file and key.
[[nodiscard]] SsanConfig load_config(const std::string& path);
[[nodiscard]] SsanConfig parse_config(const std::string& text, const std::string& origin);

}  // namespace emt::ssan
