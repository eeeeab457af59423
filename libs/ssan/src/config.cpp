#include "emt/ssan/config.hpp"

#include <cmath>
#include <sstream>

#include <boost/program_options.hpp>

#include "emt/common/atomic_file.hpp"
#include "emt/common/cli.hpp"
#include "emt/common/error.hpp"

namespace emt::ssan {
namespace po = boost::program_options;

Extractor parse_extractor(const std::string& name) {
  if (name == "rdn") return Extractor::kRdn;
  if (name == "siamese_rdn") return Extractor::kSiameseRdn;
  if (name == "unet") return Extractor::kUNet;
  if (name == "siamese_unet") return Extractor::kSiameseUNet;
  throw Error(ErrorKind::kInvalidArgument, "model.extractor must be rdn, siamese_rdn, unet or siamese_unet (got '" + name + "')");
}

std::string to_string(Extractor e) {
  switch (e) {
    case Extractor::kRdn: return "rdn";
    case Extractor::kSiameseRdn: return "siamese_rdn";
    case Extractor::kUNet: return "unet";
    case Extractor::kSiameseUNet: return "siamese_unet";
  }
  return "?";
}

bool is_unet(Extractor e) { return e == Extractor::kUNet || e == Extractor::kSiameseUNet; }
bool is_siamese(Extractor e) { return e == Extractor::kSiameseRdn || e == Extractor::kSiameseUNet; }

const char* to_string(AttentionKind kind) noexcept {
  switch (kind) {
    case AttentionKind::kNone: return "none";
    case AttentionKind::kKel: return "kel";
    case AttentionKind::kSa: return "sa";
    case AttentionKind::kIsa: return "isa";
    case AttentionKind::kAal: return "aal";
  }
  return "unknown";
}

AttentionKind parse_attention_kind(const std::string& name) {
  for (AttentionKind k : {AttentionKind::kNone, AttentionKind::kKel, AttentionKind::kSa, AttentionKind::kIsa, AttentionKind::kAal}) {
    if (name == to_string(k)) return k;
  }
  throw Error(ErrorKind::kInvalidArgument, "model.attention must be none, kel, sa, isa or aal (got '" + name + "')");
}

VggFallback parse_vgg_fallback(const std::string& name) {
  if (name == "disable") return VggFallback::kDisable;
  if (name == "random") return VggFallback::kRandom;
  throw Error(ErrorKind::kInvalidArgument, "loss.vgg_fallback must be random or disable (got '" + name + "')");
}

std::string to_string(VggFallback f) { return f == VggFallback::kRandom ? "random" : "disable"; }

Fusion parse_fusion(const std::string& name) {
  if (name == "mask") return Fusion::kMask;
  if (name == "mean") return Fusion::kMean;
  if (name == "residual") return Fusion::kResidual;
  if (name == "mask_residual") return Fusion::kMaskResidual;
  throw Error(ErrorKind::kInvalidArgument, "model.fusion must be mask, mean, residual or mask_residual (got '" + name + "')");
}

std::string to_string(Fusion f) {
  switch (f) {
    case Fusion::kMask: return "mask";
    case Fusion::kMean: return "mean";
    case Fusion::kResidual: return "residual";
    case Fusion::kMaskResidual: return "mask_residual";
  }
  return "?";
}

AttentionPlacement parse_attention_placement(const std::string& name) {
  if (name == "full") return AttentionPlacement::kFull;
  if (name == "bottleneck") return AttentionPlacement::kBottleneck;
  throw Error(ErrorKind::kInvalidArgument, "model.attention_at must be full or bottleneck (got '" + name + "')");
}

std::string to_string(AttentionPlacement p) {
  switch (p) {
    case AttentionPlacement::kFull: return "full";
    case AttentionPlacement::kBottleneck: return "bottleneck";
  }
  return "?";
}

SsanConfig load_config(const std::string& path) { return parse_config(read_file(path), path); }

SsanConfig parse_config(const std::string& text, const std::string& origin) {
  SsanConfig c;
  c.text = text;
  ModelConfig& m = c.model;
  LossConfig& l = c.loss;
  // Choices are read as text and parsed into their enums below.
  std::string extractor = to_string(m.extractor), attention = to_string(m.attention), fusion = to_string(m.fusion),
              attention_at = to_string(m.attention_at), vgg_fallback = to_string(l.vgg_fallback);
  po::options_description d;
  d.add_options()
      ("model.extractor", po::value(&extractor)->default_value(extractor))
      ("model.features", po::value(&m.features)->default_value(m.features))
      ("model.blocks", po::value(&m.blocks)->default_value(m.blocks))
      ("model.layers", po::value(&m.layers)->default_value(m.layers))
      ("model.growth", po::value(&m.growth)->default_value(m.growth))
      ("model.unet_levels", po::value(&m.unet_levels)->default_value(m.unet_levels))
      ("model.attention", po::value(&attention)->default_value(attention))
      ("model.reduction", po::value(&m.reduction)->default_value(m.reduction))
      ("model.ph", po::value(&m.ph)->default_value(m.ph))
      ("model.pw", po::value(&m.pw)->default_value(m.pw))
      ("model.ph2", po::value(&m.ph2)->default_value(m.ph2))
      ("model.pw2", po::value(&m.pw2)->default_value(m.pw2))
      ("model.kel_kernel", po::value(&m.kel_kernel)->default_value(m.kel_kernel))
      ("model.attention_at", po::value(&attention_at)->default_value(attention_at))
      ("model.fusion", po::value(&fusion)->default_value(fusion))
      ("model.branches", po::value(&m.branches)->default_value(m.branches))
      ("loss.charbonnier_weight", po::value(&l.charbonnier_weight)->default_value(l.charbonnier_weight))
      ("loss.feature_weight", po::value(&l.feature_weight)->default_value(l.feature_weight))
      ("loss.style_weight", po::value(&l.style_weight)->default_value(l.style_weight))
      ("loss.charbonnier_eps", po::value(&l.charbonnier_eps)->default_value(l.charbonnier_eps))
      ("loss.gradient_weight", po::value(&l.gradient_weight)->default_value(l.gradient_weight))
      ("loss.texture_weight", po::value(&l.texture_weight)->default_value(l.texture_weight))
      ("loss.vgg_weights", po::value(&l.vgg_weights)->default_value(l.vgg_weights))
      ("loss.vgg_fallback", po::value(&vgg_fallback)->default_value(vgg_fallback));
  try {
    std::istringstream in(text);
    po::variables_map vm;
    // Unregistered keys are allowed: training sections ([train]) live in the same file.
    po::store(po::parse_config_file(in, d, /*allow_unregistered=*/true), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    throw Error(ErrorKind::kInvalidArgument, "bad model config: " + po_error_message(e), origin);
  }
  auto check = [&](bool ok, const std::string& what) {
    if (!ok) throw Error(ErrorKind::kInvalidArgument, "bad model config: " + what, origin);
  };
  check(m.features >= 2 && m.blocks >= 1 && m.layers >= 1 && m.growth >= 1, "RDN sizes must be positive (features >= 2)");
  check(m.unet_levels >= 1 && m.unet_levels <= 5, "model.unet_levels must be in 1..5");
  check(m.reduction >= 1 && m.features % m.reduction == 0, "model.reduction must divide model.features");
  try {
    m.extractor = parse_extractor(extractor);
    m.attention = parse_attention_kind(attention);
    m.fusion = parse_fusion(fusion);
    m.attention_at = parse_attention_placement(attention_at);
    l.vgg_fallback = parse_vgg_fallback(vgg_fallback);
  } catch (const Error& e) {
    throw Error(ErrorKind::kInvalidArgument, "bad model config: " + e.message(), origin);
  }
  check(m.attention_at == AttentionPlacement::kFull || is_unet(m.extractor), "model.attention_at = bottleneck needs a unet or siamese_unet extractor");
  check(m.branches == 1 || m.branches == 2, "model.branches must be 1 or 2");
  check(m.branches == 2 || m.fusion == Fusion::kResidual, "model.branches = 1 needs model.fusion = residual (mask and mean fuse two branches)");
  check(m.branches == 2 || !is_siamese(m.extractor), "model.branches = 1 has nothing to share: use extractor unet or rdn");
  auto finite_nonneg = [](double v) { return std::isfinite(v) && v >= 0; };
  check(finite_nonneg(l.charbonnier_weight) && finite_nonneg(l.feature_weight) && finite_nonneg(l.style_weight) && finite_nonneg(l.gradient_weight) &&
            finite_nonneg(l.texture_weight),
        "loss weights must be finite and >= 0");
  check(std::isfinite(l.charbonnier_eps) && l.charbonnier_eps > 0, "loss.charbonnier_eps must be > 0");
  return c;
}

}  // namespace emt::ssan
