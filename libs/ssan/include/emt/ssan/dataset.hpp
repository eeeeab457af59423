#pragma once
// Training data straight from triplet shards (through libs/triplets'
// ShardReader: one hyperslab per sample), with the paper's augmentation and a
// background prefetch thread.
//
// Determinism: the order of epoch e is a permutation seeded by (seed, e), and
// each sample's augmentation by (seed, e, position), so batches do not depend
// on thread timing.
#include <array>
#include <atomic>
#include <cstdint>
#include <exception>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <opencv2/core.hpp>
#include <torch/torch.h>

#include "emt/triplets/shard_directory.hpp"

namespace emt::ssan {

struct Augmentation {
  bool flips = true;          ///< random horizontal and vertical flips
  bool temporal_swap = true;  ///< slices 0 and 2 exchanged
  int crop = 0;               ///< random crop side (0 or >= tile: whole tile)
  /// Blind alignment (TrainAlignment::kBlind): the middle is cropped displaced
  /// by its stored deviation from the outer slices' mean frame, as it is
  /// when ssan-interpolate aligns the neighbours to each other. Needs crop <
  /// tile; a deviation larger than the margin is clamped to it.
  bool blind_alignment = false;
};

/// The triplets of a shard directory, or of one split file (DIR/splits/NAME.txt).
class TripletDataset {
 public:
  /// `split` empty: every triplet of the directory. Errors name the file.
  TripletDataset(const std::string& dir, const std::string& split);
  [[nodiscard]] std::int64_t size() const { return static_cast<std::int64_t>(refs_.size()); }
  [[nodiscard]] int tile_size() const { return tile_; }
  [[nodiscard]] const triplets::SampleRef& ref(std::int64_t i) const { return refs_[static_cast<std::size_t>(i)]; }
  /// Sample i as uint8 [3, T, T] (slices 0, 1, 2). Thread-safe.
  [[nodiscard]] torch::Tensor read(std::int64_t i) const;
  /// Sample i as three CV_8UC1 images (slices 0, 1, 2), for metrics and baselines.
  [[nodiscard]] std::array<cv::Mat, 3> read_u8(std::int64_t i) const;
  /// Where the middle of sample i lies relative to the mean frame of slices 0
  /// and 2 (dy, dx; rounded): minus the mean of the shifts triplet-build applied to them.
  [[nodiscard]] std::array<int, 2> blind_offset(std::int64_t i) const { return blind_offset_[static_cast<std::size_t>(i)]; }

 private:
  std::shared_ptr<const triplets::ShardDirectory> shards_;  // its readers, opened once, serve every read
  std::vector<triplets::SampleRef> refs_;
  std::vector<std::array<int, 2>> blind_offset_;
  int tile_ = 0;
};

struct Batch {
  torch::Tensor outer;  ///< [B, 2, H, W] float in [0, 1]
  torch::Tensor gt;     ///< [B, 1, H, W]
  std::int64_t epoch = 0, position = 0;  ///< position of the first sample in the epoch
};

/// Batches in epoch order with augmentation, prepared `prefetch` ahead on a
/// background thread. Drops the last incomplete batch of an epoch.
/// Data parallel (`world` > 1): a step takes `batch` x `world` consecutive
/// samples of the order (the global batch) and this loader yields share
/// `rank` of them; Batch::position is the global batch's.
class BatchLoader {
 public:
  BatchLoader(const TripletDataset& data, int batch, Augmentation aug, std::uint64_t seed, bool shuffle, int prefetch = 4,
              std::int64_t start_epoch = 0, std::int64_t start_position = 0, int rank = 0, int world = 1);
  ~BatchLoader();
  [[nodiscard]] Batch next();
  [[nodiscard]] std::int64_t batches_per_epoch() const { return data_.size() / (std::int64_t{batch_} * world_); }
  /// Seconds the consumer spent waiting for data since construction.
  [[nodiscard]] double wait_seconds() const { return wait_seconds_; }

 private:
  void produce();
  [[nodiscard]] Batch make(std::int64_t epoch, std::int64_t position) const;
  const TripletDataset& data_;
  int batch_, rank_, world_;
  Augmentation aug_;
  std::uint64_t seed_;
  bool shuffle_;
  std::int64_t epoch_, position_;
  struct Queue;                   // a tbb::concurrent_bounded_queue of batches (or the producer's error)
  std::unique_ptr<Queue> queue_;  // (TBB stays out of this header)
  std::atomic<bool> stop_{false}, finished_{false};
  std::exception_ptr error_;      // the producer's failure, once next() met it
  double wait_seconds_ = 0;
  std::thread worker_;
};

/// Deterministic sample order of an epoch.
[[nodiscard]] std::vector<std::int64_t> epoch_order(std::int64_t n, std::uint64_t seed, std::int64_t epoch, bool shuffle);

}  // namespace emt::ssan
