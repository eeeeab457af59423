#include <gtest/gtest.h>
#include <torch/torch.h>

#include "emt/common/error.hpp"
#include "emt/ssan/config.hpp"
#include "emt/ssan/model.hpp"

namespace emt::ssan {

ModelConfig tiny(const std::string& extractor, const std::string& attention) {
  ModelConfig c;
  c.extractor = extractor;
  c.attention = attention;
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
  c.fusion = "mean";
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

TEST(Config, ParsesAndRejectsBadValuesNamingTheFile) {
  const auto c = parse_config("[model]\nextractor = unet\nattention = isa\nfeatures = 12\nreduction = 4\n[train]\nlr = 0.001\n", "m.ini");
  EXPECT_EQ(c.model.extractor, "unet");
  EXPECT_EQ(c.model.reduction, 4);
  for (const char* bad : {"[model]\nattention = lower_attention\n", "[model]\nfeatures = 9\nreduction = 2\n",
                          "[model]\nextractor = resnet\n", "[loss]\nvgg_fallback = maybe\n"}) {
    try {
      (void)parse_config(bad, "m.ini");
      FAIL() << bad;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("m.ini"), std::string::npos);
    }
  }
}

}  // namespace emt::ssan
