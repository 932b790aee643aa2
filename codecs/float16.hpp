// IEEE binary16 (fp16) and bfloat16 conversions, written out by hand so that every machine and
// compiler gives the same bits. float -> 16 bits rounds to nearest, ties to even; subnormals,
// infinities and NaN (kept quiet) are handled. 16 bits -> float is exact.
#pragma once

#include <bit>
#include <cstdint>

namespace reel::codecs {

// float -> fp16 bits. |x| >= 65520 becomes inf (65504 is the largest finite fp16); below 2^-14
// the result is subnormal (steps of 2^-24) and below 2^-25 it is a signed zero.
[[nodiscard]] inline uint16_t float_to_fp16_bits(float x) {
  const uint32_t f = std::bit_cast<uint32_t>(x);
  const auto sign = static_cast<uint16_t>((f >> 16) & 0x8000u);
  const uint32_t a = f & 0x7fffffffu;
  if (a >= 0x7f800000u) {  // inf or NaN; a NaN stays a NaN (quiet bit set) whatever its payload
    if (a == 0x7f800000u) return static_cast<uint16_t>(sign | 0x7c00u);
    return static_cast<uint16_t>(sign | 0x7e00u | ((a >> 13) & 0x3ffu));
  }
  if (a >= 0x47800000u) return static_cast<uint16_t>(sign | 0x7c00u);  // >= 65536: inf
  if (a < 0x38800000u) {  // below 2^-14: fp16 subnormal m * 2^-24, or zero
    if (a <= 0x33000000u) return sign;  // <= 2^-25 (a tie at 2^-25 goes to the even 0)
    const uint32_t exponent = a >> 23;  // 102..112 here
    const uint32_t significand = (a & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126u - exponent;  // 14..24
    uint32_t m = significand >> shift;
    const uint32_t rest = significand & ((1u << shift) - 1u);
    const uint32_t half = 1u << (shift - 1u);
    if (rest > half || (rest == half && (m & 1u))) ++m;  // may carry into the smallest normal
    return static_cast<uint16_t>(sign | m);
  }
  // Normal: rebias the exponent (127 -> 15) and round 23 mantissa bits to 10. A carry out of
  // the mantissa correctly bumps the exponent, up to inf for [65520, 65536).
  const uint32_t rebiased = a - (112u << 23);
  uint32_t h = rebiased >> 13;
  const uint32_t rest = rebiased & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;
  return static_cast<uint16_t>(sign | h);
}

[[nodiscard]] inline float fp16_bits_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exponent = (h >> 10) & 0x1fu;
  uint32_t mantissa = h & 0x3ffu;
  if (exponent == 0x1fu) return std::bit_cast<float>(sign | 0x7f800000u | (mantissa << 13));
  if (exponent == 0) {
    if (mantissa == 0) return std::bit_cast<float>(sign);
    // Subnormal: shift until the leading bit becomes the implicit one.
    int e = 1;
    while ((mantissa & 0x400u) == 0) {
      mantissa <<= 1;
      --e;
    }
    mantissa &= 0x3ffu;
    return std::bit_cast<float>(sign | (static_cast<uint32_t>(e + 112) << 23) | (mantissa << 13));
  }
  return std::bit_cast<float>(sign | ((exponent + 112u) << 23) | (mantissa << 13));
}

// float -> bfloat16 bits (the top half of a float, rounded). Only values within half a bf16 step
// of FLT_MAX round up to inf; subnormals keep their rounded top bits.
[[nodiscard]] inline uint16_t float_to_bf16_bits(float x) {
  const uint32_t f = std::bit_cast<uint32_t>(x);
  if ((f & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((f >> 16) | 0x0040u);  // NaN
  const uint32_t round_bias = 0x7fffu + ((f >> 16) & 1u);
  return static_cast<uint16_t>((f + round_bias) >> 16);
}

[[nodiscard]] inline float bf16_bits_to_float(uint16_t b) {
  return std::bit_cast<float>(static_cast<uint32_t>(b) << 16);
}

}  // namespace reel::codecs
