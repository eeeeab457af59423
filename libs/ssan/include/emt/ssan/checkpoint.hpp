#pragma once
// ssan-train checkpoints (RUN/last.pt, best.pt, snapshots): the model and
// optimizer state, the position in the data and the schedule, the RNG, the
// model config and the data's preprocessing records, in one LibTorch archive
// that resumes a run exactly. Written atomically; read with a CRC check
// (LibTorch checks none). docs/training.md, "Checkpoints".
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "emt/ssan/model.hpp"
#include "emt/triplets/preprocessing.hpp"

namespace emt::ssan {

/// Where a run stands: what --resume needs besides the weights.
struct CheckpointState {
  std::int64_t step = 0, epoch = 0, position = 0;
  double best_psnr = -1;
  /// A schedule fitted to --max-minutes: its length and first decayed step
  /// (-1: not fitted yet, or epochs-based). Kept so a resumed run continues it.
  std::int64_t planned_steps = -1, decay_step = -1;
};

/// What travels with the weights.
struct CheckpointMeta {
  std::string config_text;  ///< the model INI
  std::vector<triplets::PreprocessingRecord> preprocessing;  ///< of the data trained on (empty: unknown)
};

/// Writes a checkpoint atomically; kIo when the disk refuses.
void save_checkpoint(const std::filesystem::path& path, Ssan& model, torch::optim::Adam& optimizer, const CheckpointState& state,
                     const CheckpointMeta& meta);

/// Loads weights into `model` (built from the checkpoint's config) and, with
/// an optimizer, its state and the RNG for an exact resume. Throws kNotFound,
/// kDataLoss (truncated, corrupt) or kInvalidData (another architecture).
CheckpointState load_checkpoint(const std::filesystem::path& path, Ssan& model, torch::optim::Adam* optimizer);

/// The config and preprocessing records stored in a checkpoint (records
/// empty for checkpoints written before they were kept).
[[nodiscard]] CheckpointMeta read_checkpoint_meta(const std::string& path);

/// A model in eval mode from a checkpoint, built from the config stored in it.
/// Throws kNotFound / kDataLoss naming the file.
[[nodiscard]] Ssan load_model(const std::string& checkpoint);

}  // namespace emt::ssan
