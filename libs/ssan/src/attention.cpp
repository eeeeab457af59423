#include "emt/ssan/attention.hpp"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "emt/common/error.hpp"

namespace emt::ssan {

GroupLayout GroupLayout::dense(int64_t b, int64_t h, int64_t w) { return {{b, 0, h * w}, {0, 1, 2}, 1}; }

GroupLayout GroupLayout::level1(Range range, int64_t b, int64_t h, int64_t w, int64_t ph, int64_t pw) {
  TORCH_CHECK(ph > 0 && pw > 0 && h % ph == 0 && w % pw == 0, "group split ", ph, "x", pw, " does not divide ", h, "x", w);
  // dims: 0 B, 1 C, 2 qh, 3 ph, 4 qw, 5 pw
  GroupLayout l{{b, 0, h / ph, ph, w / pw, pw}, {}, 3};
  l.perm = range == Range::kLong ? std::vector<int64_t>{0, 3, 5, 1, 2, 4} : std::vector<int64_t>{0, 2, 4, 1, 3, 5};
  return l;
}

GroupLayout GroupLayout::level2(Range range, int64_t b, int64_t h, int64_t w, int64_t ph, int64_t pw, int64_t ph2, int64_t pw2) {
  TORCH_CHECK(ph > 0 && pw > 0 && ph2 > 0 && pw2 > 0 && h % (ph * ph2) == 0 && w % (pw * pw2) == 0, "group split ", ph, "x", pw,
              " / ", ph2, "x", pw2, " does not divide ", h, "x", w);
  // y = (iqh2 * ph2 + iph2) * ph + iph; dims: 0 B, 1 C, 2 qh2, 3 ph2, 4 ph, 5 qw2, 6 pw2, 7 pw
  GroupLayout l{{b, 0, h / (ph * ph2), ph2, ph, w / (pw * pw2), pw2, pw}, {}, 5};
  // Inside first-level long-range group (ph, pw): long = members (qh2, qw2), short = members (ph2, pw2).
  l.perm = range == Range::kLong ? std::vector<int64_t>{0, 4, 7, 3, 6, 1, 2, 5} : std::vector<int64_t>{0, 4, 7, 2, 5, 1, 3, 6};
  return l;
}

torch::Tensor GroupLayout::group(const torch::Tensor& x) const {
  std::vector<int64_t> v = view;
  v[1] = x.size(1);
  const torch::Tensor p = x.reshape(v).permute(perm);
  int64_t groups = 1, members = 1;
  for (int64_t i = 0; i < channel_position; ++i) groups *= p.size(i);
  for (int64_t i = channel_position + 1; i < p.dim(); ++i) members *= p.size(i);
  return p.reshape({groups, x.size(1), members});
}

torch::Tensor GroupLayout::ungroup(const torch::Tensor& g, int64_t b, int64_t h, int64_t w) const {
  std::vector<int64_t> v = view;
  v[1] = g.size(1);
  std::vector<int64_t> permuted(perm.size()), inverse(perm.size());
  for (std::size_t i = 0; i < perm.size(); ++i) {
    permuted[i] = v[static_cast<std::size_t>(perm[i])];
    inverse[static_cast<std::size_t>(perm[i])] = static_cast<int64_t>(i);
  }
  return g.reshape(permuted).permute(inverse).reshape({b, g.size(1), h, w});
}

torch::Tensor to_groups(const torch::Tensor& x, Range range, int64_t ph, int64_t pw) {
  return GroupLayout::level1(range, x.size(0), x.size(2), x.size(3), ph, pw).group(x);
}

torch::Tensor from_groups(const torch::Tensor& g, Range range, int64_t ph, int64_t pw, int64_t b, int64_t h, int64_t w) {
  return GroupLayout::level1(range, b, h, w, ph, pw).ungroup(g, b, h, w);
}

AttentionStepImpl::AttentionStepImpl(int64_t channels, int64_t reduction) {
  TORCH_CHECK(channels >= 2 && reduction >= 1 && channels % reduction == 0,
              "attention needs channels >= 2 divisible by the reduction k; got C=", channels, " k=", reduction);
  const int64_t ck = channels / reduction;
  auto conv = [](int64_t in, int64_t out) { return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 1)); };
  wf = register_module("wf", conv(channels, ck));
  wg = register_module("wg", conv(channels, ck));
  wh = register_module("wh", conv(channels, ck));
  wv = register_module("wv", conv(ck, channels));
  gamma = register_parameter("gamma", torch::zeros({1}));
  scale_ = 1.0 / std::sqrt(static_cast<double>(channels) / 2.0);  // d = C / 2
}

