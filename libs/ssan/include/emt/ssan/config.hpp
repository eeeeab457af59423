#pragma once
// SSAN model and loss configuration, read from INI (data_specs/ssan_*.ini).
// Torch-free, so tools can parse and validate configs cheaply.
#include <cstdint>
#include <string>

namespace emt::ssan {

struct ModelConfig {
  /// Feature extractor: rdn, siamese_rdn (paper), unet, siamese_unet.
  std::string extractor = "siamese_rdn";
  // RDN: shallow convs to `features` channels (G0), `blocks` residual dense
  // blocks (D) of `layers` conv layers (C) with growth `growth` (G).
  int features = 16, blocks = 2, layers = 3, growth = 8;
  // U-Net: `unet_levels` down/up levels starting at `features` channels.
  int unet_levels = 2;
  /// Attention-aware layer: none, kel, sa, isa, aal.
  std::string attention = "aal";
  int reduction = 2;                        ///< k: key/query width C/k
  int ph = 0, pw = 0, ph2 = 0, pw2 = 0;     ///< group counts; 0 = minimum-cost split
  int kel_kernel = 5;
  /// Fusion of the two candidates: mask (sigmoid weight map, paper) or mean.
  std::string fusion = "mask";
};

struct LossConfig {
  double charbonnier_weight = 1.0;
  double feature_weight = 1.0;        ///< VGG16 feature loss L_f
  double style_weight = 1e6;          ///< style-balance loss L_bs
  double charbonnier_eps = 1e-6;
  /// VGG16 feature weights: a TorchScript file (docs/model.md). Empty or
  /// missing: `vgg_fallback` decides, with a loud warning either way:
  /// disable = no feature or style loss (default: measured better, see
  /// docs/training.md), random = fixed random weights.
  std::string vgg_weights;
  std::string vgg_fallback = "disable";
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
