// Weights across the language boundary: C++ -> Python (ssan-export, state
// dicts) and Python -> C++ (ssan-train --init-from MODEL.pth), checked by
// predicting the same interpolation on a fixed input in both.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "emt/common/atomic_file.hpp"
#include "emt/common/error.hpp"
#include "emt/ssan/interop.hpp"
#include "emt/triplets/preprocessing.hpp"
#include "emt/ssan/checkpoint.hpp"
#include "emt/ssan/evaluate.hpp"
#include "emt/ssan/trainer.hpp"
#include "test_support.hpp"
#include "tiny_shards.hpp"

namespace emt::test {
namespace fs = std::filesystem;
using ssan::StateDict;

namespace {

// float32 through different but equivalent op orders (Python's plain
// softmax/bmm against the C++ chunked inference path, fused 1x1 projections):
// differences are rounding, ~1e-6 here; 1e-4 is the bound the issue sets.
constexpr double kTolerance = 1e-4;

/// Runs the Python side over `dir`; python3-torch comes from scripts/setup.sh.
void run_python(const fs::path& dir) {
  const std::string cmd = "timeout 600 /usr/bin/python3 " + std::string(EMT_SOURCE_DIR) + "/tests/ssan/interop_check.py " + dir.string() + " > " +
                          (dir / "py.log").string() + " 2>&1";
  const int status = std::system(cmd.c_str());
  ASSERT_EQ(status, 0) << "the Python reference failed (is python3-torch installed? scripts/setup.sh):\n" << read_file(dir / "py.log");
}

torch::Tensor read_tensor(const fs::path& pth, const std::string& name) {
  for (const auto& [key, t] : ssan::read_state_dict(pth)) {
    if (key == name) return t;
  }
  ADD_FAILURE() << pth << " lacks " << name;
  return {};
}

torch::Tensor predict(ssan::Ssan& model, const torch::Tensor& x) {
  torch::NoGradGuard no_grad;
  model->eval();
  return model->forward(x).output;
}

/// Every config the project ships: the data_specs and the quality harness.
std::vector<fs::path> shipped_configs() {
  std::vector<fs::path> out;
  for (const char* dir : {"data_specs", "bench/quality/configs"}) {
    for (const auto& e : fs::directory_iterator(fs::path(EMT_SOURCE_DIR) / dir)) {
      const std::string name = e.path().filename().string();
      if (e.path().extension() == ".ini" && (std::string(dir) != "data_specs" || name.rfind("ssan_", 0) == 0)) out.push_back(e.path());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Kinds and placements the shipped configs do not reach.
const char* const kExtraConfigs[] = {
    "[model]\nextractor = rdn\nfeatures = 8\nblocks = 1\nlayers = 2\ngrowth = 4\nattention = kel\nfusion = mean\n",
    "[model]\nextractor = siamese_rdn\nfeatures = 8\nblocks = 1\nlayers = 2\ngrowth = 4\nattention = sa\nfusion = mask_residual\n",
    "[model]\nextractor = siamese_rdn\nfeatures = 8\nblocks = 1\nlayers = 1\ngrowth = 4\nattention = isa\nfusion = residual\n",
    "[model]\nextractor = unet\nfeatures = 4\nunet_levels = 2\nattention = isa\nattention_at = bottleneck\nbranches = 2\nfusion = mask\n",
    "[model]\nextractor = siamese_unet\nfeatures = 4\nunet_levels = 1\nattention = aal\nph = 2\npw = 3\nph2 = 1\npw2 = 1\nfusion = residual\n",
};

}  // namespace

TEST(Interop, EveryModelPredictsTheSameInPythonInBothDirections) {
  ScratchDir dir("emt-interop");
  std::vector<ssan::SsanConfig> configs;
  for (const auto& p : shipped_configs()) configs.push_back(ssan::load_config(p.string()));
  for (const char* text : kExtraConfigs) configs.push_back(ssan::parse_config(text, "extra"));
  ASSERT_GE(configs.size(), 15u);
  torch::manual_seed(3);
  // 20 x 28: neither divides the U-Nets' 2^levels nor every attention split, so padding counts too.
  const torch::Tensor x = torch::rand({2, 2, 20, 28});
  ssan::write_state_dict({{"x", x}}, dir.path() / "input.pth");
  std::vector<ssan::Ssan> models;
  for (std::size_t i = 0; i < configs.size(); ++i) {
    ssan::Ssan m(configs[i].model);
    {
      torch::NoGradGuard no_grad;  // gammas and zero-initialised heads too, so every path counts
      for (auto& p : m->parameters()) p.add_(torch::empty_like(p).uniform_(-0.05, 0.05));
    }
    ssan::write_state_dict(ssan::state_dict(m), dir.path() / ("cpp_" + std::to_string(i) + ".pth"));
    write_file_atomic(dir.path() / ("cpp_" + std::to_string(i) + ".json"), ssan::config_to_json(configs[i]).dump());
    write_file_atomic(dir.path() / ("py_" + std::to_string(i) + ".json"), ssan::config_to_json(configs[i]).dump());
    models.push_back(m);
  }
  run_python(dir.path());
  double worst = 0;
  for (std::size_t i = 0; i < configs.size(); ++i) {
    SCOPED_TRACE(configs[i].text);
    const std::string n = std::to_string(i);
    // C++ weights, Python prediction.
    const torch::Tensor cpp = predict(models[i], x), py = read_tensor(dir.path() / ("cpp_" + n + ".out.pth"), "y");
    ASSERT_EQ(cpp.sizes(), py.sizes());
    worst = std::max(worst, (cpp - py).abs().max().item<double>());
    EXPECT_LE((cpp - py).abs().max().item<double>(), kTolerance);
    EXPECT_GT(cpp.std().item<double>(), 1e-3);  // not a constant both sides agree on trivially
    // Python weights (and its JSON, "model" keys only), C++ prediction.
    ssan::LoadedModel back = ssan::load_any_model((dir.path() / ("py_" + n + ".pth")).string());
    const torch::Tensor cpp2 = predict(back.model, x), py2 = read_tensor(dir.path() / ("py_" + n + ".out.pth"), "y");
    worst = std::max(worst, (cpp2 - py2).abs().max().item<double>());
    EXPECT_LE((cpp2 - py2).abs().max().item<double>(), kTolerance);
    EXPECT_GT((cpp2 - cpp).abs().max().item<double>(), 1e-3);  // other weights: the file was really read
  }
  std::cout << "largest |C++ - Python| over " << configs.size() << " models, both directions: " << worst << "\n";
}

TEST(Interop, StateDictMismatchesAreRefusedByName) {
  ScratchDir dir("emt-interop");
  const auto tiny = ssan::load_config(std::string(EMT_SOURCE_DIR) + "/data_specs/ssan_tiny.ini");
  ssan::Ssan m(tiny.model);
  StateDict d = ssan::state_dict(m);
  d.pop_back();
  const std::string missing = ssan::state_dict(m).back().first;
  try {
    ssan::load_state_dict(m, d, "w.pth");
    FAIL() << "a missing tensor was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(missing), std::string::npos) << e.what();
  }
  d = ssan::state_dict(m);
  d.emplace_back("extra.weight", torch::zeros({1}));
  EXPECT_THROW(ssan::load_state_dict(m, d, "w.pth"), Error);
  // An OrderedDict (what Python's state_dict() returns) is refused with the way out.
  const std::string cmd = "/usr/bin/python3 -c \"import torch, collections; torch.save(collections.OrderedDict(a=torch.zeros(1)), '" +
                          (dir / "od.pth") + "')\"";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  try {
    (void)ssan::read_state_dict(dir / "od.pth");
    FAIL() << "an OrderedDict was read";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("dict(model.state_dict())"), std::string::npos) << e.what();
  }
}

class InteropTools : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new ScratchDir("emt-interop-tools");
    make_tiny_shards(dir_->path());
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string config() { return std::string(EMT_SOURCE_DIR) + "/data_specs/ssan_tiny.ini"; }
  static std::string data() { return *dir_ / "b"; }
  static std::string train_args() { return " --data " + data() + " --val-split none --crop 32 --batch 2 --quiet --threads 1"; }
  static ScratchDir* dir_;
};
ScratchDir* InteropTools::dir_ = nullptr;

TEST_F(InteropTools, ExportedCheckpointPredictsTheSameInPython) {
  ScratchDir run;
  ASSERT_EQ(run_tool("ssan-train", "--config " + config() + train_args() + " --out " + (run / "r") + " --max-steps 3").exit_code, 0);
  const auto r = run_tool("ssan-export", "--checkpoint " + (run / "r/last.pt") + " --out " + (run / "cpp_0.pth") + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j.at("json").get<std::string>(), run / "cpp_0.json");
  // The data's preprocessing travels into MODEL.json, the same as the checkpoint holds it.
  const auto from_json = ssan::preprocessing_of_weights(run / "cpp_0.pth");
  const auto from_checkpoint = ssan::read_checkpoint_meta(run / "r/last.pt").preprocessing;
  ASSERT_EQ(from_json.size(), 1u);
  ASSERT_EQ(from_checkpoint.size(), 1u);
  EXPECT_EQ(from_json[0].source_id, "ph");
  EXPECT_EQ(triplets::to_json(from_json[0]), triplets::to_json(from_checkpoint[0]));
  EXPECT_EQ(triplets::to_json(from_json[0]), triplets::to_json(triplets::read_preprocessing(data())[0]));
  // --data attaches a shard directory's records only to a checkpoint without them.
  const auto twice = run_tool("ssan-export", "--checkpoint " + (run / "r/last.pt") + " --out " + (run / "other.pth") + " --data " + data());
  EXPECT_EQ(twice.exit_code, 2) << twice.err;
  EXPECT_NE(twice.err.find("already carries"), std::string::npos) << twice.err;
  // Existing outputs are not replaced without --force.
  const auto again = run_tool("ssan-export", "--checkpoint " + (run / "r/last.pt") + " --out " + (run / "cpp_0.pth"));
  EXPECT_EQ(again.exit_code, 2);
  EXPECT_EQ(count_lines(again.err), 1);
  torch::manual_seed(5);
  const torch::Tensor x = torch::rand({1, 2, 32, 36});
  ssan::write_state_dict({{"x", x}}, run.path() / "input.pth");
  run_python(run.path());
  ssan::Ssan model = ssan::load_model(run / "r/last.pt");
  EXPECT_LE((predict(model, x) - read_tensor(run.path() / "cpp_0.out.pth", "y")).abs().max().item<double>(), kTolerance);
}

TEST_F(InteropTools, InitFromAPythonStateDictFineTunesItsWeights) {
  ScratchDir run;
  write_file_atomic(run.path() / "py_0.json", ssan::config_to_json(ssan::load_config(config())).dump());
  torch::manual_seed(5);
  const torch::Tensor x = torch::rand({1, 2, 32, 36});
  ssan::write_state_dict({{"x", x}}, run.path() / "input.pth");
  run_python(run.path());  // random weights made in Python -> py_0.pth, py_0.json ("model" keys), py_0.out.pth
  // Without --config the model comes from py_0.json; a vanishing learning rate keeps the weights.
  const auto r = run_tool("ssan-train", "--init-from " + (run / "py_0.pth") + train_args() + " --out " + (run / "tuned") +
                                            " --max-steps 1 --lr 1e-12 --warmup-steps 0");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ssan::Ssan tuned = ssan::load_model(run / "tuned/last.pt");
  EXPECT_LE((predict(tuned, x) - read_tensor(run.path() / "py_0.out.pth", "y")).abs().max().item<double>(), kTolerance);
  // A config of another architecture is refused, naming the weights.
  std::ofstream(run.path() / "other.ini") << "[model]\nextractor = unet\nfeatures = 8\nattention = none\nbranches = 1\nfusion = residual\n";
  const auto bad = run_tool("ssan-train", "--config " + (run / "other.ini") + " --init-from " + (run / "py_0.pth") + train_args() + " --out " +
                                              (run / "bad") + " --max-steps 1");
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("py_0.pth"), std::string::npos) << bad.err;
}

}  // namespace emt::test
