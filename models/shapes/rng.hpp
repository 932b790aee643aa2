// SplitMix64 (Steele, Lea, Flood 2014): a tiny generator whose output is fixed by the seed on
// every platform, unlike std::uniform_*_distribution whose results differ between libraries.
#pragma once

#include <cstdint>

namespace reel::models::shapes::detail {

class SplitMix64 {
 public:
  explicit SplitMix64(std::uint64_t seed) : state_(seed) {}

  std::uint64_t next() {
    std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }

  // Integer in [0, n); the modulo bias is below 2^-50 for the small n used here.
  int below(int n) { return static_cast<int>(next() % static_cast<std::uint64_t>(n)); }

  // Double in [0, 1) from the top 53 bits.
  double unit() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

 private:
  std::uint64_t state_;
};

}  // namespace reel::models::shapes::detail
