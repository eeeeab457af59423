#include "emt/ssan/model.hpp"

namespace emt::ssan {
namespace F = torch::nn::functional;

namespace {
torch::nn::Conv2d conv(int64_t in, int64_t out, int64_t k) {
  return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, k).padding(k / 2));
}
}  // namespace

RdnImpl::RdnImpl(const RdnOptions& o) {
  const int64_t in = o.in_channels(), g0 = o.features(), d = o.blocks(), c = o.layers(), g = o.growth();
  TORCH_CHECK(in >= 1 && g0 >= 1 && d >= 1 && c >= 1 && g >= 1, "RDN sizes must be positive");
  sfe1 = register_module("sfe1", conv(in, g0, 3));
  sfe2 = register_module("sfe2", conv(g0, g0, 3));
  for (int64_t b = 0; b < d; ++b) {
    std::vector<torch::nn::Conv2d> layers;
    for (int64_t i = 0; i < c; ++i) {
      layers.push_back(register_module("rdb" + std::to_string(b) + "_conv" + std::to_string(i), conv(g0 + i * g, g, 3)));
    }
    dense_.push_back(layers);
    lff_.push_back(register_module("rdb" + std::to_string(b) + "_lff", conv(g0 + c * g, g0, 1)));
  }
  gff1 = register_module("gff1", conv(d * g0, g0, 1));
  gff2 = register_module("gff2", conv(g0, g0, 3));
}

torch::Tensor RdnImpl::forward(const torch::Tensor& x) {
  const torch::Tensor f1 = sfe1->forward(x);
  torch::Tensor f = sfe2->forward(f1);
  std::vector<torch::Tensor> block_outputs;
  for (std::size_t b = 0; b < dense_.size(); ++b) {
    std::vector<torch::Tensor> features{f};
    for (auto& layer : dense_[b]) features.push_back(torch::relu(layer->forward(torch::cat(features, 1))));
    f = f + lff_[b]->forward(torch::cat(features, 1));  // local feature fusion + local residual
    block_outputs.push_back(f);
  }
  return f1 + gff2->forward(gff1->forward(torch::cat(block_outputs, 1)));  // dense feature fusion + global residual
}

namespace {
torch::nn::Sequential conv_block(int64_t in, int64_t out) {
  return torch::nn::Sequential(conv(in, out, 3), torch::nn::ReLU(), conv(out, out, 3), torch::nn::ReLU());
}
}  // namespace

UNetImpl::UNetImpl(const UNetOptions& o) : levels_(o.levels()) {
  const int64_t in = o.in_channels(), features = o.features(), levels = o.levels();
  const std::optional<AttentionOptions>& bottleneck_attention = o.bottleneck_attention();
  TORCH_CHECK(in >= 1 && features >= 1, "U-Net sizes must be positive");
  TORCH_CHECK(levels >= 1, "U-Net needs at least one level");
  int64_t ch = in;
  for (int64_t l = 0; l < levels; ++l) {
    down_.push_back(register_module("down" + std::to_string(l), conv_block(ch, features << l)));
    ch = features << l;
  }
  bottom_ = register_module("bottom", conv_block(ch, features << levels));
  if (bottleneck_attention) {
    TORCH_CHECK(bottleneck_attention->channels() == (features << levels), "U-Net bottleneck attention needs ", features << levels, " channels, got ",
                bottleneck_attention->channels());
    attention_ = register_module("attention", AttentionLayer(*bottleneck_attention));
  }
  for (int64_t l = levels - 1; l >= 0; --l) {
    up_.push_back(register_module("up" + std::to_string(l), conv_block((features << (l + 1)) + (features << l), features << l)));
  }
}

torch::Tensor UNetImpl::forward(const torch::Tensor& x) {
  // Pad to a multiple of 2^levels, crop back at the end.
  const int64_t m = int64_t{1} << levels_, h = x.size(2), w = x.size(3);
  const int64_t hp = (h + m - 1) / m * m, wp = (w + m - 1) / m * m;
  torch::Tensor y = (hp != h || wp != w) ? F::pad(x, F::PadFuncOptions({0, wp - w, 0, hp - h}).mode(torch::kReplicate)) : x;
  std::vector<torch::Tensor> skips;
  for (auto& d : down_) {
    y = d->forward(y);
    skips.push_back(y);
    y = F::max_pool2d(y, F::MaxPool2dFuncOptions(2));
  }
  y = bottom_->forward(y);
  if (attention_) y = attention_->forward(y);
  for (std::size_t i = 0; i < up_.size(); ++i) {
    const torch::Tensor& skip = skips[skips.size() - 1 - i];
    y = F::interpolate(y, F::InterpolateFuncOptions().size(std::vector<int64_t>{skip.size(2), skip.size(3)}).mode(torch::kBilinear).align_corners(false));
    y = up_[i]->forward(torch::cat({y, skip}, 1));
  }
  using torch::indexing::Slice;
  return (hp != h || wp != w) ? y.index({Slice(), Slice(), Slice(0, h), Slice(0, w)}) : y;
}

