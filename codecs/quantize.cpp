// Element codecs: f32 (exact), fp16/bf16 and per-channel int8, each with the optional
// closed-loop frame delta described in tensor.hpp. Payload bytes are little-endian.
#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <string>

#include "codecs/float16.hpp"
#include "codecs/tensor_detail.hpp"

namespace reel::codecs::detail {
namespace {

void store_le16(char* p, uint16_t v) {
  p[0] = static_cast<char>(v & 0xFFu);
  p[1] = static_cast<char>(v >> 8);
}

void store_le32(char* p, uint32_t v) {
  for (int k = 0; k < 4; ++k) p[k] = static_cast<char>((v >> (8 * k)) & 0xFFu);
}

uint16_t load_le16(const char* p) {
  return static_cast<uint16_t>(static_cast<uint8_t>(p[0]) | (static_cast<uint8_t>(p[1]) << 8));
}

uint32_t load_le32(const char* p) {
  uint32_t v = 0;
  for (int k = 3; k >= 0; --k) v = (v << 8) | static_cast<uint8_t>(p[k]);
  return v;
}

// Calls run(begin, count, has_prev) for each contiguous run of `inner` elements of one frame, in
// storage order; the same positions of the previous frame start at begin - inner.
template <class Run>
void for_each_frame_run(const AxisSplit& frames, Run&& run) {
  for (size_t o = 0; o < frames.outer; ++o) {
    for (size_t f = 0; f < frames.extent; ++f) {
      run((o * frames.extent + f) * frames.inner, frames.inner, f > 0);
    }
  }
}

// Same, over channels: run(begin, count, channel).
template <class Run>
void for_each_channel_run(const AxisSplit& channels, Run&& run) {
  for (size_t o = 0; o < channels.outer; ++o) {
    for (size_t c = 0; c < channels.extent; ++c) {
      run((o * channels.extent + c) * channels.inner, channels.inner, c);
    }
  }
}

// Round to nearest, ties to even, for |v| < 2^51, without a libm call in the inner loop: adding
// and subtracting 1.5 * 2^52 leaves no fraction bits under the default rounding mode.
double round_half_even(double v) {
  constexpr double kShifter = 6755399441055744.0;
  return (v + kShifter) - kShifter;
}

struct Fp16Format {
  static uint16_t to(float x) { return float_to_fp16_bits(x); }
  static float from(uint16_t h) { return fp16_bits_to_float(h); }
};

struct Bf16Format {
  static uint16_t to(float x) { return float_to_bf16_bits(x); }
  static float from(uint16_t h) { return bf16_bits_to_float(h); }
};

template <class Format>
Expected<std::string> encode_half_as(std::span<const float> values, const AxisSplit& frames) {
  std::string out(values.size() * 2, '\0');
  // The reconstruction the decoder will see; only needed to form differences.
  std::vector<float> recon(frames.extent > 1 ? values.size() : 0);
  bool overflow = false;
  for_each_frame_run(frames, [&](size_t begin, size_t count, bool has_prev) {
    for (size_t i = begin; i < begin + count; ++i) {
      uint16_t h;
      float rebuilt;
      if (has_prev) {
        const float previous = recon[i - frames.inner];
        h = Format::to(values[i] - previous);
        rebuilt = previous + Format::from(h);
      } else {
        h = Format::to(values[i]);
        rebuilt = Format::from(h);
      }
      overflow |= !std::isfinite(rebuilt);
      if (!recon.empty()) recon[i] = rebuilt;
      store_le16(out.data() + 2 * i, h);
    }
  });
  if (overflow) {
    return make_error(Errc::invalid_argument,
                      "a value or frame difference is out of range for the 16-bit format");
  }
  return out;
}

template <class Format>
void decode_half_as(std::string_view raw, const AxisSplit& frames, std::span<float> out) {
  for_each_frame_run(frames, [&](size_t begin, size_t count, bool has_prev) {
    for (size_t i = begin; i < begin + count; ++i) {
      const float stored = Format::from(load_le16(raw.data() + 2 * i));
      out[i] = has_prev ? out[i - frames.inner] + stored : stored;
    }
  });
}

}  // namespace

std::string encode_f32(std::span<const float> values, const AxisSplit& frames) {
  std::string out(values.size() * 4, '\0');
  for_each_frame_run(frames, [&](size_t begin, size_t count, bool has_prev) {
    for (size_t i = begin; i < begin + count; ++i) {
      uint32_t bits = std::bit_cast<uint32_t>(values[i]);
      if (has_prev) bits -= std::bit_cast<uint32_t>(values[i - frames.inner]);  // modulo 2^32
      store_le32(out.data() + 4 * i, bits);
    }
  });
  return out;
}

void decode_f32(std::string_view raw, const AxisSplit& frames, std::span<float> out) {
  for_each_frame_run(frames, [&](size_t begin, size_t count, bool has_prev) {
    for (size_t i = begin; i < begin + count; ++i) {
      uint32_t bits = load_le32(raw.data() + 4 * i);
      if (has_prev) bits += std::bit_cast<uint32_t>(out[i - frames.inner]);
      out[i] = std::bit_cast<float>(bits);
    }
  });
}

Expected<std::string> encode_half(std::span<const float> values, DType dtype,
                                  const AxisSplit& frames) {
  if (dtype == DType::bf16) return encode_half_as<Bf16Format>(values, frames);
  return encode_half_as<Fp16Format>(values, frames);
}

void decode_half(std::string_view raw, DType dtype, const AxisSplit& frames, std::span<float> out) {
  if (dtype == DType::bf16) return decode_half_as<Bf16Format>(raw, frames, out);
  return decode_half_as<Fp16Format>(raw, frames, out);
}

std::string encode_int8(std::span<const float> values, const AxisSplit& channels,
                        const AxisSplit& frames, std::vector<float>& scales, int bits) {
  const double top = static_cast<double>((1 << (bits - 1)) - 1);  // 127 for 8 bits
  std::vector<float> max_abs(channels.extent, 0.0f);
  for_each_channel_run(channels, [&](size_t begin, size_t count, size_t c) {
    float m = max_abs[c];
    for (size_t i = begin; i < begin + count; ++i) m = std::max(m, std::fabs(values[i]));
    max_abs[c] = m;
  });
  scales.assign(channels.extent, 0.0f);
  std::vector<double> inverse(channels.extent, 0.0);
  for (size_t c = 0; c < channels.extent; ++c) {
    float scale = static_cast<float>(static_cast<double>(max_abs[c]) / top);
    // A channel of tiny subnormals must not get scale 0 (it would decode to zeros).
    if (max_abs[c] > 0.0f && scale == 0.0f) scale = std::numeric_limits<float>::denorm_min();
    scales[c] = scale;
    if (scale > 0.0f) inverse[c] = 1.0 / static_cast<double>(scale);  // all-zero channel: codes 0
  }
  std::vector<int8_t> codes(values.size());
  for_each_channel_run(channels, [&](size_t begin, size_t count, size_t c) {
    const double inv = inverse[c];
    for (size_t i = begin; i < begin + count; ++i) {
      // The f32 rounding of the scale can put max|x| / scale a hair above the top code: clamp.
      const double q = std::clamp(round_half_even(static_cast<double>(values[i]) * inv), -top, top);
      codes[i] = static_cast<int8_t>(q);
    }
  });
  std::string out(values.size(), '\0');
  for_each_frame_run(frames, [&](size_t begin, size_t count, bool has_prev) {
    for (size_t i = begin; i < begin + count; ++i) {
      auto code = static_cast<uint8_t>(codes[i]);
      if (has_prev) code = static_cast<uint8_t>(code - static_cast<uint8_t>(codes[i - frames.inner]));
      out[i] = static_cast<char>(code);
    }
  });
  return out;
}

void decode_int8(std::string_view raw, std::span<const float> scales, const AxisSplit& channels,
                 const AxisSplit& frames, std::span<float> out) {
  std::vector<uint8_t> codes(raw.begin(), raw.end());
  // Undo the delta in storage order: the previous frame's codes are already whole.
  for_each_frame_run(frames, [&](size_t begin, size_t count, bool has_prev) {
    if (!has_prev) return;
    for (size_t i = begin; i < begin + count; ++i) {
      codes[i] = static_cast<uint8_t>(codes[i] + codes[i - frames.inner]);
    }
  });
  for_each_channel_run(channels, [&](size_t begin, size_t count, size_t c) {
    const float scale = scales[c];
    for (size_t i = begin; i < begin + count; ++i) {
      out[i] = static_cast<float>(static_cast<int8_t>(codes[i])) * scale;
    }
  });
}

}  // namespace reel::codecs::detail
