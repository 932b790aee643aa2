// Fault injection: every damaged byte string must come back as an error, never a crash or an
// out-of-bounds read (run these under AddressSanitizer to see the second).
#include <gtest/gtest.h>

#include <limits>
#include <random>
#include <string>
#include <vector>

#include "codecs/checksum.hpp"
#include "codecs/tensor.hpp"
#include "tests/codecs/latent_fixture.hpp"

namespace reel::codecs {
namespace {

struct Sample {
  const char* name;
  std::string bytes;
};

// Small tensors in each codec, so that every byte of header and payload can be damaged in turn.
std::vector<Sample> samples() {
  const std::vector<int64_t> shape = {1, 2, 3, 2, 2};
  const std::vector<float> values = testing::smooth_latent(shape);
  std::vector<Sample> out;
  auto add = [&](const char* name, EncodeOptions options) {
    Expected<EncodedTensor> encoded = encode(values, shape, options);
    EXPECT_TRUE(encoded.ok()) << name;
    if (encoded) out.push_back({name, serialize(*encoded)});
  };
  add("f32", {});
  add("f32 delta zstd", {.zstd_level = 3, .frame_delta = true});
  add("fp16 zstd", {.quant = Quant::fp16, .zstd_level = 3});
  add("bf16 delta", {.quant = Quant::bf16, .frame_delta = true});
  add("int8", {.quant = Quant::int8_per_channel});
  add("int8 delta zstd", {.quant = Quant::int8_per_channel, .zstd_level = 3, .frame_delta = true});
  return out;
}

// Parse, then decode what parsed: true if either reported an error.
bool rejected(std::string_view bytes) {
  Expected<EncodedTensor> parsed = parse(bytes);
  if (!parsed) return true;
  return !decode(*parsed).ok();
}

TEST(TensorCorruption, ParseOrDecodeRejectsEverySingleByteCorruption) {
  for (const Sample& sample : samples()) {
    ASSERT_FALSE(rejected(sample.bytes)) << sample.name;
    for (size_t i = 0; i < sample.bytes.size(); ++i) {
      for (int mask : {0x01, 0x80, 0xFF, 0x5A}) {
        std::string damaged = sample.bytes;
        damaged[i] = static_cast<char>(damaged[i] ^ mask);
        ASSERT_TRUE(rejected(damaged)) << sample.name << ": byte " << i << " ^ " << mask;
      }
    }
  }
}

TEST(TensorCorruption, ParseRejectsEveryTruncationAndTrailingBytes) {
  for (const Sample& sample : samples()) {
    for (size_t n = 0; n < sample.bytes.size(); ++n) {
      Expected<EncodedTensor> parsed = parse(std::string_view(sample.bytes).substr(0, n));
      ASSERT_FALSE(parsed.ok()) << sample.name << ": " << n << " bytes";
      EXPECT_EQ(parsed.error().code, Errc::corrupt_data);
    }
    Expected<EncodedTensor> longer = parse(sample.bytes + '\0');
    ASSERT_FALSE(longer.ok()) << sample.name;
    EXPECT_EQ(longer.error().code, Errc::corrupt_data);
  }
}

TEST(TensorCorruption, ParseCallsAnotherVersionUnsupported) {
  std::string bytes = samples().front().bytes;
  bytes[4] = 2;
  Expected<EncodedTensor> parsed = parse(bytes);
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.error().code, Errc::unsupported);
  bytes[0] = 'X';
  parsed = parse(bytes);
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.error().code, Errc::corrupt_data);
}

// Damage the header and then repair both checksums, as a careless or hostile writer would: the
// field checks behind the checksums must still hold the line.
TEST(TensorCorruption, ChecksumConsistentGarbageIsRejectedOrDecodedSafely) {
  std::mt19937 rng(11);
  int rejected_count = 0, total = 0;
  for (const Sample& sample : samples()) {
    const std::string& good = sample.bytes;
    Expected<EncodedTensor> parsed = parse(good);
    ASSERT_TRUE(parsed.ok());
    const size_t header_end = good.size() - parsed->payload.size() - 8;
    for (int trial = 0; trial < 400; ++trial) {
      std::string damaged = good;
      const int edits = 1 + trial % 3;
      for (int e = 0; e < edits; ++e) {
        const size_t at = 6 + rng() % (header_end - 6);  // past magic and version
        damaged[at] = static_cast<char>(rng());
      }
      const uint64_t sum = checksum64(std::string_view(damaged).substr(0, header_end), kHeaderSeed);
      for (int k = 0; k < 8; ++k) damaged[header_end + k] = static_cast<char>(sum >> (8 * k));
      ++total;
      rejected_count += rejected(damaged) ? 1 : 0;  // must not crash either way
    }
  }
  EXPECT_GT(rejected_count, total / 2);
}

