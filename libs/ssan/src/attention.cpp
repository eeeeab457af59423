#include "emt/ssan/attention.hpp"

#include <cmath>
#include <limits>

#include "emt/common/error.hpp"

namespace emt::ssan {

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
  throw Error(ErrorKind::kInvalidArgument, "unknown attention variant '" + name + "' (expected none, kel, sa, isa or aal)");
}

torch::Tensor to_groups(const torch::Tensor& x, Range range, int64_t ph, int64_t pw) {
  const int64_t b = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  TORCH_CHECK(ph > 0 && pw > 0 && h % ph == 0 && w % pw == 0, "group split ", ph, "x", pw, " does not divide ", h, "x", w);
  const int64_t qh = h / ph, qw = w / pw;
  const auto v = x.view({b, c, qh, ph, qw, pw});
  if (range == Range::kLong) return v.permute({0, 3, 5, 1, 2, 4}).reshape({b * ph * pw, c, qh * qw});
  return v.permute({0, 2, 4, 1, 3, 5}).reshape({b * qh * qw, c, ph * pw});
}

torch::Tensor from_groups(const torch::Tensor& g, Range range, int64_t ph, int64_t pw, int64_t b, int64_t h, int64_t w) {
  const int64_t c = g.size(1), qh = h / ph, qw = w / pw;
  if (range == Range::kLong) return g.view({b, ph, pw, c, qh, qw}).permute({0, 3, 4, 1, 5, 2}).reshape({b, c, h, w});
  return g.view({b, qh, qw, c, ph, pw}).permute({0, 3, 1, 4, 2, 5}).reshape({b, c, h, w});
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

torch::Tensor AttentionStepImpl::forward(const torch::Tensor& x, Range range, int64_t ph, int64_t pw) {
  const int64_t b = x.size(0), h = x.size(2), w = x.size(3);
  // 1x1 projections are position-wise: apply them before regrouping.
  torch::Tensor f = wf->forward(x), g = wg->forward(x), v = wh->forward(x);
  const bool dense = ph == 0 && pw == 0;
  auto group = [&](const torch::Tensor& t) { return dense ? t.reshape({b, t.size(1), h * w}) : to_groups(t, range, ph, pw); };
  f = group(f);
  g = group(g);
  v = group(v);
  // A[i, j] = softmax over i of f_i . g_j: each output j gathers the positions i.
  const torch::Tensor a = torch::softmax(torch::bmm(f.transpose(1, 2), g) * scale_, 1);
  torch::Tensor out = torch::bmm(v, a);
  out = dense ? out.reshape({b, out.size(1), h, w}) : from_groups(out, range, ph, pw, b, h, w);
  return x + gamma * wv->forward(out);
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
        const double cost = attention_cost(kind, c, h, w, k, s).total();
        if (cost < best_cost) best_cost = cost, best = s;
        continue;
      }
      for (int64_t ph2 : divisors(h / ph)) {
        for (int64_t pw2 : divisors(w / pw)) {
          const GroupSplit s{static_cast<int>(ph), static_cast<int>(pw), static_cast<int>(ph2), static_cast<int>(pw2)};
          const double cost = attention_cost(kind, c, h, w, k, s).total();
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
  if (kind == AttentionKind::kSa) return steps[0]->forward(x, Range::kLong, 0, 0);

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
    y = steps[0]->forward(y, Range::kLong, s.ph, s.pw);
    y = steps[1]->forward(y, Range::kShort, s.ph, s.pw);
  } else {
    // Level 2 inside each long-range group (an image of qh x qw), then level 1 short-range.
    const int64_t qh = hp / s.ph, qw = wp / s.pw;
    auto groups = y.view({b, c, qh, s.ph, qw, s.pw}).permute({0, 3, 5, 1, 2, 4}).reshape({b * s.ph * s.pw, c, qh, qw});
    groups = steps[0]->forward(groups, Range::kLong, s.ph2, s.pw2);
    groups = steps[1]->forward(groups, Range::kShort, s.ph2, s.pw2);
    y = groups.view({b, s.ph, s.pw, c, qh, qw}).permute({0, 3, 4, 1, 5, 2}).reshape({b, c, hp, wp});
    y = steps[2]->forward(y, Range::kShort, s.ph, s.pw);
  }
  if (hp != h || wp != w) y = y.index({torch::indexing::Slice(), torch::indexing::Slice(), torch::indexing::Slice(0, h),
                                       torch::indexing::Slice(0, w)});
  return y;
}

}  // namespace emt::ssan
