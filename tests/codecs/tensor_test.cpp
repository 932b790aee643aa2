#include "codecs/tensor.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "tests/codecs/latent_fixture.hpp"

namespace reel::codecs {
namespace {

using testing::product;
using testing::smooth_latent;

std::vector<float> random_values(size_t n, float lo, float hi, uint32_t seed = 1) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

std::vector<float> round_trip(std::span<const float> values, std::vector<int64_t> shape,
                              const EncodeOptions& options) {
  Expected<EncodedTensor> encoded = encode(values, shape, options);
  EXPECT_TRUE(encoded.ok()) << encoded.error().message;
  if (!encoded) return {};
  Expected<EncodedTensor> parsed = parse(serialize(*encoded));
  EXPECT_TRUE(parsed.ok()) << parsed.error().message;
  if (!parsed) return {};
  EXPECT_EQ(parsed->shape, shape);
  Expected<std::vector<float>> decoded = decode(*parsed);
  EXPECT_TRUE(decoded.ok()) << decoded.error().message;
  if (!decoded) return {};
  return std::move(*decoded);
}

bool same_bits(std::span<const float> a, std::span<const float> b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// Largest |decoded - original| over each channel of [B, C, ...] along `axis`.
std::vector<float> max_error_per_channel(std::span<const float> original,
                                         std::span<const float> decoded,
                                         const std::vector<int64_t>& shape, int axis) {
  int64_t inner = 1;
  for (size_t d = static_cast<size_t>(axis) + 1; d < shape.size(); ++d) inner *= shape[d];
  const int64_t channels = shape[axis];
  std::vector<float> worst(static_cast<size_t>(channels), 0.0f);
  for (size_t i = 0; i < original.size(); ++i) {
    const auto c = static_cast<size_t>((static_cast<int64_t>(i) / inner) % channels);
    worst[c] = std::max(worst[c], std::fabs(decoded[i] - original[i]));
  }
  return worst;
}

TEST(TensorCodec, RoundTripsF32Exactly) {
  std::vector<float> values = random_values(2 * 3 * 4 * 5, -1e6f, 1e6f);
  values[0] = -0.0f;
  values[1] = std::numeric_limits<float>::denorm_min();
  values[2] = std::numeric_limits<float>::max();
  values[3] = 1e-40f;
  for (bool delta : {false, true}) {
    for (int level : {0, 3}) {
      EncodeOptions options{.zstd_level = level, .frame_delta = delta};
      std::vector<float> back = round_trip(values, {2, 3, 4, 5}, options);
      EXPECT_TRUE(same_bits(values, back)) << "delta " << delta << " zstd " << level;
    }
  }
}

TEST(TensorCodec, CarriesNanAndInfinityUnchangedWithoutQuantisation) {
  const std::vector<float> values = {std::numeric_limits<float>::quiet_NaN(),
                                     std::numeric_limits<float>::infinity(),
                                     -std::numeric_limits<float>::infinity(), 1.0f};
  Expected<std::string> bytes = pack_f32(values, {4});
  ASSERT_TRUE(bytes.ok());
  auto unpacked = unpack_f32(*bytes);
  ASSERT_TRUE(unpacked.ok()) << unpacked.error().message;
  EXPECT_EQ(unpacked->first, (std::vector<int64_t>{4}));
  EXPECT_TRUE(same_bits(values, unpacked->second));
}

TEST(TensorCodec, LossyCodecsRefuseNonFiniteValues) {
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
    const std::vector<float> values = {1.0f, bad, 2.0f, 3.0f};
    for (Quant q : {Quant::fp16, Quant::bf16, Quant::int8_per_channel}) {
      Expected<EncodedTensor> encoded = encode(values, {2, 2}, {.quant = q});
      ASSERT_FALSE(encoded.ok());
      EXPECT_EQ(encoded.error().code, Errc::invalid_argument);
    }
  }
}

TEST(TensorCodec, Fp16RefusesValuesAndFrameDifferencesBeyondItsRange) {
  const std::vector<float> big = {1.0f, 70000.0f};
  Expected<EncodedTensor> encoded = encode(big, {1, 2}, {.quant = Quant::fp16});
  ASSERT_FALSE(encoded.ok());
  EXPECT_EQ(encoded.error().code, Errc::invalid_argument);
  // Each value fits, their difference (frames on axis 1) does not.
  const std::vector<float> swing = {-60000.0f, 60000.0f};
  encoded = encode(swing, {1, 2}, {.quant = Quant::fp16, .frame_delta = true, .frame_axis = 1});
  ASSERT_FALSE(encoded.ok());
  EXPECT_EQ(encoded.error().code, Errc::invalid_argument);
  EXPECT_TRUE(encode(swing, {1, 2}, {.quant = Quant::fp16}).ok());
}

TEST(TensorCodec, Fp16AndBf16StayWithinHalfAStepOfTheOriginal) {
  const std::vector<int64_t> shape = {1, 4, 3, 8, 8};
  std::vector<float> values = random_values(static_cast<size_t>(product(shape)), -100.0f, 100.0f);
  for (auto [quant, relative] : {std::pair{Quant::fp16, std::ldexp(1.0f, -11)},
                                 std::pair{Quant::bf16, std::ldexp(1.0f, -8)}}) {
    std::vector<float> back = round_trip(values, shape, {.quant = quant, .zstd_level = 3});
    ASSERT_EQ(back.size(), values.size());
    for (size_t i = 0; i < values.size(); ++i) {
      // Above fp16's normal range the step is relative; below 2^-14 it would be absolute.
      ASSERT_LE(std::fabs(back[i] - values[i]), relative * std::fabs(values[i]) + 1e-7f) << i;
    }
  }
}

TEST(TensorCodec, Int8ErrorIsAtMostHalfAScalePerChannel) {
  const std::vector<int64_t> shape = {2, 5, 3, 4, 4};
  std::vector<float> values = random_values(static_cast<size_t>(product(shape)), -1.0f, 1.0f);
  // Channels of very different magnitudes: each gets its own scale.
  for (size_t i = 0; i < values.size(); ++i) {
    const size_t c = (i / (3 * 4 * 4)) % 5;
    values[i] *= std::pow(10.0f, static_cast<float>(c) - 2.0f);
  }
  Expected<EncodedTensor> encoded = encode(values, shape, {.quant = Quant::int8_per_channel});
  ASSERT_TRUE(encoded.ok());
  ASSERT_EQ(encoded->scales.size(), 5u);
  EXPECT_EQ(encoded->dtype, DType::i8);
  EXPECT_EQ(encoded->payload.size(), values.size());
  Expected<std::vector<float>> back = decode(*encoded);
  ASSERT_TRUE(back.ok());
  std::vector<float> worst = max_error_per_channel(values, *back, shape, 1);
  for (size_t c = 0; c < 5; ++c) {
    const float scale = encoded->scales[c];
    EXPECT_GT(scale, 0.0f);
    // scale/2 from rounding to the grid, plus the f32 rounding of code * scale.
    EXPECT_LE(worst[c], 0.5f * scale * (1.0f + 1e-5f)) << "channel " << c;
  }
}

TEST(TensorCodec, Int8UsesTheRequestedChannelAxisCountingNegativeAxesFromTheEnd) {
  const std::vector<int64_t> shape = {3, 7};
  std::vector<float> values = random_values(21, -3.0f, 3.0f);
  Expected<EncodedTensor> encoded =
      encode(values, shape, {.quant = Quant::int8_per_channel, .channel_axis = -1});
  ASSERT_TRUE(encoded.ok());
  EXPECT_EQ(encoded->channel_axis, 1);
  EXPECT_EQ(encoded->scales.size(), 7u);
  std::vector<float> back = round_trip(values, shape, {.quant = Quant::int8_per_channel,
                                                       .channel_axis = 0});
  std::vector<float> worst = max_error_per_channel(values, back, shape, 0);
  Expected<EncodedTensor> rows = encode(values, shape, {.quant = Quant::int8_per_channel,
                                                        .channel_axis = 0});
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->scales.size(), 3u);
  for (size_t c = 0; c < 3; ++c) EXPECT_LE(worst[c], 0.5f * rows->scales[c] * (1.0f + 1e-5f));
}

TEST(TensorCodec, Int8DecodesAChannelOfZerosToZeros) {
  std::vector<float> values = {0.0f, 0.0f, 0.0f, 1.0f, -0.5f, 0.25f,
                               1e-44f, -1e-45f, 0.0f};  // last channel: tiny subnormals
  Expected<EncodedTensor> encoded =
      encode(values, {3, 3}, {.quant = Quant::int8_per_channel, .channel_axis = 0});
  ASSERT_TRUE(encoded.ok());
  EXPECT_EQ(encoded->scales[0], 0.0f);
  EXPECT_GT(encoded->scales[2], 0.0f);
  Expected<std::vector<float>> back = decode(*encoded);
  ASSERT_TRUE(back.ok());
  for (int i = 0; i < 3; ++i) EXPECT_EQ((*back)[i], 0.0f);
  for (int i = 3; i < 9; ++i) {
    EXPECT_LE(std::fabs((*back)[i] - values[i]), 0.5f * encoded->scales[i / 3] * 1.00001f) << i;
  }
}

// A random walk along 64 frames: the quantities stored are differences, and an open-loop coder
// would add up 63 rounding errors by the last frame.
TEST(TensorCodec, FrameDeltaDoesNotAccumulateErrorOver64Frames) {
  const std::vector<int64_t> shape = {1, 4, 64, 6, 6};
  const size_t frame = 36, frames = 64;
  std::mt19937 rng(3);
  std::normal_distribution<float> step(0.0f, 0.05f);
  std::vector<float> values(static_cast<size_t>(product(shape)));
  float max_value = 0.0f, max_step = 0.0f;
  for (size_t c = 0; c < 4; ++c) {
    for (size_t i = 0; i < frame; ++i) {
      float v = 3.0f * std::sin(static_cast<float>(c * frame + i));
      for (size_t f = 0; f < frames; ++f) {
        const float s = step(rng);
        v += s;
        values[(c * frames + f) * frame + i] = v;
        max_value = std::max(max_value, std::fabs(v));
        if (f > 0) max_step = std::max(max_step, std::fabs(s));
      }
    }
  }

  // int8: the delta of codes reconstructs plain int8 exactly, so every frame is within scale/2.
  std::vector<float> plain = round_trip(values, shape, {.quant = Quant::int8_per_channel});
  std::vector<float> delta = round_trip(values, shape, {.quant = Quant::int8_per_channel,
                                                        .zstd_level = 3, .frame_delta = true});
  EXPECT_TRUE(same_bits(plain, delta));
  Expected<EncodedTensor> encoded = encode(values, shape, {.quant = Quant::int8_per_channel});
  ASSERT_TRUE(encoded.ok());
  std::vector<float> worst = max_error_per_channel(values, delta, shape, 1);
  for (size_t c = 0; c < 4; ++c) EXPECT_LE(worst[c], 0.5f * encoded->scales[c] * 1.00001f);

  // fp16/bf16: frame f > 0 carries one rounding (relative `rel`) of a difference to the previous
  // reconstruction (at most a step plus frame 0's error) and one f32 rounding of the sum,
  // whatever f is.
  for (auto [quant, rel] : {std::pair{Quant::fp16, std::ldexp(1.0f, -11)},
                            std::pair{Quant::bf16, std::ldexp(1.0f, -8)}}) {
    std::vector<float> back =
        round_trip(values, shape, {.quant = quant, .frame_delta = true});
    ASSERT_EQ(back.size(), values.size());
    const float bound = 1.1f * rel * (max_step + rel * max_value) +
                        2.0f * std::ldexp(1.0f, -24) * max_value;
    float worst_late = 0.0f;
    for (size_t c = 0; c < 4; ++c) {
      for (size_t f = 1; f < frames; ++f) {
        for (size_t i = 0; i < frame; ++i) {
          const size_t at = (c * frames + f) * frame + i;
          const float error = std::fabs(back[at] - values[at]);
          ASSERT_LE(error, bound) << "frame " << f;
          if (f >= 56) worst_late = std::max(worst_late, error);
        }
      }
    }
    EXPECT_LE(worst_late, bound);
  }
}

TEST(TensorCodec, ZstdShrinksASmoothTensorAndDecodesToTheSameValues) {
  const std::vector<int64_t> shape = {1, 4, 8, 16, 16};
  std::vector<float> values = smooth_latent(shape);
  for (Quant q : {Quant::none, Quant::fp16, Quant::bf16, Quant::int8_per_channel}) {
    Expected<EncodedTensor> raw = encode(values, shape, {.quant = q});
    Expected<EncodedTensor> packed = encode(values, shape, {.quant = q, .zstd_level = 3});
    ASSERT_TRUE(raw.ok() && packed.ok());
    EXPECT_TRUE(packed->zstd);
    EXPECT_LT(packed->payload.size(), raw->payload.size()) << static_cast<int>(q);
    Expected<std::vector<float>> a = decode(*raw);
    Expected<std::vector<float>> b = decode(*packed);
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_TRUE(same_bits(*a, *b));
  }
  // Smooth in time: the frame delta helps int8 codes compress.
  Expected<EncodedTensor> plain =
      encode(values, shape, {.quant = Quant::int8_per_channel, .zstd_level = 3});
  Expected<EncodedTensor> delta = encode(
      values, shape, {.quant = Quant::int8_per_channel, .zstd_level = 3, .frame_delta = true});
  ASSERT_TRUE(plain.ok() && delta.ok());
  EXPECT_LT(delta->payload.size(), plain->payload.size());
}

TEST(TensorCodec, RoundTripsZeroSizeDimensions) {
  for (const std::vector<int64_t>& shape :
       {std::vector<int64_t>{0}, std::vector<int64_t>{2, 0, 3}, std::vector<int64_t>{1, 16, 0, 4, 4},
        std::vector<int64_t>{0, 3, 2}}) {
    for (Quant q : {Quant::none, Quant::fp16, Quant::bf16, Quant::int8_per_channel}) {
      for (int level : {0, 3}) {
        const bool delta = shape.size() >= 3;
        EncodeOptions options{.quant = q, .channel_axis = 0, .zstd_level = level,
                              .frame_delta = delta};
        Expected<EncodedTensor> encoded = encode({}, shape, options);
        ASSERT_TRUE(encoded.ok()) << encoded.error().message;
        EXPECT_EQ(encoded->numel(), 0u);
        if (q == Quant::int8_per_channel) {
          EXPECT_EQ(encoded->scales.size(), static_cast<size_t>(shape[0]));
        }
        std::string bytes = serialize(*encoded);
        EXPECT_EQ(bytes.size(), encoded->stored_bytes());
        Expected<EncodedTensor> parsed = parse(bytes);
        ASSERT_TRUE(parsed.ok()) << parsed.error().message;
        EXPECT_EQ(parsed->shape, shape);
        Expected<std::vector<float>> back = decode(*parsed);
        ASSERT_TRUE(back.ok()) << back.error().message;
        EXPECT_TRUE(back->empty());
      }
    }
  }
}

TEST(TensorCodec, RoundTripsAScalarOfRankZero) {
  const std::vector<float> one = {42.5f};
  std::vector<float> back = round_trip(one, {}, {});
  EXPECT_TRUE(same_bits(one, back));
  back = round_trip(one, {}, {.quant = Quant::fp16, .zstd_level = 1});
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(back[0], 42.5f);
  Expected<EncodedTensor> int8 = encode(one, {}, {.quant = Quant::int8_per_channel});
  ASSERT_FALSE(int8.ok());  // no channel axis to put scales on
  EXPECT_EQ(int8.error().code, Errc::invalid_argument);
}

TEST(TensorCodec, RoundTripsABigIshLatentInEveryCodec) {
  const std::vector<int64_t> shape = {1, 16, 8, 32, 32};
  std::vector<float> values = smooth_latent(shape);
  for (Quant q : {Quant::none, Quant::fp16, Quant::bf16, Quant::int8_per_channel}) {
    for (int level : {0, 3}) {
      for (bool delta : {false, true}) {
        std::vector<float> back =
            round_trip(values, shape, {.quant = q, .zstd_level = level, .frame_delta = delta});
        ASSERT_EQ(back.size(), values.size());
        float worst = 0.0f;
        for (size_t i = 0; i < values.size(); ++i) {
          worst = std::max(worst, std::fabs(back[i] - values[i]));
        }
        const float limit = q == Quant::none ? 0.0f
                            : q == Quant::fp16 ? 4e-3f
                            : q == Quant::bf16 ? 3e-2f
                                               : 4.0f / 127.0f / 2.0f * 1.00001f;
        EXPECT_LE(worst, limit) << static_cast<int>(q) << " zstd " << level << " delta " << delta;
      }
    }
  }
}

TEST(TensorCodec, RefusesBadShapesAxesAndLevels) {
  const std::vector<float> six(6, 1.0f);
  auto code_of = [&](std::vector<int64_t> shape, EncodeOptions options,
                     std::span<const float> values) {
    Expected<EncodedTensor> encoded = encode(values, std::move(shape), options);
    return encoded.ok() ? std::string("ok") : std::string(errc_name(encoded.error().code));
  };
  const std::string invalid = errc_name(Errc::invalid_argument);
  EXPECT_EQ(code_of({2, -3}, {}, six), invalid);
  EXPECT_EQ(code_of({2, 4}, {}, six), invalid);  // 8 elements, 6 values
  EXPECT_EQ(code_of({2, 3}, {.quant = Quant::int8_per_channel, .channel_axis = 2}, six), invalid);
  EXPECT_EQ(code_of({2, 3}, {.quant = Quant::int8_per_channel, .channel_axis = -3}, six), invalid);
  EXPECT_EQ(code_of({2, 3}, {.frame_delta = true, .frame_axis = 2}, six), invalid);
  EXPECT_EQ(code_of({2, 3}, {.zstd_level = 20}, six), invalid);
  EXPECT_EQ(code_of({2, 3}, {.zstd_level = -1}, six), invalid);
  EXPECT_EQ(code_of({2, 3}, {.quant = static_cast<Quant>(9)}, six), invalid);
  EXPECT_EQ(code_of(std::vector<int64_t>(17, 1), {}, std::span<const float>(six).first(1)),
            invalid);
  EXPECT_EQ(code_of({int64_t{1} << 20, int64_t{1} << 20}, {}, six), invalid);  // 2^40 elements
  // Unused axes are not checked: the defaults fit [B, C, F, H, W], not a vector.
  EXPECT_EQ(code_of({6}, {}, six), "ok");
  EXPECT_EQ(code_of({2, 3}, {.quant = Quant::fp16, .channel_axis = 7}, six), "ok");
  Expected<EncodedTensor> vector = encode(six, {6});
  ASSERT_TRUE(vector.ok());
  EXPECT_EQ(vector->channel_axis, -1);
  EXPECT_EQ(vector->frame_axis, -1);
}

TEST(TensorCodec, SerializeAndParseKeepEveryField) {
  const std::vector<int64_t> shape = {1, 3, 4, 2, 2};
  std::vector<float> values = smooth_latent(shape);
  Expected<EncodedTensor> encoded = encode(
      values, shape,
      {.quant = Quant::int8_per_channel, .zstd_level = 5, .frame_delta = true, .frame_axis = -3});
  ASSERT_TRUE(encoded.ok());
  std::string bytes = serialize(*encoded);
  EXPECT_EQ(bytes.size(), encoded->stored_bytes());
  Expected<EncodedTensor> parsed = parse(bytes);
  ASSERT_TRUE(parsed.ok()) << parsed.error().message;
  EXPECT_EQ(parsed->dtype, DType::i8);
  EXPECT_EQ(parsed->quant, Quant::int8_per_channel);
  EXPECT_TRUE(parsed->zstd);
  EXPECT_TRUE(parsed->frame_delta);
  EXPECT_EQ(parsed->channel_axis, 1);
  EXPECT_EQ(parsed->frame_axis, 2);
  EXPECT_EQ(parsed->shape, shape);
  EXPECT_EQ(parsed->scales, encoded->scales);
  EXPECT_EQ(parsed->checksum, encoded->checksum);
  EXPECT_EQ(parsed->payload, encoded->payload);
  EXPECT_EQ(serialize(*parsed), bytes);
}

// The bytes are the same on every machine: pin them.
TEST(TensorCodec, SerializesLittleEndianExactlyAsDocumented) {
  Expected<std::string> bytes = pack_f32(std::vector<float>{1.0f, -2.0f}, {2});
  ASSERT_TRUE(bytes.ok());
  ASSERT_EQ(bytes->size(), 40u + 8u + 8u);
  const auto at = [&](size_t i) { return static_cast<uint8_t>((*bytes)[i]); };
  EXPECT_EQ(bytes->substr(0, 4), "RLT1");
  EXPECT_EQ(at(4), 1);  // version 1, little-endian
  EXPECT_EQ(at(5), 0);
  EXPECT_EQ(at(6), 0);     // f32
  EXPECT_EQ(at(7), 0);     // no quantisation
  EXPECT_EQ(at(8), 0);     // no flags
  EXPECT_EQ(at(9), 0xFF);  // channel axis unused
  EXPECT_EQ(at(10), 0xFF);
  EXPECT_EQ(at(11), 1);  // rank
  for (size_t i = 12; i < 16; ++i) EXPECT_EQ(at(i), 0);  // no scales
  EXPECT_EQ(at(16), 8);                                   // payload bytes
  for (size_t i = 17; i < 24; ++i) EXPECT_EQ(at(i), 0);
  EXPECT_EQ(at(32), 2);  // shape[0]
  for (size_t i = 33; i < 40; ++i) EXPECT_EQ(at(i), 0);
  const uint8_t payload[8] = {0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0};
  EXPECT_EQ(std::memcmp(bytes->data() + 48, payload, 8), 0);
}

TEST(TensorCodec, UnpackAcceptsATensorInAnyCodec) {
  const std::vector<int64_t> shape = {1, 2, 3, 4, 4};
  std::vector<float> values = smooth_latent(shape);
  Expected<EncodedTensor> encoded =
      encode(values, shape, {.quant = Quant::bf16, .zstd_level = 2, .frame_delta = true});
  ASSERT_TRUE(encoded.ok());
  auto unpacked = unpack_f32(serialize(*encoded));
  ASSERT_TRUE(unpacked.ok()) << unpacked.error().message;
  EXPECT_EQ(unpacked->first, shape);
  ASSERT_EQ(unpacked->second.size(), values.size());
  for (size_t i = 0; i < values.size(); ++i) EXPECT_NEAR(unpacked->second[i], values[i], 0.05f);
}

}  // namespace
}  // namespace reel::codecs