namespace {

/// out = v softmax_i(g^T f) for every group, [G, C/k, Q] each (strided views allowed).
torch::Tensor group_attention(const torch::Tensor& f, const torch::Tensor& g, const torch::Tensor& v) {
  if (torch::GradMode::is_enabled()) {
    // Training: plain batched ops, which autograd differentiates.
    const torch::Tensor p = torch::softmax(torch::bmm(g.transpose(1, 2), f), 2);  // [G, Qj, Qi]
    return torch::bmm(v, p.transpose(1, 2));
  }
  // Inference: groups in chunks whose score matrices stay in cache (about
  // 1 MB), each chunk on one thread: scores are never written to memory whole.
  const int64_t groups = f.size(0), q = f.size(2);
  torch::Tensor out = torch::empty({groups, v.size(1), q}, v.options());
  const int64_t chunk = std::max<int64_t>(1, (int64_t{1} << 20) / (q * q));
  at::parallel_for(0, groups, chunk, [&](int64_t begin, int64_t end) {
    for (int64_t b0 = begin; b0 < end; b0 += chunk) {
      const int64_t b1 = std::min(end, b0 + chunk);
      torch::Tensor s = torch::bmm(g.slice(0, b0, b1).transpose(1, 2), f.slice(0, b0, b1));
      at::_softmax_out(s, s, 2, false);  // in place: the chunk stays in cache
      torch::Tensor dst = out.slice(0, b0, b1);
      at::bmm_out(dst, v.slice(0, b0, b1), s.transpose(1, 2));
    }
  });
  return out;
}

/// A 1x1 convolution as one matrix product per image: [B, Cin, N] -> [B, Cout, N].
torch::Tensor pointwise(const torch::Tensor& weight, const torch::Tensor& bias, const torch::Tensor& x) {
  if (x.size(0) == 1) return torch::addmm(bias.view({-1, 1}), weight, x[0]).unsqueeze(0);
  std::vector<torch::Tensor> out;
  for (int64_t i = 0; i < x.size(0); ++i) out.push_back(torch::addmm(bias.view({-1, 1}), weight, x[i]));
  return torch::stack(out);
}

}  // namespace

torch::Tensor AttentionStepImpl::forward(const torch::Tensor& x, const GroupLayout& layout) {
  const int64_t b = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  const int64_t ck = wf->weight.size(0);
  // The 1x1 projections run on the whole image as one large matrix product
  // ([3 C/k, C] x [C, HW], much faster than one small product per group);
  // Wf, Wg, Wh are stacked and the softmax scale is folded into Wg.
  const torch::Tensor wqkv = torch::cat({wf->weight.view({ck, c}), wg->weight.view({ck, c}) * scale_, wh->weight.view({ck, c})}, 0);
  const torch::Tensor bqkv = torch::cat({wf->bias, wg->bias * scale_, wh->bias}, 0);
  const torch::Tensor qkv = pointwise(wqkv, bqkv, x.reshape({b, c, h * w})).view({b, 3 * ck, h, w});
  // One regrouping copy of the projections; f, g, v are views into it.
  const torch::Tensor grouped = layout.group(qkv);  // [G, 3 C/k, Q]
  const torch::Tensor out = group_attention(grouped.narrow(1, 0, ck), grouped.narrow(1, ck, ck), grouped.narrow(1, 2 * ck, ck));
  const torch::Tensor image = layout.ungroup(out, b, h, w).view({b, ck, h * w});
  // Y = X + gamma (Wv out + bv), with the residual accumulated inside the product.
  std::vector<torch::Tensor> ys;
  const torch::Tensor gw = gamma * wv->weight.view({c, ck}), gb = (gamma * wv->bias).view({c, 1});
  for (int64_t i = 0; i < b; ++i) ys.push_back(torch::addmm(x[i].reshape({c, h * w}), gw, image[i]) + gb);
  return (b == 1 ? ys[0].unsqueeze(0) : torch::stack(ys)).view({b, c, h, w});
}

