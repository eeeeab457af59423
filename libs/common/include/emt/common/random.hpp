#pragma once
// Deterministic randomness shared by the tools: results must not depend on
// the standard library (std::shuffle and the std distributions are
// implementation-defined) or on thread timing.
#include <cstdint>
#include <random>
#include <utility>
#include <vector>

namespace emt {

/// SplitMix64 finaliser: a stateless hash, so a random quantity can be a pure
/// function of (seed, indices).
[[nodiscard]] inline std::uint64_t splitmix64(std::uint64_t x) noexcept {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

/// Fisher-Yates with mt19937_64 (fully specified by the standard) and modulo.
template <class T>
void portable_shuffle(std::vector<T>& v, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  for (std::size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[rng() % i]);
}

}  // namespace emt
