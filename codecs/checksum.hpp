// A fast 64-bit checksum for tensor payloads and cache entries: detects flipped, truncated or
// reordered bytes. Not cryptographic; an attacker can forge it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace reel::codecs {

// Same bytes, same value, on every machine (little- and big-endian alike). `seed` lets callers
// keep separate checksum domains (e.g. a key mixed into its value's checksum); default 0.
[[nodiscard]] uint64_t checksum64(std::span<const std::byte> bytes, uint64_t seed = 0);

[[nodiscard]] inline uint64_t checksum64(std::string_view bytes, uint64_t seed = 0) {
  return checksum64(std::as_bytes(std::span<const char>(bytes.data(), bytes.size())), seed);
}

}  // namespace reel::codecs