int64_t pad_size(int64_t n) { return (n + 3) / 4 * 4; }

namespace {

std::vector<int64_t> divisors(int64_t n) {
  std::vector<int64_t> out;
  for (int64_t d = 1; d <= n; ++d) {
    if (n % d == 0) out.push_back(d);
  }
  return out;
}

}  // namespace

AttentionCost attention_cost(AttentionKind kind, int64_t c, int64_t h, int64_t w, int64_t k, const GroupSplit& s) {
  const double hw = static_cast<double>(h * w), ck = static_cast<double>(c) / static_cast<double>(k), cd = static_cast<double>(c);
  const double per_step = 4 * hw * cd * ck;  // Wf, Wg, Wh (C -> C/k) and Wv (C/k -> C)
  AttentionCost cost;
  switch (kind) {
    case AttentionKind::kNone: break;
    case AttentionKind::kKel: {
      const double kk = 5;
      cost.projections = 2 * hw * cd * kk;
      cost.attention = hw * cd * kk * kk;
      break;
    }
    case AttentionKind::kSa:
      cost.projections = per_step;
      cost.attention = 2 * hw * hw * ck;
      break;
    case AttentionKind::kIsa: {
      const double p = static_cast<double>(s.ph * s.pw), q = hw / p;
      cost.projections = 2 * per_step;
      cost.attention = 2 * hw * q * ck + 2 * hw * p * ck;  // long: P groups of Q; short: Q groups of P
      break;
    }
    case AttentionKind::kAal: {
      const double p = static_cast<double>(s.ph * s.pw), q = hw / p;
      const double p2 = static_cast<double>(s.ph2 * s.pw2), q2 = q / p2;
      cost.projections = 3 * per_step;
      cost.attention = 2 * hw * q2 * ck + 2 * hw * p2 * ck + 2 * hw * p * ck;
      break;
    }
  }
  return cost;
}

GroupSplit min_cost_split(AttentionKind kind, int64_t c, int64_t h, int64_t w, int64_t k) {
  GroupSplit best{1, 1, 1, 1};
  if (kind != AttentionKind::kIsa && kind != AttentionKind::kAal) return best;
  double best_cost = std::numeric_limits<double>::infinity();
  for (int64_t ph : divisors(h)) {
    for (int64_t pw : divisors(w)) {
      if (kind == AttentionKind::kIsa) {
        const GroupSplit s{static_cast<int>(ph), static_cast<int>(pw), 1, 1};
        const double cost = attention_cost(kind, c, h, w, k, s).total() * (1 + 1e-9 * std::abs(double(ph - pw)));
        if (cost < best_cost) best_cost = cost, best = s;
        continue;
      }
      for (int64_t ph2 : divisors(h / ph)) {
        for (int64_t pw2 : divisors(w / pw)) {
          const GroupSplit s{static_cast<int>(ph), static_cast<int>(pw), static_cast<int>(ph2), static_cast<int>(pw2)};
          // Equal costs: prefer square groups (ties are common: only products matter).
          const double cost = attention_cost(kind, c, h, w, k, s).total() * (1 + 1e-9 * (std::abs(double(ph - pw)) + std::abs(double(ph2 - pw2))));
          if (cost < best_cost) best_cost = cost, best = s;
        }
      }
    }
  }
  return best;
}

AttentionLayerImpl::AttentionLayerImpl(const AttentionOptions& o) : options_(o) {
  TORCH_CHECK(o.channels() >= 2, "attention layer needs at least 2 channels, got ", o.channels());
  TORCH_CHECK(o.reduction() >= 1 && o.channels() % o.reduction() == 0, "reduction k must divide the channels: C=", o.channels(),
              " k=", o.reduction());
  const GroupSplit& s = o.split();
  TORCH_CHECK(s.ph >= 0 && s.pw >= 0 && s.ph2 >= 0 && s.pw2 >= 0, "group counts must be >= 0 (0 = automatic)");
  int n_steps = 0;
  switch (o.kind()) {
    case AttentionKind::kNone: break;
    case AttentionKind::kKel: {
      TORCH_CHECK(o.kernel_size() >= 1 && o.kernel_size() % 2 == 1, "kel kernel size must be odd, got ", o.kernel_size());
      auto conv = torch::nn::Conv2dOptions(o.channels(), o.kernel_size(), 3).padding(1);
      kel_vertical = register_module("kel_vertical", torch::nn::Conv2d(conv));
      kel_horizontal = register_module("kel_horizontal", torch::nn::Conv2d(conv));
      kel_gamma = register_parameter("kel_gamma", torch::zeros({1}));
      break;
    }
    case AttentionKind::kSa: n_steps = 1; break;
    case AttentionKind::kIsa: n_steps = 2; break;
    case AttentionKind::kAal: n_steps = 3; break;
  }
  for (int i = 0; i < n_steps; ++i) {
    steps.push_back(register_module("step" + std::to_string(i), AttentionStep(o.channels(), o.reduction())));
  }
}

