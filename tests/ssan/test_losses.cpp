#include <cmath>
#include <filesystem>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "emt/common/error.hpp"
#include "emt/ssan/losses.hpp"

namespace emt::ssan {

TEST(Charbonnier, CloseToL1ForLargeResidualsSmoothAtZero) {
  const auto a = torch::full({4, 1, 8, 8}, 0.8), b = torch::full({4, 1, 8, 8}, 0.3);
  EXPECT_NEAR(charbonnier(a, b).item<double>(), 0.5, 1e-9);
  // At zero residual: value eps, gradient exactly 0 (L1's is undefined there).
  auto p = torch::full({1, 1, 4, 4}, 0.5, torch::requires_grad());
  const auto l = charbonnier(p, torch::full({1, 1, 4, 4}, 0.5));
  EXPECT_NEAR(l.item<double>(), 1e-6, 1e-9);
  l.backward();
  EXPECT_EQ(p.grad().abs().max().item<float>(), 0.f);
  // Near zero the gradient is continuous and small, not +-1/N as for L1.
  auto q = torch::full({1, 1, 1, 1}, 0.5 + 1e-7, torch::requires_grad());
  charbonnier(q, torch::full({1, 1, 1, 1}, 0.5)).backward();
  EXPECT_LT(std::abs(q.grad().item<float>()), 0.2f);
}

TEST(GradientCharbonnier, IsTheCharbonnierOfFiniteDifferencesAndBlindToOffsets) {
  torch::manual_seed(7);
  const auto a = torch::rand({2, 1, 9, 11}), b = torch::rand({2, 1, 9, 11});
  const auto dx = [](const torch::Tensor& t) { return t.slice(3, 1) - t.slice(3, 0, -1); };
  const auto dy = [](const torch::Tensor& t) { return t.slice(2, 1) - t.slice(2, 0, -1); };
  const double expected = 0.5 * (charbonnier(dx(a), dx(b), 1e-3).item<double>() + charbonnier(dy(a), dy(b), 1e-3).item<double>());
  EXPECT_NEAR(gradient_charbonnier(a, b, 1e-3).item<double>(), expected, 1e-6);
  // A constant offset has no gradient: only edges count.
  EXPECT_NEAR(gradient_charbonnier(a + 0.25, a, 1e-6).item<double>(), 1e-6, 1e-6);
  EXPECT_GT(gradient_charbonnier(a, b).item<double>(), 0.1);
}

TEST(TextureLoss, ChargesForMissingFineStructureNotForItsPlace) {
  torch::manual_seed(8);
  const auto noise = torch::rand({2, 1, 64, 64});
  // The same texture shifted: equal energies but for the wrap-around seams,
  // so almost no loss although every pixel differs.
  const auto shifted = noise.roll({5, 7}, {2, 3});
  const double moved = texture_loss(shifted, noise).item<double>();
  EXPECT_LT(moved, 0.05);
  EXPECT_GT((shifted - noise).abs().mean().item<double>(), 0.2);
  // The texture smoothed away: a loss twenty times that, whatever the pixels say.
  const auto flat = torch::avg_pool2d(noise, 3, 1, 1);
  EXPECT_GT(texture_loss(flat, noise).item<double>(), 1.0);
  EXPECT_GT(texture_loss(flat, noise).item<double>(), 20 * moved);
  // Energies: a constant image has none; a ramp only along x.
  const auto e = texture_energy(torch::full({1, 1, 8, 8}, 0.5));
  EXPECT_EQ(e.sizes(), (std::vector<int64_t>{1, 6}));
  EXPECT_NEAR(e.abs().max().item<double>(), 0.0, 1e-12);
  const auto ramp = torch::arange(8, torch::kFloat32).view({1, 1, 1, 8}).expand({1, 1, 8, 8}).contiguous();
  const auto r = texture_energy(ramp);
  EXPECT_NEAR(r[0][0].item<double>(), 1.0, 1e-6);   // d/dx = 1 everywhere
  EXPECT_NEAR(r[0][1].item<double>(), 0.0, 1e-12);  // d/dy = 0
  EXPECT_NEAR(r[0][2].item<double>(), 0.0, 1e-9);   // linear: no curvature
}

TEST(StyleBalance, SignFollowsPredictionVersusGroundTruth) {
  auto t = [](double v) { return torch::tensor(v, torch::requires_grad()); };
  // Prediction farther from slice 0 than the ground truth is: pull (+); closer: push (-).
  std::array<torch::Tensor, 3> pred{t(2.0), t(1.0), t(0.5)};
  const std::array<torch::Tensor, 3> gt{torch::tensor(1.0), torch::tensor(0.0), torch::tensor(1.5)};
  const auto l = SsanLoss::style_balance(pred, gt);
  EXPECT_NEAR(l.item<double>(), 0.1 * 2.0 + 1.0 * 1.0 - 0.1 * 0.5, 1e-6);
  l.backward();
  EXPECT_NEAR(pred[0].grad().item<double>(), 0.1, 1e-6);
  EXPECT_NEAR(pred[1].grad().item<double>(), 1.0, 1e-6);   // middle slice: always pulls towards gt's style
  EXPECT_NEAR(pred[2].grad().item<double>(), -0.1, 1e-6);  // already closer than gt: pushed away
}

TEST(Gram, NormalisedByCHW) {
  const auto f = torch::ones({2, 3, 4, 5});
  const auto g = gram(f);
  EXPECT_EQ(g.sizes(), (std::vector<int64_t>{2, 3, 3}));
  EXPECT_NEAR(g[0][1][2].item<double>(), 20.0 / 60.0, 1e-6);
  EXPECT_EQ(SsanLoss::style_distance({f}, {f}).item<double>(), 0.0);
}

TEST(Gram, StyleDistanceIsTheMeanSquaredGramDifferenceSummedOverLayers) {
  torch::manual_seed(3);
  const std::vector<torch::Tensor> a{torch::rand({2, 3, 4, 5}), torch::rand({2, 6, 2, 2})};
  const std::vector<torch::Tensor> b{torch::rand({2, 3, 4, 5}), torch::rand({2, 6, 2, 2})};
  double expected = 0;
  for (int j = 0; j < 2; ++j) {
    const auto d = gram(a[static_cast<std::size_t>(j)]) - gram(b[static_cast<std::size_t>(j)]);
    double sum = 0;
    for (int64_t i = 0; i < d.numel(); ++i) sum += std::pow(d.flatten()[i].item<double>(), 2);
    expected += sum / static_cast<double>(d.numel());
  }
  EXPECT_NEAR(SsanLoss::style_distance(a, b).item<double>(), expected, 1e-7);
}

TEST(Vgg16, RandomFallbackKeepsEveryLayerAlive) {
  // He init: activations stay O(1) down to relu4_3, unlike torch's default init.
  Vgg16Features vgg;
  vgg->randomize(20210101);
  torch::manual_seed(1);
  const auto x = to_vgg_input(torch::rand({1, 1, 64, 64}));
  const auto f = vgg->forward(x);
  ASSERT_EQ(f.size(), 4u);
  for (const auto& layer : f) {
    const double rms = layer.pow(2).mean().sqrt().item<double>();
    EXPECT_GT(rms, 0.2);
    EXPECT_LT(rms, 5.0);
  }
  Vgg16Features again;
  again->randomize(20210101);
  EXPECT_TRUE(torch::equal(again->forward(x)[3], f[3]));  // the same fixed weights every run
}

// Expected values from torchvision 0.14.1 (Debian python3-torchvision) with the
// same random weights (torch.manual_seed(7) after construction; every
// parameter in order = randn * 0.05; input = rand(1, 3, 32, 32)):
// per layer {sum, max |v|, v[1], v[2], v[3]} at relu1_2, relu2_2, relu3_3, relu4_3.
constexpr double kTorchvision[4][5] = {{3583.67383, 0.534960866, 0, 0, 0},
                                       {2902.91113, 0.67735076, 0.0204816777, 0, 0.00335768238},
                                       {4203.08887, 3.03735924, 0, 0, 0},
                                       {19913.5879, 23.8619003, 0, 0.25369215, 0}};

TEST(Vgg16, FeaturesEqualTorchvisionWithTheSameWeights) {
  Vgg16Features vgg;
  torch::manual_seed(7);
  torch::NoGradGuard no_grad;
  for (auto& p : vgg->parameters()) p.copy_(torch::randn(p.sizes()) * 0.05);
  const auto x = torch::rand({1, 3, 32, 32});
  const auto f = vgg->forward(x);
  ASSERT_EQ(f.size(), 4u);
  const std::vector<int64_t> channels{64, 128, 256, 512};
  for (int j = 0; j < 4; ++j) {
    EXPECT_EQ(f[j].size(1), channels[j]);
    EXPECT_NEAR(f[j].sum().item<double>(), kTorchvision[j][0], 1e-5 * std::abs(kTorchvision[j][0]));
    EXPECT_NEAR(f[j].abs().max().item<double>(), kTorchvision[j][1], 1e-5 * kTorchvision[j][1]);
    const auto flat = f[j].flatten();
    for (int i = 1; i <= 3; ++i) EXPECT_NEAR(flat[i].item<double>(), kTorchvision[j][1 + i], 1e-5) << j << " " << i;
  }
}

TEST(SsanLossTerms, FallsBackLoudlyWithoutVggWeights) {
  std::vector<std::string> warnings;
  LossConfig c;
  c.vgg_weights = "/no/such/vgg16.pt";
  c.vgg_fallback = VggFallback::kRandom;
  SsanLoss random_vgg(c, [&](const std::string& w) { warnings.push_back(w); });
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("RANDOM"), std::string::npos);
  EXPECT_EQ(random_vgg.vgg_source().rfind("random-fixed", 0), 0u);
  torch::manual_seed(0);
  const auto gt = torch::rand({1, 1, 32, 32}), outer = torch::rand({1, 2, 32, 32});
  auto pred = torch::rand({1, 1, 32, 32}, torch::requires_grad());
  const auto t = random_vgg(pred, gt, outer);
  EXPECT_GT(t.feature.item<double>(), 0);
  EXPECT_NEAR(t.total.item<double>(), 1e6 * t.style_balance.item<double>() + t.feature.item<double>() + t.charbonnier.item<double>(),
              1e-6 * std::abs(t.total.item<double>()) + 1e-9);
  t.total.backward();
  EXPECT_GT(pred.grad().abs().sum().item<double>(), 0);