namespace reel::codecs {
namespace {

TEST(TensorCodec, FewerInt8BitsStayWithinHalfAStepAndCompressFurther) {
  const std::vector<int64_t> shape{1, 4, 8, 16, 16};
  std::vector<float> values = testing::smooth_latent(shape, 0.3f);
  size_t previous = SIZE_MAX;
  for (int bits : {8, 6, 4}) {
    auto t = encode(values, shape, {.quant = Quant::int8_per_channel, .zstd_level = 9, .int8_bits = bits});
    ASSERT_TRUE(t.ok()) << t.error().message;
    auto back = decode(*t);
    ASSERT_TRUE(back.ok());
    const size_t plane = 8 * 16 * 16;
    for (size_t i = 0; i < values.size(); ++i) {
      ASSERT_LE(std::fabs((*back)[i] - values[i]), t->scales[i / plane] * 0.5f * 1.0001f) << bits;
    }
    const size_t bytes = serialize(*t).size();
    EXPECT_LT(bytes, previous) << bits;
    previous = bytes;
  }
  EXPECT_FALSE(encode(values, shape, {.quant = Quant::int8_per_channel, .int8_bits = 9}).ok());
  EXPECT_FALSE(encode(values, shape, {.quant = Quant::int8_per_channel, .int8_bits = 1}).ok());
}

}  // namespace
}  // namespace reel::codecs
