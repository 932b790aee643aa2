#include "codecs/float16.hpp"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>

namespace reel::codecs {
namespace {

float from_bits(uint32_t bits) { return std::bit_cast<float>(bits); }

TEST(Float16, ConvertsKnownValuesToTheirFp16Bits) {
  EXPECT_EQ(float_to_fp16_bits(0.0f), 0x0000);
  EXPECT_EQ(float_to_fp16_bits(-0.0f), 0x8000);
  EXPECT_EQ(float_to_fp16_bits(1.0f), 0x3c00);
  EXPECT_EQ(float_to_fp16_bits(-2.0f), 0xc000);
  EXPECT_EQ(float_to_fp16_bits(0.333333343f), 0x3555);
  EXPECT_EQ(float_to_fp16_bits(65504.0f), 0x7bff);
  EXPECT_EQ(float_to_fp16_bits(65519.99f), 0x7bff);
  EXPECT_EQ(float_to_fp16_bits(65520.0f), 0x7c00);  // the tie rounds to even, i.e. to inf
  EXPECT_EQ(float_to_fp16_bits(1e9f), 0x7c00);
  EXPECT_EQ(float_to_fp16_bits(std::numeric_limits<float>::infinity()), 0x7c00);
  EXPECT_EQ(float_to_fp16_bits(-std::numeric_limits<float>::infinity()), 0xfc00);
}

TEST(Float16, RoundsTiesToEven) {
  EXPECT_EQ(float_to_fp16_bits(1.0f + std::ldexp(1.0f, -11)), 0x3c00);      // 1 + half ulp
  EXPECT_EQ(float_to_fp16_bits(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);  // 1 + 1.5 ulp
  EXPECT_EQ(float_to_fp16_bits(1.0f + std::ldexp(1.0f, -11) + std::ldexp(1.0f, -20)), 0x3c01);
}

TEST(Float16, HandlesSubnormalsAndTheirRounding) {
  EXPECT_EQ(float_to_fp16_bits(std::ldexp(1.0f, -14)), 0x0400);  // smallest normal
  EXPECT_EQ(float_to_fp16_bits(std::ldexp(1.0f, -24)), 0x0001);  // smallest subnormal
  EXPECT_EQ(float_to_fp16_bits(std::ldexp(1.0f, -25)), 0x0000);  // tie between 0 and 2^-24
  EXPECT_EQ(float_to_fp16_bits(1.5f * std::ldexp(1.0f, -25)), 0x0001);
  EXPECT_EQ(float_to_fp16_bits(-3 * std::ldexp(1.0f, -25)), 0x8002);  // 1.5 steps: tie to even 2
  EXPECT_EQ(float_to_fp16_bits(std::ldexp(1023.5f, -24)), 0x0400);    // carries into normal
  EXPECT_EQ(float_to_fp16_bits(1e-30f), 0x0000);
  EXPECT_EQ(fp16_bits_to_float(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(fp16_bits_to_float(0x03ff), std::ldexp(1023.0f, -24));
  EXPECT_EQ(fp16_bits_to_float(0x8200), -std::ldexp(1.0f, -15));
}

TEST(Float16, KeepsNanANan) {
  EXPECT_TRUE(std::isnan(fp16_bits_to_float(float_to_fp16_bits(std::nanf("")))));
  EXPECT_TRUE(std::isnan(fp16_bits_to_float(float_to_fp16_bits(from_bits(0x7f800001u)))));
  EXPECT_TRUE(std::isnan(bf16_bits_to_float(float_to_bf16_bits(from_bits(0x7f800001u)))));
  EXPECT_TRUE(std::isinf(fp16_bits_to_float(0x7c00)));
}

TEST(Float16, RoundTripsEveryFp16BitPattern) {
  for (uint32_t h = 0; h < 0x10000u; ++h) {
    const auto bits = static_cast<uint16_t>(h);
    const float f = fp16_bits_to_float(bits);
    if (std::isnan(f)) continue;
    ASSERT_EQ(float_to_fp16_bits(f), bits) << std::hex << h;
  }
}

// Checks the rounding of many floats against the definition: no other fp16 value is nearer, and
// of two equally near, the one with an even last bit wins.
TEST(Float16, PicksTheNearestFp16ForASweepOfFloats) {
  for (uint32_t bits = 0; bits < 0x477fe000u; bits += 4093u) {
    const float x = from_bits(bits);
    const uint16_t h = float_to_fp16_bits(x);
    const double got = fp16_bits_to_float(h);
    const double error = std::fabs(got - x);
    for (int step : {-1, 1}) {
      if (h == 0 && step < 0) continue;
      const double other = fp16_bits_to_float(static_cast<uint16_t>(h + step));
      const double other_error = std::fabs(other - x);
      ASSERT_LE(error, other_error) << x;
      if (error == other_error) {
        ASSERT_EQ(h & 1, 0) << x;
      }
    }
  }
}

TEST(Bfloat16, ConvertsAndRoundsTiesToEven) {
  EXPECT_EQ(float_to_bf16_bits(1.0f), 0x3f80);
  EXPECT_EQ(float_to_bf16_bits(-2.0f), 0xc000);
  EXPECT_EQ(float_to_bf16_bits(from_bits(0x3f808000u)), 0x3f80);  // tie, even stays
  EXPECT_EQ(float_to_bf16_bits(from_bits(0x3f818000u)), 0x3f82);  // tie, odd rounds up
  EXPECT_EQ(float_to_bf16_bits(from_bits(0x3f808001u)), 0x3f81);
  EXPECT_EQ(float_to_bf16_bits(from_bits(0x00008000u)), 0x0000);  // subnormal tie to even 0
  EXPECT_EQ(float_to_bf16_bits(from_bits(0x00018000u)), 0x0002);
  EXPECT_EQ(float_to_bf16_bits(std::numeric_limits<float>::max()), 0x7f80);  // rounds to inf
  EXPECT_EQ(float_to_bf16_bits(-std::numeric_limits<float>::infinity()), 0xff80);
}

TEST(Bfloat16, RoundTripsEveryBf16BitPattern) {
  for (uint32_t b = 0; b < 0x10000u; ++b) {
    const auto bits = static_cast<uint16_t>(b);
    const float f = bf16_bits_to_float(bits);
    if (std::isnan(f)) continue;
    ASSERT_EQ(float_to_bf16_bits(f), bits) << std::hex << b;
  }
}

}  // namespace
}  // namespace reel::codecs