GroupSplit AttentionLayerImpl::split_for(int64_t h, int64_t w) const {
  const GroupSplit& s = options_.split();
  if (s.ph > 0 && s.pw > 0) {
    GroupSplit out = s;
    if (out.ph2 == 0) out.ph2 = 1;
    if (out.pw2 == 0) out.pw2 = 1;
    return out;
  }
  return min_cost_split(options_.kind(), options_.channels(), h, w, options_.reduction());
}

std::vector<torch::Tensor> AttentionLayerImpl::gammas() const {
  std::vector<torch::Tensor> out;
  for (const auto& s : steps) out.push_back(s->gamma);
  if (kel_gamma.defined()) out.push_back(kel_gamma);
  return out;
}

torch::Tensor AttentionLayerImpl::forward(const torch::Tensor& x) {
  const AttentionKind kind = options_.kind();
  if (kind == AttentionKind::kNone) return x;
  const int64_t b = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  if (kind == AttentionKind::kKel) {
    // Per-pixel separable kernels, normalised, applied to every channel.
    const int64_t k = options_.kernel_size(), r = k / 2;
    const auto kv = torch::softmax(kel_vertical->forward(x), 1);    // [B, K, H, W]
    const auto kh = torch::softmax(kel_horizontal->forward(x), 1);  // [B, K, H, W]
    const auto patches = torch::nn::functional::unfold(x, torch::nn::functional::UnfoldFuncOptions({k, k}).padding(r))
                             .view({b, c, k, k, h, w});
    const auto kernel = (kv.view({b, 1, k, 1, h, w}) * kh.view({b, 1, 1, k, h, w}));
    const auto filtered = (patches * kernel).sum({2, 3});
    return x + kel_gamma * filtered;
  }
  if (kind == AttentionKind::kSa) return steps[0]->forward(x, GroupLayout::dense(b, h, w));

  // Pad to a size the split divides, attend, crop back.
  const GroupSplit& req = options_.split();
  int64_t hp, wp;
  if (req.ph > 0 && req.pw > 0) {
    const int64_t mh = req.ph * std::max(1, req.ph2), mw = req.pw * std::max(1, req.pw2);
    hp = (h + mh - 1) / mh * mh;
    wp = (w + mw - 1) / mw * mw;
  } else {
    hp = pad_size(h);
    wp = pad_size(w);
  }
  const GroupSplit s = split_for(hp, wp);
  torch::Tensor y = (hp != h || wp != w) ? torch::constant_pad_nd(x, {0, wp - w, 0, hp - h}) : x;
  if (kind == AttentionKind::kIsa) {
    y = steps[0]->forward(y, GroupLayout::level1(Range::kLong, b, hp, wp, s.ph, s.pw));
    y = steps[1]->forward(y, GroupLayout::level1(Range::kShort, b, hp, wp, s.ph, s.pw));
  } else {
    // Level 2 inside each long-range group, then level 1 short-range.
    y = steps[0]->forward(y, GroupLayout::level2(Range::kLong, b, hp, wp, s.ph, s.pw, s.ph2, s.pw2));
    y = steps[1]->forward(y, GroupLayout::level2(Range::kShort, b, hp, wp, s.ph, s.pw, s.ph2, s.pw2));
    y = steps[2]->forward(y, GroupLayout::level1(Range::kShort, b, hp, wp, s.ph, s.pw));
  }
  if (hp != h || wp != w) y = y.index({torch::indexing::Slice(), torch::indexing::Slice(), torch::indexing::Slice(0, h),
                                       torch::indexing::Slice(0, w)});
  return y;
}

}  // namespace emt::ssan
