#include "emt/ssan/losses.hpp"

#include <filesystem>

#include <torch/script.h>

#include "emt/common/error.hpp"

namespace emt::ssan {

torch::Tensor charbonnier(const torch::Tensor& pred, const torch::Tensor& target, double eps) {
  return torch::sqrt((pred - target).pow(2) + eps * eps).mean();
}

Vgg16FeaturesImpl::Vgg16FeaturesImpl() {
  // (torchvision index, in, out) of every conv up to relu4_3.
  const int spec[10][3] = {{0, 3, 64},    {2, 64, 64},   {5, 64, 128},  {7, 128, 128}, {10, 128, 256},
                           {12, 256, 256}, {14, 256, 256}, {17, 256, 512}, {19, 512, 512}, {21, 512, 512}};
  for (const auto& s : spec) {
    auto c = register_module(std::to_string(s[0]), torch::nn::Conv2d(torch::nn::Conv2dOptions(s[1], s[2], 3).padding(1)));
    convs_.emplace_back(s[0], c);
  }
}

std::vector<torch::Tensor> Vgg16FeaturesImpl::forward(const torch::Tensor& x) {
  std::vector<torch::Tensor> out;
  torch::Tensor y = x;
  for (auto& [index, c] : convs_) {
    if (index == 5 || index == 10 || index == 17) y = torch::max_pool2d(y, 2, 2);
    y = torch::relu(c->forward(y));
    if (index == 2 || index == 7 || index == 14 || index == 21) out.push_back(y);  // relu1_2, relu2_2, relu3_3, relu4_3
  }
  return out;
}

void Vgg16FeaturesImpl::randomize(std::uint64_t seed) {
  torch::NoGradGuard no_grad;
  torch::manual_seed(seed);
  for (auto& [index, c] : convs_) {
    torch::nn::init::kaiming_normal_(c->weight, 0.0, torch::kFanIn, torch::kReLU);
    torch::nn::init::zeros_(c->bias);
  }
}

void Vgg16FeaturesImpl::load_torchscript(const std::string& path) {
  if (!std::filesystem::exists(path)) throw Error(ErrorKind::kNotFound, "VGG16 weights file not found", path);
  torch::jit::script::Module m;
  try {
    m = torch::jit::load(path, torch::kCPU);
  } catch (const c10::Error& e) {
    throw Error(ErrorKind::kDataLoss, "not a TorchScript file of VGG16 features", path);
  }
  std::map<std::string, torch::Tensor> source;
  for (const auto& p : m.named_parameters()) source[p.name] = p.value;
  torch::NoGradGuard no_grad;
  for (auto& p : named_parameters()) {
    const auto it = source.find(p.key());
    if (it == source.end()) throw Error(ErrorKind::kInvalidData, "VGG16 weights file lacks parameter " + p.key(), path);
    if (!it->second.sizes().equals(p.value().sizes())) {
      throw Error(ErrorKind::kInvalidData, "VGG16 parameter " + p.key() + " has the wrong shape", path);
    }
    p.value().copy_(it->second);
  }
}

torch::Tensor gram(const torch::Tensor& f) {
  const int64_t b = f.size(0), c = f.size(1), n = f.size(2) * f.size(3);
  const torch::Tensor v = f.reshape({b, c, n});
  return torch::bmm(v, v.transpose(1, 2)) / static_cast<double>(c * n);
}

torch::Tensor to_vgg_input(const torch::Tensor& grey) {
  const auto mean = torch::tensor({0.485, 0.456, 0.406}, grey.options()).view({1, 3, 1, 1});
  const auto std = torch::tensor({0.229, 0.224, 0.225}, grey.options()).view({1, 3, 1, 1});
  return (grey.expand({grey.size(0), 3, grey.size(2), grey.size(3)}) - mean) / std;
}

SsanLoss::SsanLoss(const LossConfig& config, const std::function<void(const std::string&)>& warn) : config_(config) {
  const bool needs_vgg = config.feature_weight != 0 || config.style_weight != 0;
  if (!needs_vgg) {
    vgg_source_ = "disabled";
    return;
  }
  if (!config.vgg_weights.empty() && std::filesystem::exists(config.vgg_weights)) {
    vgg_ = Vgg16Features();
    vgg_->load_torchscript(config.vgg_weights);
    vgg_source_ = "file:" + config.vgg_weights;
  } else {
    const std::string why = config.vgg_weights.empty() ? "no loss.vgg_weights given" : "loss.vgg_weights not found: " + config.vgg_weights;
    if (config.vgg_fallback == VggFallback::kDisable) {
      vgg_source_ = "disabled";
      if (warn) warn("VGG16 ImageNet weights unavailable (" + why + "): feature and style losses DISABLED (loss.vgg_fallback = disable)");
    } else {
      vgg_ = Vgg16Features();
      vgg_->randomize(20210101);  // fixed: the same random VGG in every run
      vgg_source_ = "random-fixed (" + why + ")";
      if (warn) warn("VGG16 ImageNet weights unavailable (" + why + "): feature and style losses use FIXED RANDOM VGG16 weights; see docs/model.md to supply real ones");
    }
  }
  if (vgg_) {
    vgg_->eval();
    for (auto& p : vgg_->parameters()) p.set_requires_grad(false);
  }
}

void SsanLoss::to(torch::Device device) {
  if (vgg_) vgg_->to(device);
}

torch::Tensor SsanLoss::style_distance(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  torch::Tensor s = torch::zeros({}, a.front().options());
  // Mean over the C x C entries (torch's mse_loss on Gram matrices, the
  // convention the paper's 1e6 weight comes with); a sum would weigh relu4_3
  // 512^2 times and make the term 4,000-260,000x larger.
  for (std::size_t j = 0; j < a.size(); ++j) s = s + (gram(a[j]) - gram(b[j])).pow(2).mean();
  return s;
}

torch::Tensor SsanLoss::style_balance(const std::array<torch::Tensor, 3>& pred_to, const std::array<torch::Tensor, 3>& gt_to) {
  const double beta[3] = {0.1, 1.0, 0.1};
  torch::Tensor total = torch::zeros({}, pred_to[0].options());
  for (int j = 0; j < 3; ++j) {
    // sign(S(pred, I_j) - S(gt, I_j)) with sign(0) = +1: the middle term (gt to itself) always pulls.
    const torch::Tensor diff = (pred_to[j] - gt_to[j]).detach();
    const torch::Tensor sign = torch::where(diff >= 0, torch::ones_like(diff), -torch::ones_like(diff));
    total = total + beta[j] * sign * pred_to[j];
  }
  return total;
}

torch::Tensor gradient_charbonnier(const torch::Tensor& pred, const torch::Tensor& target, double eps) {
  auto dx = [](const torch::Tensor& t) { return t.narrow(3, 1, t.size(3) - 1) - t.narrow(3, 0, t.size(3) - 1); };
  auto dy = [](const torch::Tensor& t) { return t.narrow(2, 1, t.size(2) - 1) - t.narrow(2, 0, t.size(2) - 1); };
  return 0.5 * (charbonnier(dx(pred), dx(target), eps) + charbonnier(dy(pred), dy(target), eps));
}

torch::Tensor texture_energy(const torch::Tensor& images) {
  TORCH_CHECK(images.dim() == 4 && images.size(2) >= 4 && images.size(3) >= 4, "texture_energy needs [B, C, H >= 4, W >= 4]");
  std::vector<torch::Tensor> energies;
  torch::Tensor x = images;
  for (int scale = 0; scale < 2; ++scale) {
    const auto h = x.size(2), w = x.size(3);
    const torch::Tensor dx = x.narrow(3, 1, w - 1) - x.narrow(3, 0, w - 1);
    const torch::Tensor dy = x.narrow(2, 1, h - 1) - x.narrow(2, 0, h - 1);
    const torch::Tensor inner = x.narrow(2, 1, h - 2).narrow(3, 1, w - 2);
    const torch::Tensor lap = x.narrow(2, 0, h - 2).narrow(3, 1, w - 2) + x.narrow(2, 2, h - 2).narrow(3, 1, w - 2) +
                              x.narrow(2, 1, h - 2).narrow(3, 0, w - 2) + x.narrow(2, 1, h - 2).narrow(3, 2, w - 2) - 4 * inner;
    for (const auto& r : {dx, dy, lap}) energies.push_back(r.pow(2).flatten(1).mean(1));
    x = torch::avg_pool2d(x, 2);
  }
  return torch::stack(energies, 1);
}

torch::Tensor texture_loss(const torch::Tensor& pred, const torch::Tensor& target) {
  return (torch::log(texture_energy(pred) + 1e-8) - torch::log(texture_energy(target) + 1e-8)).abs().mean();
}

LossTerms SsanLoss::operator()(const torch::Tensor& pred, const torch::Tensor& gt, const torch::Tensor& outer) {
  LossTerms t;
  t.charbonnier = charbonnier(pred, gt, config_.charbonnier_eps);
  t.feature = torch::zeros({}, pred.options());
  t.gradient = config_.gradient_weight != 0 ? gradient_charbonnier(pred, gt, config_.charbonnier_eps) : torch::zeros({}, pred.options());
  t.style_balance = torch::zeros({}, pred.options());
  t.texture = config_.texture_weight != 0 ? texture_loss(pred, gt) : torch::zeros({}, pred.options());
  if (vgg_) {
    const auto fp = vgg_->forward(to_vgg_input(pred));
    // The three references (gt, slice 0, slice 2) need no gradient: one VGG
    // pass over them stacked along the batch instead of three.
    const int64_t b = pred.size(0);
    std::array<std::vector<torch::Tensor>, 3> refs;  // gt, slice 0, slice 2
    {
      torch::NoGradGuard no_grad;
      const bool need_outer = config_.style_weight != 0;
      const torch::Tensor stacked = need_outer ? torch::cat({gt, outer.narrow(1, 0, 1), outer.narrow(1, 1, 1)}, 0) : gt;
      for (const auto& f : vgg_->forward(to_vgg_input(stacked))) {
        for (int r = 0; r < (need_outer ? 3 : 1); ++r) refs[static_cast<std::size_t>(r)].push_back(f.narrow(0, r * b, b));
      }
    }
    const auto& fg = refs[0];
    for (std::size_t j = 0; j < fp.size(); ++j) t.feature = t.feature + (fp[j] - fg[j]).pow(2).mean();
    if (config_.style_weight != 0) {
      const std::array<const std::vector<torch::Tensor>*, 3> slices{&refs[1], &refs[0], &refs[2]};
      std::array<torch::Tensor, 3> pred_to, gt_to;
      for (int j = 0; j < 3; ++j) {
        pred_to[static_cast<std::size_t>(j)] = style_distance(fp, *slices[static_cast<std::size_t>(j)]);
        torch::NoGradGuard no_grad;
        gt_to[static_cast<std::size_t>(j)] = style_distance(fg, *slices[static_cast<std::size_t>(j)]);
      }
      t.style_balance = style_balance(pred_to, gt_to);
    }
  }
  t.total = config_.style_weight * t.style_balance + config_.feature_weight * t.feature + config_.charbonnier_weight * t.charbonnier +
            config_.gradient_weight * t.gradient + config_.texture_weight * t.texture;
  return t;
}

}  // namespace emt::ssan
