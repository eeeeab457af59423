#pragma once
// Weights that leave C++ and come back: an SSAN model as a plain PyTorch
// state dict (MODEL.pth, `torch.load` reads it into bench/reference/ssan_ref.py)
// with its config beside it as JSON (MODEL.json). docs/training.md, "Python".
//
// The .pth is what torch::pickle_save writes: the zip format of Python's
// torch.save holding a plain {name: tensor} dict (not the OrderedDict that
// Python's state_dict() returns: LibTorch's unpickler cannot rebuild that, so
// files made in Python must be saved as dict(...); ssan_ref.save_pth does).
// Parameter names are the C++ module names; the Python reference uses the same.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "emt/ssan/config.hpp"
#include "emt/ssan/model.hpp"
#include "emt/triplets/preprocessing.hpp"

namespace emt::ssan {

using StateDict = std::vector<std::pair<std::string, torch::Tensor>>;

/// MODEL.pth -> MODEL.json (the extension replaced, or appended when none).
[[nodiscard]] std::filesystem::path config_path_for(const std::filesystem::path& pth);

/// {"format": "emtriplet-ssan", "version": 1, "model": {the [model] keys}, "config_ini": the INI}.
[[nodiscard]] nlohmann::json config_to_json(const SsanConfig& config);
/// The config of a MODEL.json: its "config_ini" when present (loss settings
/// included), else an INI made from "model" (what Python writes), validated
/// by parse_config. Throws kInvalidData naming `origin`.
[[nodiscard]] SsanConfig config_from_json(const nlohmann::json& j, const std::string& origin);

/// Every parameter and buffer of `model`, by name, on the CPU.
[[nodiscard]] StateDict state_dict(Ssan& model);
/// Writes MODEL.pth (pickle_save zip) atomically.
void write_state_dict(const StateDict& dict, const std::filesystem::path& pth);
/// Reads a torch.save file of a plain {str: tensor} dict; throws kNotFound /
/// kInvalidData naming the file (an OrderedDict or legacy non-zip file says how to save it).
[[nodiscard]] StateDict read_state_dict(const std::filesystem::path& pth);
/// Copies `dict` into `model`: every parameter present with its shape and no
/// extra names, else kInvalidArgument naming the first mismatch and `origin`.
void load_state_dict(Ssan& model, const StateDict& dict, const std::string& origin);

/// True when `path` is a state dict file rather than an ssan-train
/// checkpoint (a TorchScript-style archive, which holds constants.pkl).
[[nodiscard]] bool is_state_dict_file(const std::filesystem::path& path);

/// The config that belongs to a weights file: a checkpoint's own, or the
/// MODEL.json beside a state dict (kNotFound when absent).
[[nodiscard]] SsanConfig config_of_weights(const std::string& path);

/// The preprocessing records that belong to a weights file: a checkpoint's
/// own, or MODEL.json's "preprocessing" beside a state dict (empty when absent).
[[nodiscard]] std::vector<triplets::PreprocessingRecord> preprocessing_of_weights(const std::string& path);

/// Weights for fine-tuning or inference from either kind of file: a
/// checkpoint (its own config) or a state dict (config from `config`, else
/// MODEL.json beside it). The model is in eval mode.
struct LoadedModel {
  SsanConfig config;
  Ssan model{nullptr};
  /// The preprocessing of the data it was trained on (checkpoint.hpp; a state
  /// dict's MODEL.json "preprocessing"); empty when unknown.
  std::vector<triplets::PreprocessingRecord> preprocessing;
};
[[nodiscard]] LoadedModel load_any_model(const std::string& path, const std::optional<SsanConfig>& config = std::nullopt);

/// ssan-train --init-from: copies the weights of a checkpoint or a state dict
/// into `model` (names and shapes must match its config; kInvalidArgument
/// naming `path` otherwise).
void init_weights_from(Ssan& model, const std::string& path);

struct ExportOptions {
  std::string checkpoint, out;  ///< out: MODEL.pth; MODEL.json is written beside it
  /// A shard directory whose preprocessing records go into MODEL.json, for a
  /// checkpoint written before checkpoints carried them (refused otherwise).
  std::string data_dir;
  bool force = false;           ///< replace existing MODEL.pth / MODEL.json
};
/// ssan-export: returns {"pth", "json", "tensors", "parameters"}.
nlohmann::json export_model(const ExportOptions& options);

}  // namespace emt::ssan