SsanImpl::SsanImpl(const ModelConfig& c) : config_(c) {
  TORCH_CHECK(c.branches == 1 || c.branches == 2, "SSAN has one or two branches, got ", c.branches);
  TORCH_CHECK(c.branches == 2 || c.fusion == Fusion::kResidual, "one branch needs residual fusion");
  const bool unet = is_unet(c.extractor);
  const bool siamese = is_siamese(c.extractor);
  const bool at_bottleneck = c.attention_at == AttentionPlacement::kBottleneck;
  TORCH_CHECK(!at_bottleneck || unet, "bottleneck attention needs a U-Net extractor");
  auto attention_options = [&](int64_t channels) {
    AttentionOptions ao(channels);
    ao.reduction(c.reduction).kind(c.attention).split({c.ph, c.pw, c.ph2, c.pw2}).kernel_size(c.kel_kernel);
    return ao;
  };
  auto make = [&]() -> torch::nn::AnyModule {
    if (unet) {
      std::optional<AttentionOptions> bottleneck;
      if (at_bottleneck) bottleneck = attention_options(int64_t{c.features} << c.unet_levels);
      UNet net(UNetOptions(2).features(c.features).levels(c.unet_levels).bottleneck_attention(bottleneck));
      if (at_bottleneck) attention_layers_.push_back(net->attention());
      return torch::nn::AnyModule(net);
    }
    return torch::nn::AnyModule(Rdn(RdnOptions(2).features(c.features).blocks(c.blocks).layers(c.layers).growth(c.growth)));
  };
  extractor0_ = make();
  register_module("extractor0", extractor0_.ptr());
  if (!siamese && c.branches == 2) {
    extractor1_ = make();
    register_module("extractor1", extractor1_.ptr());
  }
  if (at_bottleneck) {
    attention = attention_layers_.front();
  } else {
    attention = register_module("attention", AttentionLayer(attention_options(c.features)));
    attention_layers_.push_back(attention);
  }
  auto zero = [](torch::nn::Conv2d& layer) {
    torch::NoGradGuard no_grad;
    layer->weight.zero_();
    layer->bias.zero_();
  };
  switch (c.fusion) {
    case Fusion::kMask:
    case Fusion::kMean:
      head_ = register_module("head", conv(c.features, 1, 3));
      if (c.fusion == Fusion::kMask) mask_ = register_module("mask", conv(2 * c.features, 1, 3));
      break;
    case Fusion::kResidual:
      // Zero at step 0: the untrained model is linear interpolation, and
      // training only has to learn what the mean gets wrong.
      residual_ = register_module("residual", conv(c.features, 1, 3));
      zero(residual_);
      break;
    case Fusion::kMaskResidual:
      head_ = register_module("head", conv(c.features, 1, 3));
      mask_ = register_module("mask", conv(2 * c.features, 1, 3));
      residual_ = register_module("residual", conv(2 * c.features, 1, 3));
      zero(head_);  // candidates start as the slices themselves, the mask near 0.5: close to linear
      zero(residual_);
      break;
  }
}

torch::Tensor SsanImpl::features(int branch, const torch::Tensor& x) {
  torch::Tensor f = (branch == 1 && !extractor1_.is_empty()) ? extractor1_.forward(x) : extractor0_.forward(x);
  if (config_.attention_at == AttentionPlacement::kFull) f = attention->forward(f);
  return f;
}

SsanOutput SsanImpl::forward(const torch::Tensor& outer) {
  TORCH_CHECK(outer.dim() == 4 && outer.size(1) == 2, "SSAN expects [B, 2, H, W] (slices 0 and 2), got ", outer.sizes());
  const torch::Tensor i0 = outer.narrow(1, 0, 1), i2 = outer.narrow(1, 1, 1);
  SsanOutput out;
  const torch::Tensor a0 = features(0, outer);
  if (config_.branches == 1) {
    out.residual = residual_->forward(a0);
    out.output = 0.5 * (i0 + i2) + out.residual;
    return out;
  }
  // Branch 0 sees (I0, I2), branch 1 sees (I2, I0): F(t-1 -> t+1) and F(t+1 -> t-1).
  const torch::Tensor a1 = features(1, torch::cat({i2, i0}, 1));
  switch (config_.fusion) {
    case Fusion::kResidual:
      // The shared head applied to both orders: with siamese weights the
      // correction is symmetric in time by construction.
      out.residual = 0.5 * (residual_->forward(a0) + residual_->forward(a1));
      out.output = 0.5 * (i0 + i2) + out.residual;
      break;
    case Fusion::kMean:
      out.warp0 = i0 + head_->forward(a0);
      out.warp1 = i2 + head_->forward(a1);
      out.output = 0.5 * (out.warp0 + out.warp1);
      break;
    case Fusion::kMask:
    case Fusion::kMaskResidual: {
      out.warp0 = i0 + head_->forward(a0);
      out.warp1 = i2 + head_->forward(a1);
      const torch::Tensor both = torch::cat({a0, a1}, 1);
      out.mask = torch::sigmoid(mask_->forward(both));
      out.output = out.mask * out.warp0 + (1 - out.mask) * out.warp1;
      if (residual_) {
        out.residual = residual_->forward(both);
        out.output = out.output + out.residual;
      }
      break;
    }
  }
  return out;
}

std::vector<torch::Tensor> SsanImpl::gammas() const {
  std::vector<torch::Tensor> all;
  for (const auto& layer : attention_layers_) {
    for (auto& g : layer->gammas()) all.push_back(g);
  }
  return all;
}

int64_t SsanImpl::parameter_count() const {
  int64_t n = 0;
  for (const auto& p : parameters()) n += p.numel();
  return n;
}

}  // namespace emt::ssan
