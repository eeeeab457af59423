#include "emt/ssan/config.hpp"

#include <sstream>

#include <boost/program_options.hpp>

#include "emt/common/atomic_file.hpp"
#include "emt/common/cli.hpp"
#include "emt/common/error.hpp"

namespace emt::ssan {
namespace po = boost::program_options;

SsanConfig load_config(const std::string& path) { return parse_config(read_file(path), path); }

SsanConfig parse_config(const std::string& text, const std::string& origin) {
  SsanConfig c;
  c.text = text;
  ModelConfig& m = c.model;
  LossConfig& l = c.loss;
  po::options_description d;
  d.add_options()
      ("model.extractor", po::value(&m.extractor)->default_value(m.extractor))
      ("model.features", po::value(&m.features)->default_value(m.features))
      ("model.blocks", po::value(&m.blocks)->default_value(m.blocks))
      ("model.layers", po::value(&m.layers)->default_value(m.layers))
      ("model.growth", po::value(&m.growth)->default_value(m.growth))
      ("model.unet_levels", po::value(&m.unet_levels)->default_value(m.unet_levels))
      ("model.attention", po::value(&m.attention)->default_value(m.attention))
      ("model.reduction", po::value(&m.reduction)->default_value(m.reduction))
      ("model.ph", po::value(&m.ph)->default_value(m.ph))
      ("model.pw", po::value(&m.pw)->default_value(m.pw))
      ("model.ph2", po::value(&m.ph2)->default_value(m.ph2))
      ("model.pw2", po::value(&m.pw2)->default_value(m.pw2))
      ("model.kel_kernel", po::value(&m.kel_kernel)->default_value(m.kel_kernel))
      ("model.fusion", po::value(&m.fusion)->default_value(m.fusion))
      ("loss.charbonnier_weight", po::value(&l.charbonnier_weight)->default_value(l.charbonnier_weight))
      ("loss.feature_weight", po::value(&l.feature_weight)->default_value(l.feature_weight))
      ("loss.style_weight", po::value(&l.style_weight)->default_value(l.style_weight))
      ("loss.charbonnier_eps", po::value(&l.charbonnier_eps)->default_value(l.charbonnier_eps))
      ("loss.vgg_weights", po::value(&l.vgg_weights)->default_value(l.vgg_weights))
      ("loss.vgg_fallback", po::value(&l.vgg_fallback)->default_value(l.vgg_fallback));
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
  check(m.extractor == "rdn" || m.extractor == "siamese_rdn" || m.extractor == "unet" || m.extractor == "siamese_unet",
        "model.extractor must be rdn, siamese_rdn, unet or siamese_unet");
  check(m.features >= 2 && m.blocks >= 1 && m.layers >= 1 && m.growth >= 1, "RDN sizes must be positive (features >= 2)");
  check(m.unet_levels >= 1 && m.unet_levels <= 5, "model.unet_levels must be in 1..5");
  check(m.attention == "none" || m.attention == "kel" || m.attention == "sa" || m.attention == "isa" || m.attention == "aal",
        "model.attention must be none, kel, sa, isa or aal");
  check(m.reduction >= 1 && m.features % m.reduction == 0, "model.reduction must divide model.features");
  check(m.fusion == "mask" || m.fusion == "mean", "model.fusion must be mask or mean");
  check(l.vgg_fallback == "random" || l.vgg_fallback == "disable", "loss.vgg_fallback must be random or disable");
  return c;
}

}  // namespace emt::ssan
