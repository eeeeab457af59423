#pragma once
// triplet-build, phase 2's parallel stage (private to libs/triplets): one
// triplet (z - step, z, z + step) read, shifted by whole pixels, cut into
// tiles, filtered and histogram-matched.
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

/// Bounded least-recently-used cache of decoded slices shared by pipeline workers.
class SliceCache {
 public:
  SliceCache(const std::vector<Source>& sources, std::size_t capacity) : sources_(sources), capacity_(capacity) {}
  [[nodiscard]] cv::Mat get(std::size_t source, std::int64_t z);

 private:
  const std::vector<Source>& sources_;
  std::size_t capacity_;
  std::mutex mutex_;
  std::list<std::pair<std::pair<std::size_t, std::int64_t>, cv::Mat>> entries_;
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

/// Tiles triplet `index` of the plan (row by row, left to right).
[[nodiscard]] TripletResult tile_triplet(const Plan& plan, const BuildSpec& spec, std::size_t index, SliceCache& cache);

}  // namespace emt::triplets::builder