  c.vgg_fallback = VggFallback::kDisable;
  warnings.clear();
  SsanLoss none(c, [&](const std::string& w) { warnings.push_back(w); });
  EXPECT_EQ(none.vgg_source(), "disabled");
  EXPECT_EQ(warnings.size(), 1u);
  const auto t2 = none(pred, gt, outer);
  EXPECT_EQ(t2.feature.item<double>(), 0);
  EXPECT_NEAR(t2.total.item<double>(), t2.charbonnier.item<double>(), 1e-12);
}

TEST(Vgg16, LoadingErrorsNameTheFile) {
  Vgg16Features vgg;
  try {
    vgg->load_torchscript("/no/such/file.pt");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/no/such/file.pt"), std::string::npos);
  }
}

}  // namespace emt::ssan

namespace emt::ssan {

// torch::save writes a TorchScript archive, the same container as the
// torch.jit.save file users make from torchvision (docs/model.md).
TEST(Vgg16, LoadsWeightsFromATorchScriptArchive) {
  const auto path = std::filesystem::temp_directory_path() / "emt_vgg_roundtrip.pt";
  torch::manual_seed(11);
  Vgg16Features source;
  torch::save(source, path.string());
  Vgg16Features target;
  target->load_torchscript(path.string());
  std::filesystem::remove(path);
  const auto x = torch::rand({1, 3, 16, 16});
  const auto a = source->forward(x), b = target->forward(x);
  for (std::size_t j = 0; j < a.size(); ++j) EXPECT_TRUE(torch::equal(a[j], b[j]));
  LossConfig c;
  c.vgg_weights = "/no/file";
  c.vgg_fallback = VggFallback::kDisable;
}

}  // namespace emt::ssan
