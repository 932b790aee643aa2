#include "codecs/checksum.hpp"

#include <cstring>

namespace reel::codecs {
namespace {

constexpr uint64_t kPrime1 = 0x9E3779B185EBCA87ULL;
constexpr uint64_t kPrime2 = 0xC2B2AE3D27D4EB4FULL;
constexpr uint64_t kPrime3 = 0x165667B19E3779F9ULL;

uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

uint64_t load_le64(const std::byte* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<uint64_t>(p[i]);
  return v;
}

// Final avalanche, so that every input bit reaches every output bit.
uint64_t mix(uint64_t h) {
  h ^= h >> 33;
  h *= kPrime2;
  h ^= h >> 29;
  h *= kPrime3;
  h ^= h >> 32;
  return h;
}

}  // namespace

uint64_t checksum64(std::span<const std::byte> bytes, uint64_t seed) {
  // Four independent lanes over 32-byte blocks keep the multiplies pipelined (several GB/s).
  uint64_t lane[4] = {seed + kPrime1, seed ^ kPrime2, seed + kPrime3, seed - kPrime1};
  const std::byte* p = bytes.data();
  size_t n = bytes.size();
  size_t blocks = n / 32;
  for (size_t b = 0; b < blocks; ++b, p += 32) {
    for (int i = 0; i < 4; ++i) {
      lane[i] = rotl(lane[i] + load_le64(p + 8 * i) * kPrime2, 31) * kPrime1;
    }
  }
  uint64_t h = rotl(lane[0], 1) + rotl(lane[1], 7) + rotl(lane[2], 12) + rotl(lane[3], 18);
  h += static_cast<uint64_t>(n) * kPrime3;
  size_t rest = n % 32;
  while (rest >= 8) {
    h = rotl(h ^ (load_le64(p) * kPrime2), 27) * kPrime1 + kPrime3;
    p += 8;
    rest -= 8;
  }
  while (rest > 0) {
    h = rotl(h ^ (static_cast<uint64_t>(*p) * kPrime1), 11) * kPrime2;
    ++p;
    --rest;
  }
  return mix(h);
}

}  // namespace reel::codecs
