#include "emt/ssan/dataset.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <filesystem>
#include <random>
#include <thread>

#include <tbb/concurrent_queue.h>

#include "emt/common/error.hpp"
#include "emt/common/random.hpp"

namespace emt::ssan {
namespace fs = std::filesystem;

TripletDataset::TripletDataset(const std::string& dir, const std::string& split)
    : shards_(std::make_shared<const triplets::ShardDirectory>(dir)) {
  auto all = shards_->samples(/*verify_checksums=*/true);
  if (split.empty()) {
    refs_ = std::move(all);
  } else {
    std::map<std::pair<std::string, std::int64_t>, std::size_t> index;
    for (std::size_t i = 0; i < all.size(); ++i) index[{all[i].shard, all[i].index}] = i;
    for (const auto& entry : triplets::read_split_file(dir, split)) {
      const auto it = index.find(entry);
      if (it == index.end()) {
        throw Error(ErrorKind::kInvalidData, "split lists a triplet the shards do not hold: " + entry.first + " " + std::to_string(entry.second),
                    triplets::split_file_path(dir, split));
      }
      refs_.push_back(all[it->second]);
    }
  }
  if (refs_.empty()) throw Error(ErrorKind::kInvalidData, "no triplets" + (split.empty() ? std::string() : " in split " + split), dir);
  tile_ = shards_->tile_size();  // every shard's, checked when it was opened
  std::map<std::string, std::vector<triplets::TripletSample>> meta;
  for (const auto& r : refs_) {
    if (!meta.count(r.shard)) meta[r.shard] = shards_->reader(r.shard).read_meta();
  }
  for (const auto& r : refs_) {
    const auto& s = meta.at(r.shard).at(static_cast<std::size_t>(r.index)).shift;  // dy0, dx0, dy2, dx2
    blind_offset_.push_back({static_cast<int>(std::lround(-0.5 * (s[0] + s[2]))), static_cast<int>(std::lround(-0.5 * (s[1] + s[3])))});
  }
}

torch::Tensor TripletDataset::read(std::int64_t i) const {
  const auto& r = refs_.at(static_cast<std::size_t>(i));
  torch::Tensor t = torch::empty({3, tile_, tile_}, torch::kUInt8);
  shards_->reader(r.shard).read_pixels(r.index, t.data_ptr<std::uint8_t>());
  return t;
}

std::array<cv::Mat, 3> TripletDataset::read_u8(std::int64_t i) const {
  const torch::Tensor s = read(i);  // [3, T, T] uint8, contiguous
  std::array<cv::Mat, 3> out;
  for (int j = 0; j < 3; ++j) out[static_cast<std::size_t>(j)] = cv::Mat(tile_, tile_, CV_8UC1, s[j].data_ptr<std::uint8_t>()).clone();
  return out;
}

std::vector<std::int64_t> epoch_order(std::int64_t n, std::uint64_t seed, std::int64_t epoch, bool shuffle) {
  std::vector<std::int64_t> order(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) order[static_cast<std::size_t>(i)] = i;
  if (shuffle) portable_shuffle(order, splitmix64(seed ^ splitmix64(static_cast<std::uint64_t>(epoch))));
  return order;
}

/// Batches in order, or the producer's failure as the last item.
struct BatchLoader::Queue {
  struct Item {
    Batch batch;
    std::exception_ptr error;
  };
  tbb::concurrent_bounded_queue<Item> items;
};

BatchLoader::BatchLoader(const TripletDataset& data, int batch, Augmentation aug, std::uint64_t seed, bool shuffle, int prefetch,
                         std::int64_t start_epoch, std::int64_t start_position, int rank, int world)
    : data_(data), batch_(batch), rank_(rank), world_(world), aug_(aug), seed_(seed), shuffle_(shuffle),
      epoch_(start_epoch), position_(start_position), queue_(std::make_unique<Queue>()) {
  if (batch < 1) throw Error(ErrorKind::kInvalidArgument, "batch size must be at least 1");
  if (world < 1 || rank < 0 || rank >= world) throw Error(ErrorKind::kInvalidArgument, "loader rank outside the world");
  if (data.size() < std::int64_t{batch} * world) {
    throw Error(ErrorKind::kInvalidData, "fewer triplets (" + std::to_string(data.size()) + ") than one batch (" + std::to_string(std::int64_t{batch} * world) +
                                             (world > 1 ? " over all ranks" : "") + ")");
  }
  queue_->items.set_capacity(std::max(1, prefetch));
  worker_ = std::thread([this] { produce(); });
}

BatchLoader::~BatchLoader() {
  stop_ = true;
  // The producer sees stop_ before its next batch; until it has, keep room
  // in the queue so a push it is blocked in (or about to make) returns.
  Queue::Item dropped;
  while (!finished_) {
    while (queue_->items.try_pop(dropped)) {
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  worker_.join();
}

Batch BatchLoader::make(std::int64_t epoch, std::int64_t position) const {
  const auto order = epoch_order(data_.size(), seed_, epoch, shuffle_);
  const int t = data_.tile_size();
  const int crop = (aug_.crop > 0 && aug_.crop < t) ? aug_.crop : t;
  std::vector<torch::Tensor> outer, gt;
  for (int k = 0; k < batch_; ++k) {
    const std::int64_t pos = position + std::int64_t{rank_} * batch_ + k;
    std::mt19937_64 rng(splitmix64(seed_ ^ splitmix64(static_cast<std::uint64_t>(epoch) * 1000003ULL + static_cast<std::uint64_t>(pos))));
    const std::int64_t sample = order[static_cast<std::size_t>(pos)];
    torch::Tensor s = data_.read(sample).to(torch::kFloat32).div_(255.0);
    if (crop < t) {
      const int margin = t - crop;
      std::array<int, 2> offset{0, 0};
      if (aug_.blind_alignment) {
        offset = data_.blind_offset(sample);
        for (int& d : offset) d = std::clamp(d, -margin, margin);
      }
      // Origins of the outer slices' window such that the middle's window, displaced by offset, fits too.
      auto origin = [&](int d) {
        const int lo = std::max(0, -d), hi = std::min(margin, margin - d);
        return lo + static_cast<int>(rng() % static_cast<std::uint64_t>(hi - lo + 1));
      };
      const int y = origin(offset[0]), x = origin(offset[1]);
      if (offset[0] == 0 && offset[1] == 0) {
        s = s.slice(1, y, y + crop).slice(2, x, x + crop);
      } else {
        const torch::Tensor outer = s.slice(1, y, y + crop).slice(2, x, x + crop);
        const torch::Tensor middle = s[1].slice(0, y + offset[0], y + offset[0] + crop).slice(1, x + offset[1], x + offset[1] + crop);
        s = torch::stack({outer[0], middle, outer[2]});
      }
    }
    if (aug_.flips && (rng() & 1)) s = s.flip(2);
    if (aug_.flips && (rng() & 1)) s = s.flip(1);
    if (aug_.temporal_swap && (rng() & 1)) s = s.flip(0);
    outer.push_back(torch::stack({s[0], s[2]}));
    gt.push_back(s[1].unsqueeze(0));
  }
  return {torch::stack(outer).contiguous(), torch::stack(gt).contiguous(), epoch, position};
}

void BatchLoader::produce() {
  try {
    while (!stop_) {
      const std::int64_t global = std::int64_t{batch_} * world_;
      if (position_ + global > data_.size()) {
        ++epoch_;
        position_ = 0;
      }
      Batch b = make(epoch_, position_);
      position_ += global;
      queue_->items.push({std::move(b), nullptr});
    }
  } catch (...) {
    queue_->items.push({Batch{}, std::current_exception()});  // after the batches made so far; a closing loader drains the queue
  }
  finished_ = true;
}

Batch BatchLoader::next() {
  if (error_) std::rethrow_exception(error_);
  const auto start = std::chrono::steady_clock::now();
  Queue::Item item;
  queue_->items.pop(item);
  wait_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (item.error) {
    error_ = item.error;
    std::rethrow_exception(error_);
  }
  return std::move(item.batch);
}

}  // namespace emt::ssan
