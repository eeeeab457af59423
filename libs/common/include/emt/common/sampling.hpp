#pragma once
// Picking a few items spread over many, for montages, validation subsets and
// reference histograms: the same rule everywhere, so "6 evenly spaced
// samples" means the same triplets in every tool.
#include <cstdint>

namespace emt {

/// Index of pick k (0 <= k < n) when n picks are spread evenly over
/// [0, size): the first and the last item are included, n == size gives k
/// itself, and a single pick is the middle item (size / 2), the one most like
/// the rest. triplet-build's reference slices and the 16-bit mapping's
/// sample slices use this rule, so changing it changes shards.
[[nodiscard]] constexpr std::int64_t evenly_spaced(std::int64_t k, std::int64_t n, std::int64_t size) noexcept {
  return n <= 1 ? size / 2 : k * (size - 1) / (n - 1);
}

}  // namespace emt
