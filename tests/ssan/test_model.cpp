#include <gtest/gtest.h>
#include <torch/torch.h>

#include "emt/common/error.hpp"
#include "emt/ssan/config.hpp"
#include "emt/ssan/model.hpp"

namespace emt::ssan {

ModelConfig tiny(const std::string& extractor, const std::string& attention) {
  ModelConfig c;
  c.extractor = parse_extractor(extractor);
  c.attention = parse_attention_kind(attention);
  c.features = 8;
  c.blocks = 1;
  c.layers = 2;
  c.growth = 4;
  c.unet_levels = 2;
  c.kel_kernel = 3;
  return c;
}

TEST(Ssan, ShapesForEveryExtractorAndAttentionAtOddAndEvenSizes) {
  torch::manual_seed(0);
  for (const char* e : {"rdn", "siamese_rdn", "unet", "siamese_unet"}) {
    for (const char* a : {"none", "kel", "sa", "isa", "aal"}) {
      Ssan model(tiny(e, a));
      for (auto [h, w] : {std::pair<int64_t, int64_t>{16, 16}, {17, 23}}) {
        const auto out = model->forward(torch::rand({2, 2, h, w}));
        EXPECT_EQ(out.output.sizes(), (std::vector<int64_t>{2, 1, h, w})) << e << "/" << a;
        EXPECT_EQ(out.warp0.sizes(), out.output.sizes());
        EXPECT_EQ(out.mask.sizes(), out.output.sizes());
        EXPECT_TRUE(torch::isfinite(out.output).all().item<bool>());
      }
    }
  }
}

TEST(Ssan, FusionIsAConvexMaskCombination) {
  torch::manual_seed(1);
  Ssan model(tiny("siamese_rdn", "aal"));
  const auto out = model->forward(torch::rand({1, 2, 16, 16}));
  EXPECT_GE(out.mask.min().item<float>(), 0.f);
  EXPECT_LE(out.mask.max().item<float>(), 1.f);
  EXPECT_TRUE(torch::allclose(out.output, out.mask * out.warp0 + (1 - out.mask) * out.warp1));
  auto c = tiny("siamese_rdn", "aal");
  c.fusion = Fusion::kMean;
  Ssan mean_model(c);
  const auto m = mean_model->forward(torch::rand({1, 2, 16, 16}));
  EXPECT_TRUE(torch::allclose(m.output, 0.5 * (m.warp0 + m.warp1)));
  EXPECT_FALSE(m.mask.defined());
}

TEST(Ssan, SiameseSharesWeightsAndSwapsTheBranches) {
  Ssan siamese(tiny("siamese_rdn", "none")), separate(tiny("rdn", "none"));
  EXPECT_LT(siamese->parameter_count(), separate->parameter_count());
  // With shared weights, swapping slices 0 and 2 swaps the two candidates.
  torch::manual_seed(2);
  const auto x = torch::rand({1, 2, 16, 16});
  const auto a = siamese->forward(x), b = siamese->forward(x.flip(1));
  EXPECT_TRUE(torch::allclose(a.warp0, b.warp1, 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(a.warp1, b.warp0, 1e-5, 1e-6));
}

TEST(Ssan, GradientsReachExtractorHeadsAndFusion) {
  torch::manual_seed(3);
  Ssan model(tiny("siamese_rdn", "aal"));
  const auto out = model->forward(torch::rand({1, 2, 16, 16}));
  (out.output - 0.5).pow(2).mean().backward();
  for (const auto& p : model->named_parameters()) {
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    if (p.key().find("attention.step") != std::string::npos && p.key().find("gamma") == std::string::npos) continue;  // zero while gamma = 0
    EXPECT_GT(p.value().grad().abs().sum().item<float>(), 0) << p.key();
  }
}

ModelConfig unet_residual(int branches, AttentionPlacement at) {
  ModelConfig c = tiny(branches == 1 ? "unet" : "siamese_unet", "aal");
  c.attention_at = at;
  c.branches = branches;
  c.fusion = Fusion::kResidual;
  return c;
}

TEST(Ssan, ResidualFusionStartsAsLinearInterpolation) {
  // Zero-initialised residual: step 0 is the mean of the outer slices, exactly.
  for (int branches : {1, 2}) {
    for (auto at : {AttentionPlacement::kFull, AttentionPlacement::kBottleneck}) {
      torch::manual_seed(4);
      Ssan model(unet_residual(branches, at));
      const auto x = torch::rand({2, 2, 19, 22});
      const auto out = model->forward(x);
      EXPECT_TRUE(torch::equal(out.output, 0.5 * (x.narrow(1, 0, 1) + x.narrow(1, 1, 1)))) << branches;
      EXPECT_FALSE(out.warp0.defined());
      EXPECT_EQ(out.residual.sizes(), out.output.sizes());
    }
  }
  // Mask + residual starts as a convex per-pixel mix of the two slices.
  auto c = tiny("siamese_unet", "aal");
  c.fusion = Fusion::kMaskResidual;
  torch::manual_seed(5);
  Ssan model(c);
  const auto x = torch::rand({1, 2, 16, 16});
  const auto out = model->forward(x);
  EXPECT_TRUE(torch::allclose(out.output, out.mask * x.narrow(1, 0, 1) + (1 - out.mask) * x.narrow(1, 1, 1)));
}

TEST(Ssan, ResidualHeadLearnsAndReachesEveryLayer) {
  // After one step the residual is no longer zero, and every parameter got a
  // gradient (the residual conv's own weights from the first backward; the
  // layers below it only once it is non-zero, hence two steps).
  torch::manual_seed(6);
  Ssan model(unet_residual(1, AttentionPlacement::kBottleneck));
  torch::optim::Adam opt(model->parameters(), torch::optim::AdamOptions(1e-2));
  const auto x = torch::rand({2, 2, 24, 24}), gt = torch::rand({2, 1, 24, 24});
  for (int i = 0; i < 2; ++i) {
    opt.zero_grad();
    (model->forward(x).output - gt).pow(2).mean().backward();
    opt.step();
  }
  opt.zero_grad();
  (model->forward(x).output - gt).pow(2).mean().backward();
  for (const auto& p : model->named_parameters()) {
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    if (p.key().find("attention.step") != std::string::npos && p.key().find("gamma") == std::string::npos) continue;  // ~0 while gamma ~ 0
    EXPECT_GT(p.value().grad().abs().sum().item<float>(), 0) << p.key();
  }
}

TEST(Ssan, BottleneckAttentionRunsInsideTheUNetAtItsCoarsestLevel) {
  auto full = unet_residual(1, AttentionPlacement::kFull), bottleneck = unet_residual(1, AttentionPlacement::kBottleneck);
  Ssan a(full), b(bottleneck);
  // The bottleneck layer has features << levels channels: more parameters, one gamma set.
  EXPECT_FALSE(a->gammas().empty());
  EXPECT_EQ(a->gammas().size(), b->gammas().size());
  bool inside = false;
  for (const auto& p : b->named_parameters()) inside |= p.key().rfind("extractor0.attention.", 0) == 0;
  EXPECT_TRUE(inside);
  EXPECT_EQ(b->attention->options().channels(), int64_t{bottleneck.features} << bottleneck.unet_levels);
  // Two branches of a siamese U-Net share the one layer.
  Ssan s(unet_residual(2, AttentionPlacement::kBottleneck));
  EXPECT_EQ(s->gammas().size(), b->gammas().size());
}

TEST(Config, ParsesAndRejectsBadValuesNamingTheFile) {
  const auto c = parse_config("[model]\nextractor = unet\nattention = isa\nfeatures = 12\nreduction = 4\n[train]\nlr = 0.001\n", "m.ini");
  EXPECT_EQ(c.model.extractor, Extractor::kUNet);
  EXPECT_EQ(c.model.reduction, 4);
  EXPECT_EQ(c.model.fusion, Fusion::kMask);  // the default
  const auto r = parse_config("[model]\nextractor = unet\nattention_at = bottleneck\nbranches = 1\nfusion = residual\n[loss]\ngradient_weight = 0.5\n", "r.ini");
  EXPECT_EQ(r.model.attention_at, AttentionPlacement::kBottleneck);
  EXPECT_EQ(r.model.fusion, Fusion::kResidual);
  EXPECT_EQ(r.model.branches, 1);
  EXPECT_EQ(r.loss.gradient_weight, 0.5);
  for (const char* bad : {"[model]\nattention = lower_attention\n", "[model]\nfeatures = 9\nreduction = 2\n",
                          "[model]\nextractor = resnet\n", "[loss]\nvgg_fallback = maybe\n", "[model]\nfusion = average\n",
                          "[model]\nextractor = rdn\nattention_at = bottleneck\n", "[model]\nbranches = 1\nfusion = mask\n",
                          "[model]\nextractor = siamese_unet\nbranches = 1\nfusion = residual\n", "[model]\nbranches = 3\n",
                          "[loss]\ngradient_weight = nan\n", "[loss]\ncharbonnier_weight = -1\n"}) {
    try {
      (void)parse_config(bad, "m.ini");
      FAIL() << bad;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("m.ini"), std::string::npos);
    }
  }
}

}  // namespace emt::ssan