class HandMadeTensor : public ::testing::Test {
 protected:
  void SetUp() override {
    Expected<EncodedTensor> encoded = encode(testing::smooth_latent(shape_), shape_,
                                             {.quant = Quant::int8_per_channel, .zstd_level = 3});
    ASSERT_TRUE(encoded.ok());
    good_ = *encoded;
    ASSERT_TRUE(decode(good_).ok());
  }

  // Re-seals the payload checksum so that only the field under test is wrong.
  static Errc decode_error(EncodedTensor t) {
    t.checksum = checksum64(t.payload);
    Expected<std::vector<float>> out = decode(t);
    EXPECT_FALSE(out.ok());
    if (!out) {
      EXPECT_FALSE(out.error().message.empty());
    }
    return out ? Errc::internal : out.error().code;
  }

  std::vector<int64_t> shape_ = {1, 3, 4, 4, 4};
  EncodedTensor good_;
};

TEST_F(HandMadeTensor, DecodeRejectsAPayloadThatDoesNotMatchItsChecksum) {
  EncodedTensor t = good_;
  t.checksum ^= 1;
  Expected<std::vector<float>> out = decode(t);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error().code, Errc::corrupt_data);
}

TEST_F(HandMadeTensor, DecodeRejectsInconsistentFields) {
  EncodedTensor t = good_;
  t.dtype = DType::f16;
  EXPECT_EQ(decode_error(t), Errc::corrupt_data);
  t = good_;
  t.quant = static_cast<Quant>(7);
  EXPECT_EQ(decode_error(t), Errc::corrupt_data);
  t = good_;
  t.scales.pop_back();
  EXPECT_EQ(decode_error(t), Errc::corrupt_data);
  t = good_;
  t.scales[0] = -1.0f;
  EXPECT_EQ(decode_error(t), Errc::corrupt_data);
  t = good_;
  t.scales[1] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_EQ(decode_error(t), Errc::corrupt_data);
  t = good_;
  t.channel_axis = 5;
  EXPECT_EQ(decode_error(t), Errc::corrupt_data);
  t = good_;
  t.frame_delta = true;  // with frame_axis still -1
  EXPECT_EQ(decode_error(t), Errc::corrupt_data);
  t = good_;
  t.frame_axis = 2;  // without frame_delta
  EXPECT_EQ(decode_error(t), Errc::corrupt_data);
  t = good_;
  t.shape[2] = -4;
  EXPECT_EQ(decode_error(t), Errc::corrupt_data);
  t = good_;
  t.shape.assign(kMaxRank + 1, 1);
  EXPECT_EQ(decode_error(t), Errc::corrupt_data);
}

TEST_F(HandMadeTensor, DecodeRejectsPayloadsOfTheWrongSize) {
  EncodedTensor t = good_;
  t.shape[3] = 5;  // the frame holds 4 rows' worth
  EXPECT_EQ(decode_error(t), Errc::corrupt_data);
  t = good_;
  t.payload += "extra";  // trailing bytes after the zstd frame
  EXPECT_EQ(decode_error(t), Errc::corrupt_data);
  t = good_;
  t.payload.resize(t.payload.size() / 2);
  EXPECT_EQ(decode_error(t), Errc::corrupt_data);
  t = good_;
  t.zstd = false;  // the compressed bytes read as raw codes: wrong length
  EXPECT_EQ(decode_error(t), Errc::corrupt_data);
}

TEST_F(HandMadeTensor, DecodeRejectsGarbageWhereAZstdFrameShouldBe) {
  EncodedTensor t = good_;
  t.payload = std::string(t.payload.size(), 'z');
  EXPECT_EQ(decode_error(t), Errc::corrupt_data);
  t = good_;
  t.payload.clear();
  EXPECT_EQ(decode_error(t), Errc::corrupt_data);
}

// A well-formed frame header over damaged blocks. zstd keeps no checksum of its own (ours covers
// the payload, and it is re-sealed here), so the damage may go unseen: it must not crash, and
// what comes back has the right size.
TEST_F(HandMadeTensor, DecodeSurvivesDamagedZstdBlocksBehindAResealedChecksum) {
  for (size_t from = 6; from < good_.payload.size(); ++from) {
    EncodedTensor t = good_;
    for (size_t i = from; i < t.payload.size(); i += 3) t.payload[i] ^= 0x33;
    t.checksum = checksum64(t.payload);
    Expected<std::vector<float>> out = decode(t);
    if (out) {
      EXPECT_EQ(out->size(), t.numel());
    }
  }
}

}  // namespace
}  // namespace reel::codecs
