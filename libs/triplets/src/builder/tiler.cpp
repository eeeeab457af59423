#include "builder/tiler.hpp"

#include <algorithm>
#include <cmath>
#include <optional>

#include <fmt/format.h>

#include "emt/common/error.hpp"
#include "emt/common/interrupt.hpp"
#include "emt/triplets/histogram.hpp"

namespace emt::triplets::builder {

std::vector<std::int64_t> tile_origins(std::int64_t lo, std::int64_t hi, int tile, int stride) {
  if (tile < 1 || stride < 1) throw Error(ErrorKind::kInvalidArgument, fmt::format("tile ({}) and stride ({}) must be >= 1", tile, stride));
  std::vector<std::int64_t> out;
  const std::int64_t span = hi - lo;
  if (span < tile) return out;
  const std::int64_t n = (span - tile) / stride + 1;
  const std::int64_t offset = lo + (span - tile - (n - 1) * stride) / 2;
  for (std::int64_t i = 0; i < n; ++i) out.push_back(offset + i * stride);
  return out;
}

cv::Rect SliceCache::region(std::size_t source, std::size_t block) const {
  const Source& s = sources_[source];
  return block_with_margin(s.blocks[block], s.volume->shape(), margin_);
}

cv::Mat SliceCache::get(std::size_t source, std::size_t block, std::int64_t z) {
  const Key key{source, block, z};
  {
    std::lock_guard lock(mutex_);
    for (auto it = entries_.begin(); it != entries_.end(); ++it) {
      if (it->first == key) {
        entries_.splice(entries_.begin(), entries_, it);
        return it->second;
      }
    }
  }
  cv::Mat image = read_block(*sources_[source].volume, z, region(source, block));  // outside the lock: reads run in parallel
  std::lock_guard lock(mutex_);
  entries_.emplace_front(key, image);
  while (entries_.size() > capacity_) entries_.pop_back();
  return image;
}

TripletResult tile_triplet(const Plan& plan, const BuildSpec& spec, std::size_t index, SliceCache& cache) {
  const TripletRef ref = plan.triplets[index];
  const Source& s = plan.sources[ref.source];
  const int k = s.spec.step, T = spec.tile_size;
  const std::int64_t zs[3] = {ref.z - k, ref.z, ref.z + k};
  TripletResult result;
  result.index = index;
  const auto shape = s.volume->shape();

  bool bad_slice = false, misaligned = false;
  for (auto z : zs) bad_slice |= s.bad.count(z) > 0;
  // Integer shifts (no resampling: the outer slices keep their native sharpness).
  int dy[3] = {0, 0, 0}, dx[3] = {0, 0, 0};
  Shift back, fwd;
  std::optional<double> repeat_z;  // a pair of this triplet is a repeated section: its robust z
  if (!bad_slice) {
    // forward[z - k] aligns z onto z - k; invert it to align z - k onto z.
    back = s.forward.at(zs[0]).at(ref.block);
    fwd = s.forward.at(zs[1]).at(ref.block);
    dy[0] = static_cast<int>(-std::lround(back.dy));
    dx[0] = static_cast<int>(-std::lround(back.dx));
    dy[2] = static_cast<int>(std::lround(fwd.dy));
    dx[2] = static_cast<int>(std::lround(fwd.dx));
    misaligned = back.at_border || fwd.at_border;
    for (std::int64_t pair : {zs[0], zs[1]}) {
      if (const auto it = s.repeated.find(pair); it != s.repeated.end()) repeat_z = std::max(repeat_z.value_or(it->second), it->second);
    }
    const int r = spec.align.search_radius;
    for (int* v : {&dy[0], &dx[0], &dy[2], &dx[2]}) *v = std::clamp(*v, -r, r);
  }
  // Tiles lie in the block where all three shifted slices have data; the
  // outer slices' tiles may reach into the region's margin (|shift| <= r).
  const cv::Rect block = s.blocks[ref.block], region = cache.region(ref.source, ref.block);
  const std::int64_t y_lo = std::max({block.y, dy[0], dy[2]});
  const std::int64_t y_hi = std::min<std::int64_t>({block.y + block.height, shape.height + dy[0], shape.height + dy[2]});
  const std::int64_t x_lo = std::max({block.x, dx[0], dx[2]});
  const std::int64_t x_hi = std::min<std::int64_t>({block.x + block.width, shape.width + dx[0], shape.width + dx[2]});
  const auto ys = tile_origins(y_lo, y_hi, T, spec.stride), xs = tile_origins(x_lo, x_hi, T, spec.stride);

  std::array<cv::Mat, 3> slices;
  if (!bad_slice) {
    for (int i = 0; i < 3; ++i) slices[static_cast<std::size_t>(i)] = cache.get(ref.source, ref.block, zs[i]);
  }
  for (auto y : ys) {
    // A dense stride makes one triplet thousands of tiles: poll per row so
    // a signal stops the build within a second, not after the triplet.
    if (interrupt_requested()) {
      result.interrupted = true;
      result.tiles.clear();
      return result;
    }
    for (auto x : xs) {
      TileOutcome out;
      out.y = y;
      out.x = x;
      if (bad_slice) {
        out.decision.reason = RejectReason::kBadSlice;
      } else if (repeat_z) {
        out.decision.reason = RejectReason::kRepeatedSection;
        out.decision.value = *repeat_z;
        out.decision.threshold = spec.filters.repeat_max_z;
      } else {
        std::array<cv::Mat, 3> tiles;
        for (int i = 0; i < 3; ++i) {
          tiles[static_cast<std::size_t>(i)] = slices[static_cast<std::size_t>(i)](cv::Rect(static_cast<int>(x - dx[i] - region.x), static_cast<int>(y - dy[i] - region.y), T, T));
        }
        out.decision = evaluate_tile(tiles, spec.filters);
        // A failed alignment usually comes from a defective slice, which the
        // filters name better; it is the reason only when they see nothing.
        if (out.decision.accepted() && misaligned) {
          out.decision.reason = RejectReason::kAlignment;
          out.decision.value = std::max({std::abs(back.dy), std::abs(back.dx), std::abs(fwd.dy), std::abs(fwd.dx)});
          out.decision.threshold = spec.align.search_radius;
        }
        if (out.decision.accepted()) {
          TripletSample& smp = out.sample;
          for (int i = 0; i < 3; ++i) {
            const auto lut = s.luts.find(zs[i]);
            smp.slices[static_cast<std::size_t>(i)] =
                lut != s.luts.end() ? apply_lut(tiles[static_cast<std::size_t>(i)], lut->second) : tiles[static_cast<std::size_t>(i)].clone();
          }
          smp.source = s.spec.id;
          smp.z = ref.z;
          smp.y = y;
          smp.x = x;
          smp.shift = {static_cast<float>(dy[0]), static_cast<float>(dx[0]), static_cast<float>(dy[2]), static_cast<float>(dx[2])};
          smp.ncc = out.decision.measures.ncc;
          smp.sharpness = out.decision.measures.sharpness;
        }
      }
      result.tiles.push_back(std::move(out));
    }
  }
  return result;
}

}  // namespace emt::triplets::builder
