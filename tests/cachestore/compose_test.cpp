#include "cachestore/compose.hpp"

#include <gtest/gtest.h>

namespace reel::cachestore {
namespace {

// [1, 2, 3, 2, 2]: value = 100 * channel + 10 * frame + cell.
Latent counting_latent() {
  Latent l{{1, 2, 3, 2, 2}, {}};
  for (int c = 0; c < 2; ++c)
    for (int f = 0; f < 3; ++f)
      for (int cell = 0; cell < 4; ++cell) l.values.push_back(float(100 * c + 10 * f + cell));
  return l;
}

TEST(Compose, ChecksShapesAndMaskSizes) {
  Latent l = counting_latent();
  EXPECT_TRUE(check_latent(l).ok());
  std::vector<uint8_t> mask(12, 0);
  EXPECT_TRUE(check_latent(l, mask).ok());
  mask.pop_back();
  EXPECT_FALSE(check_latent(l, mask).ok());
  l.values.pop_back();
  EXPECT_FALSE(check_latent(l).ok());
  EXPECT_FALSE(check_latent(Latent{{2, 1, 1, 1, 1}, {0, 0}}).ok());
}

TEST(Compose, ThePlateFillsAMovingObjectFromTheFramesItUncovers) {
  Latent l = counting_latent();
  std::vector<uint8_t> mask(12, 0);
  mask[0 * 4 + 1] = 1;  // frame 0, cell 1
  Latent plate = background_plate(l, mask);
  // Cell 1 in frames 1 and 2 holds 11 and 21 (channel 0): their mean replaces frame 0's.
  EXPECT_FLOAT_EQ(plate.values[1], 16.0F);
  EXPECT_FLOAT_EQ(plate.values[12 + 1], 116.0F);
  // Everything unmasked is untouched.
  EXPECT_FLOAT_EQ(plate.values[0], 0.0F);
  EXPECT_FLOAT_EQ(plate.values[4 + 1], 11.0F);
}

TEST(Compose, ThePlateFillsAStillObjectFromItsRow) {
  Latent l = counting_latent();
  std::vector<uint8_t> mask(12, 0);
  for (int f = 0; f < 3; ++f) mask[size_t(f * 4 + 3)] = 1;  // cell 3 (row 1, column 1) everywhere
  Latent plate = background_plate(l, mask);
  for (int f = 0; f < 3; ++f) EXPECT_FLOAT_EQ(plate.values[size_t(f * 4 + 3)], float(10 * f + 2)) << f;
}

TEST(Compose, BlendTakesTheObjectWhereItsMaskIsSet) {
  Latent bg = counting_latent();
  Latent obj = counting_latent();
  for (float& v : obj.values) v = -v - 1;
  std::vector<uint8_t> mask(12, 0);
  mask[5] = 1;
  Latent layer = object_layer(obj, mask);
  EXPECT_FLOAT_EQ(layer.values[5], -12.0F);
  EXPECT_FLOAT_EQ(layer.values[4], 0.0F);
  Latent mixed = blend(bg, layer, mask);
  EXPECT_FLOAT_EQ(mixed.values[5], -12.0F);
  EXPECT_FLOAT_EQ(mixed.values[12 + 5], -112.0F);
  EXPECT_FLOAT_EQ(mixed.values[4], 10.0F);
}

}  // namespace
}  // namespace reel::cachestore
