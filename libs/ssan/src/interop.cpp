#include "emt/ssan/interop.hpp"

#include <caffe2/serialize/inline_container.h>

#include <fstream>
#include <iterator>
#include <set>

#include "emt/common/atomic_file.hpp"
#include "emt/common/error.hpp"
#include "emt/common/output_guard.hpp"
#include "emt/common/zip_check.hpp"
#include "emt/ssan/checkpoint.hpp"

namespace emt::ssan {
namespace fs = std::filesystem;
using nlohmann::json;

fs::path config_path_for(const fs::path& pth) {
  fs::path p = pth;
  return p.replace_extension(".json");
}

namespace {

json model_json(const ModelConfig& m) {
  return json{{"extractor", to_string(m.extractor)}, {"features", m.features}, {"blocks", m.blocks}, {"layers", m.layers}, {"growth", m.growth},
              {"unet_levels", m.unet_levels}, {"attention", to_string(m.attention)}, {"reduction", m.reduction}, {"ph", m.ph}, {"pw", m.pw},
              {"ph2", m.ph2}, {"pw2", m.pw2}, {"kel_kernel", m.kel_kernel}, {"attention_at", to_string(m.attention_at)},
              {"fusion", to_string(m.fusion)}, {"branches", m.branches}};
}

}  // namespace

json config_to_json(const SsanConfig& config) {
  return json{{"format", "emtriplet-ssan"}, {"version", 1}, {"model", model_json(config.model)}, {"config_ini", config.text}};
}

SsanConfig config_from_json(const json& j, const std::string& origin) {
  auto bad = [&](const std::string& what) { return Error(ErrorKind::kInvalidData, "model config JSON: " + what, origin); };
  if (!j.is_object()) throw bad("not a JSON object");
  if (j.contains("config_ini")) {
    if (!j["config_ini"].is_string()) throw bad("'config_ini' is not a string");
    return parse_config(j["config_ini"].get<std::string>(), origin + ":config_ini");
  }
  if (!j.contains("model") || !j["model"].is_object()) throw bad("no 'model' object");
  // An INI from the keys, so the one parser validates both kinds of config.
  const json known = model_json(ModelConfig{});
  std::string ini = "[model]\n";
  for (const auto& [key, value] : j["model"].items()) {
    if (!known.contains(key)) throw bad("unknown model key '" + key + "'");
    if (value.is_string()) {
      ini += key + " = " + value.get<std::string>() + "\n";
    } else if (value.is_number_integer()) {
      ini += key + " = " + std::to_string(value.get<std::int64_t>()) + "\n";
    } else {
      throw bad("model key '" + key + "' is neither a string nor an integer");
    }
  }
  return parse_config(ini, origin);
}

StateDict state_dict(Ssan& model) {
  StateDict out;
  for (const auto& p : model->named_parameters()) out.emplace_back(p.key(), p.value().detach().to(torch::kCPU).contiguous());
  for (const auto& b : model->named_buffers()) out.emplace_back(b.key(), b.value().detach().to(torch::kCPU).contiguous());
  return out;
}

void write_state_dict(const StateDict& dict, const fs::path& pth) {
  c10::Dict<std::string, torch::Tensor> d;
  for (const auto& [name, t] : dict) d.insert(name, t);
  const std::vector<char> bytes = torch::pickle_save(d);
  AtomicFile out(pth);
  write_file(out.temp_path(), std::string_view(bytes.data(), bytes.size()));
  out.commit();
}

StateDict read_state_dict(const fs::path& pth) {
  if (!fs::exists(pth)) throw Error(ErrorKind::kNotFound, "no state dict", pth.string());
  verify_zip_archive(pth);
  std::ifstream in(pth, std::ios::binary);
  const std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  torch::IValue value;
  try {
    value = torch::pickle_load(bytes);
  } catch (const c10::Error& e) {
    const std::string what = e.what_without_backtrace();
    throw Error(ErrorKind::kInvalidData,
                "not a readable state dict (save it in Python as torch.save(dict(model.state_dict()), PATH): LibTorch cannot read an OrderedDict): " +
                    what.substr(0, what.find('\n')),
                pth.string());
  }
  if (!value.isGenericDict()) throw Error(ErrorKind::kInvalidData, "not a state dict: the file holds a " + value.tagKind() + ", not a dict", pth.string());
  StateDict out;
  for (const auto& kv : value.toGenericDict()) {
    if (!kv.key().isString() || !kv.value().isTensor()) {
      throw Error(ErrorKind::kInvalidData, "not a state dict: every entry must map a name to a tensor", pth.string());
    }
    out.emplace_back(kv.key().toStringRef(), kv.value().toTensor());
  }
  return out;
}

void load_state_dict(Ssan& model, const StateDict& dict, const std::string& origin) {
  std::map<std::string, const torch::Tensor*> by_name;
  for (const auto& [name, t] : dict) by_name[name] = &t;
  torch::NoGradGuard no_grad;
  std::set<std::string> used;
  auto copy = [&](const std::string& name, torch::Tensor& dst) {
    const auto it = by_name.find(name);
    if (it == by_name.end()) throw Error(ErrorKind::kInvalidArgument, "weights lack " + name + " (another architecture than the config?)", origin);
    if (it->second->sizes() != dst.sizes()) {
      throw Error(ErrorKind::kInvalidArgument,
                  "weights hold " + name + " of shape " + c10::str(it->second->sizes()) + ", the model needs " + c10::str(dst.sizes()), origin);
    }
    dst.copy_(*it->second);
    used.insert(name);
  };
  for (auto& p : model->named_parameters()) copy(p.key(), p.value());
  for (auto& b : model->named_buffers()) copy(b.key(), b.value());
  for (const auto& [name, t] : dict) {
    if (used.count(name) == 0) throw Error(ErrorKind::kInvalidArgument, "weights hold " + name + ", which the model config has not", origin);
  }
}

namespace {

}  // namespace

bool is_state_dict_file(const fs::path& path) {
  if (!fs::exists(path)) throw Error(ErrorKind::kNotFound, "no such weights file", path.string());
  try {
    caffe2::serialize::PyTorchStreamReader reader(path.string());
    return !reader.hasRecord("constants.pkl");
  } catch (const c10::Error&) {
    throw Error(ErrorKind::kDataLoss, "not a PyTorch zip archive (truncated, or an old non-zip torch.save file?)", path.string());
  }
}

namespace {

json read_model_json(const fs::path& cj) {
  try {
    return json::parse(read_file(cj));
  } catch (const json::exception& e) {
    throw Error(ErrorKind::kInvalidData, std::string("not valid JSON: ") + e.what(), cj.string());
  }
}

}  // namespace

SsanConfig config_of_weights(const std::string& path) {
  if (!is_state_dict_file(path)) {
    (void)load_model(path);  // verifies the archive and that its config builds
    return parse_config(read_checkpoint_meta(path).config_text, path + ":config");
  }
  const fs::path cj = config_path_for(path);
  if (!fs::exists(cj)) throw Error(ErrorKind::kNotFound, "a state dict needs its config: " + cj.string() + " or --config", path);
  return config_from_json(read_model_json(cj), cj.string());
}

std::vector<triplets::PreprocessingRecord> preprocessing_of_weights(const std::string& path) {
  if (!is_state_dict_file(path)) return read_checkpoint_meta(path).preprocessing;
  const fs::path cj = config_path_for(path);
  if (!fs::exists(cj)) return {};
  const json j = read_model_json(cj);
  std::vector<triplets::PreprocessingRecord> records;
  if (!j.contains("preprocessing")) return records;  // written before the contract, or by Python without it
  if (!j["preprocessing"].is_array()) throw Error(ErrorKind::kInvalidData, "preprocessing must be a list", cj.string());
  for (const json& r : j["preprocessing"]) records.push_back(triplets::preprocessing_from_json(r, cj.string()));
  return records;
}

LoadedModel load_any_model(const std::string& path, const std::optional<SsanConfig>& config) {
  LoadedModel out;
  if (!config && !is_state_dict_file(path)) {
    // A checkpoint with its own config: one read of its config and records,
    // one load of its weights (not the four opens of the general path below).
    CheckpointMeta meta = read_checkpoint_meta(path);
    out.config = parse_config(meta.config_text, path + ":config");
    out.model = Ssan(out.config.model);
    (void)load_checkpoint(path, out.model, nullptr);
    out.model->eval();
    out.preprocessing = std::move(meta.preprocessing);
    return out;
  }
  out.config = config ? *config : config_of_weights(path);
  out.model = Ssan(out.config.model);
  init_weights_from(out.model, path);
  out.model->eval();
  out.preprocessing = preprocessing_of_weights(path);
  return out;
}

void init_weights_from(Ssan& model, const std::string& path) {
  if (is_state_dict_file(path)) {
    load_state_dict(model, read_state_dict(path), path);
  } else {
    Ssan source = load_model(path);
    load_state_dict(model, state_dict(source), path);
  }
}

json export_model(const ExportOptions& o) {
  if (o.out.empty()) throw Error(ErrorKind::kInvalidArgument, "give --out MODEL.pth");
  const fs::path pth(o.out), cj = config_path_for(pth);
  if (pth == cj) throw Error(ErrorKind::kInvalidArgument, "--out must not end in .json (the config is written beside it as .json)", o.out);
  refuse_output_overlapping_inputs(pth, {o.checkpoint}, "--out");
  refuse_output_overlapping_inputs(cj, {o.checkpoint}, "the config beside --out");
  for (const fs::path& p : {pth, cj}) {
    if (fs::exists(p) && !o.force) throw Error(ErrorKind::kInvalidArgument, "exists (give --force to replace it)", p.string());
    if (fs::is_directory(p)) throw Error(ErrorKind::kIo, "is a directory", p.string());
  }
  const OutputLock lock(pth);
  LoadedModel m = load_any_model(o.checkpoint);
  // A checkpoint from before the contract: the records of the data it was trained on, when given.
  if (!o.data_dir.empty()) {
    if (!m.preprocessing.empty()) throw Error(ErrorKind::kInvalidArgument, "--data: the checkpoint already carries its data's preprocessing record", o.checkpoint);
    m.preprocessing = triplets::read_preprocessing(o.data_dir);
    if (m.preprocessing.empty()) throw Error(ErrorKind::kInvalidData, "no preprocessing record in its manifest (built before records existed: rebuild it)", o.data_dir);
  }
  const StateDict dict = state_dict(m.model);
  json config = config_to_json(m.config);
  json records = json::array();
  for (const auto& r : m.preprocessing) records.push_back(triplets::to_json(r));
  config["preprocessing"] = records;
  write_state_dict(dict, pth);
  write_file_atomic(cj, config.dump(2) + "\n");
  return json{{"pth", pth.string()}, {"json", cj.string()}, {"tensors", dict.size()}, {"parameters", m.model->parameter_count()}, {"preprocessing_records", m.preprocessing.size()}};
}

}  // namespace emt::ssan
