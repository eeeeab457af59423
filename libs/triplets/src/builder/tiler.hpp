#pragma once
// triplet-build, phase 2's parallel stage (private to libs/triplets): one
// triplet (z - step, z, z + step) in one lateral block read, shifted by whole
// pixels, cut into tiles, filtered and histogram-matched.
#include <cstdint>
#include <list>
#include <mutex>
#include <utility>
#include <vector>

#include "builder/plan.hpp"
#include "emt/triplets/filters.hpp"
#include "emt/triplets/shard.hpp"

namespace emt::triplets::builder {

/// Tile origins along one axis inside [lo, hi), the grid centred in the
/// valid range. Throws kInvalidArgument for tile or stride < 1.
[[nodiscard]] std::vector<std::int64_t> tile_origins(std::int64_t lo, std::int64_t hi, int tile, int stride);

/// Bounded least-recently-used cache of decoded block regions (a lateral
/// block of a slice plus `margin` px, block_with_margin) shared by pipeline
/// workers: it never holds a whole section that has several blocks.
class SliceCache {
 public:
  SliceCache(const std::vector<Source>& sources, std::size_t capacity, int margin)
      : sources_(sources), capacity_(capacity), margin_(margin) {}
  /// Block `block` of slice z of `source` with its margin; region() says where it lies.
  [[nodiscard]] cv::Mat get(std::size_t source, std::size_t block, std::int64_t z);
  [[nodiscard]] cv::Rect region(std::size_t source, std::size_t block) const;

 private:
  struct Key {
    std::size_t source, block;
    std::int64_t z;
    bool operator==(const Key& o) const { return source == o.source && block == o.block && z == o.z; }
  };
  const std::vector<Source>& sources_;
  std::size_t capacity_;
  int margin_;
  std::mutex mutex_;
  std::list<std::pair<Key, cv::Mat>> entries_;
};

/// A rejected or accepted tile, in the order the serial stage consumes them.
struct TileOutcome {
  std::int64_t y = 0, x = 0;
  TileDecision decision;
  TripletSample sample;  ///< filled when accepted
};

struct TripletResult {
  std::size_t index = 0;
  std::vector<TileOutcome> tiles;
  bool interrupted = false;  ///< a signal arrived mid-triplet: tiles incomplete, not to be used
};

/// Tiles triplet `index` of the plan: its block's tiles, row by row, left to
/// right, inside the block (a tile never crosses a block edge; origins are
/// slice coordinates).
[[nodiscard]] TripletResult tile_triplet(const Plan& plan, const BuildSpec& spec, std::size_t index, SliceCache& cache);

}  // namespace emt::triplets::builder
