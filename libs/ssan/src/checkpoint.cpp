#include "emt/ssan/checkpoint.hpp"

#include <ATen/CPUGeneratorImpl.h>

#include "emt/common/atomic_file.hpp"
#include "emt/common/error.hpp"
#include "emt/common/zip_check.hpp"
#include "emt/ssan/config.hpp"

namespace emt::ssan {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// Text rides in the archive as a uint8 tensor (archives hold tensors only).
torch::Tensor text_tensor(const std::string& text) {
  return torch::from_blob(const_cast<char*>(text.data()), {static_cast<int64_t>(text.size())}, torch::kUInt8).clone();
}

std::string tensor_text(const torch::Tensor& t) {
  return std::string(reinterpret_cast<const char*>(t.data_ptr<std::uint8_t>()), static_cast<std::size_t>(t.numel()));
}

void open_archive(torch::serialize::InputArchive& archive, const std::string& path) {
  if (!fs::exists(path)) throw Error(ErrorKind::kNotFound, "no checkpoint", path);
  verify_zip_archive(path);  // LibTorch checks no CRC: a flipped weight byte would load silently
  try {
    archive.load_from(path);
  } catch (const c10::Error&) {
    throw Error(ErrorKind::kDataLoss, "not a readable SSAN checkpoint (truncated or corrupt?)", path);
  }
}

CheckpointMeta read_meta(torch::serialize::InputArchive& archive, const std::string& path) {
  CheckpointMeta meta;
  torch::Tensor config, records;
  try {
    archive.read("config", config);
  } catch (const c10::Error&) {
    throw Error(ErrorKind::kInvalidData, "not an SSAN checkpoint: it holds no model config", path);
  }
  meta.config_text = tensor_text(config);
  if (archive.try_read("preprocessing", records)) {  // absent in checkpoints written before the contract
    json j;
    try {
      j = json::parse(tensor_text(records));
    } catch (const json::exception& e) {
      throw Error(ErrorKind::kDataLoss, std::string("checkpoint preprocessing record is not JSON: ") + e.what(), path);
    }
    if (!j.is_array()) throw Error(ErrorKind::kDataLoss, "checkpoint preprocessing record is not a list", path);
    for (const json& r : j) meta.preprocessing.push_back(triplets::preprocessing_from_json(r, path));
  }
  return meta;
}

}  // namespace

void save_checkpoint(const fs::path& path, Ssan& model, torch::optim::Adam& optimizer, const CheckpointState& c, const CheckpointMeta& meta) {
  torch::serialize::OutputArchive archive, model_archive, optim_archive;
  model->save(model_archive);
  optimizer.save(optim_archive);
  archive.write("model", model_archive);
  archive.write("optimizer", optim_archive);
  archive.write("step", torch::tensor(c.step));
  archive.write("epoch", torch::tensor(c.epoch));
  archive.write("position", torch::tensor(c.position));
  archive.write("best_psnr", torch::tensor(c.best_psnr, torch::kFloat64));
  archive.write("planned_steps", torch::tensor(c.planned_steps));
  archive.write("decay_step", torch::tensor(c.decay_step));
  archive.write("rng", at::detail::getDefaultCPUGenerator().get_state());
  archive.write("config", text_tensor(meta.config_text));
  json records = json::array();
  for (const auto& r : meta.preprocessing) records.push_back(triplets::to_json(r));
  archive.write("preprocessing", text_tensor(records.dump()));
  AtomicFile out(path);
  try {
    archive.save_to(out.temp_path().string());
  } catch (const c10::Error&) {
    throw Error(ErrorKind::kIo, "cannot write the checkpoint (disk full or file-size limit?)", path.string());
  }
  out.commit();
}

CheckpointState load_checkpoint(const fs::path& path, Ssan& model, torch::optim::Adam* optimizer) {
  torch::serialize::InputArchive archive, model_archive, optim_archive;
  open_archive(archive, path.string());
  try {
    archive.read("model", model_archive);
    model->load(model_archive);
  } catch (const c10::Error& e) {
    const std::string what = e.what_without_backtrace();
    throw Error(ErrorKind::kInvalidData,
                "checkpoint does not fit the model config (resumed or loaded with another --config?): " + what.substr(0, what.find('\n')),
                path.string());
  }
  CheckpointState c;
  auto value = [&](const char* key) {
    torch::Tensor t;  // a fresh tensor per key: reading into a used one resizes its storage
    archive.read(key, t);
    return t;
  };
  c.step = value("step").item<int64_t>();
  c.epoch = value("epoch").item<int64_t>();
  c.position = value("position").item<int64_t>();
  c.best_psnr = value("best_psnr").item<double>();
  if (optimizer) {
    // Checkpoints written before schedules could be fitted have neither key.
    torch::Tensor planned, decay;
    if (archive.try_read("planned_steps", planned)) c.planned_steps = planned.item<int64_t>();
    if (archive.try_read("decay_step", decay)) c.decay_step = decay.item<int64_t>();
    archive.read("optimizer", optim_archive);
    optimizer->load(optim_archive);
    const torch::Tensor t = value("rng");
    auto generator = at::detail::getDefaultCPUGenerator();
    generator.set_state(t);
  }
  return c;
}

CheckpointMeta read_checkpoint_meta(const std::string& path) {
  torch::serialize::InputArchive archive;
  open_archive(archive, path);
  return read_meta(archive, path);
}

Ssan load_model(const std::string& path) {
  const SsanConfig config = parse_config(read_checkpoint_meta(path).config_text, path + ":config");
  Ssan model(config.model);
  (void)load_checkpoint(path, model, nullptr);
  model->eval();
  return model;
}

}  // namespace emt::ssan
