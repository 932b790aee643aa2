// Compression ratio, PSNR and speed of each codec on a smooth synthetic latent, printed as a
// table. The assertions are loose floors that catch a codec gone wrong; the speeds are only
// printed (they depend on the machine and its load).
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "codecs/tensor.hpp"
#include "tests/codecs/latent_fixture.hpp"

namespace reel::codecs {
namespace {

struct Row {
  const char* name;
  EncodeOptions options;
  double min_ratio;
  double min_psnr_db;
};

double psnr_db(const std::vector<float>& original, const std::vector<float>& decoded) {
  const auto [lo, hi] = std::minmax_element(original.begin(), original.end());
  const double peak = static_cast<double>(*hi) - static_cast<double>(*lo);
  double squared = 0.0;
  for (size_t i = 0; i < original.size(); ++i) {
    const double d = static_cast<double>(decoded[i]) - static_cast<double>(original[i]);
    squared += d * d;
  }
  const double mse = squared / static_cast<double>(original.size());
  return mse == 0.0 ? INFINITY : 10.0 * std::log10(peak * peak / mse);
}

TEST(TensorCodecMeasure, SmoothLatentCompressesWellAtHighPsnr) {
  const std::vector<int64_t> shape = {1, 16, 8, 32, 32};
  const std::vector<float> latent = testing::smooth_latent(shape);
  const double f32_bytes = static_cast<double>(latent.size() * sizeof(float));
  const Row rows[] = {
      {"f32 (exact)", {}, 0.99, INFINITY},
      {"f32+zstd", {.zstd_level = 3}, 1.0, INFINITY},
      {"fp16", {.quant = Quant::fp16}, 1.99, 70.0},
      {"fp16+zstd", {.quant = Quant::fp16, .zstd_level = 3}, 2.0, 70.0},
      {"bf16+zstd", {.quant = Quant::bf16, .zstd_level = 3}, 2.0, 50.0},
      {"int8", {.quant = Quant::int8_per_channel}, 3.9, 40.0},
      {"int8+zstd", {.quant = Quant::int8_per_channel, .zstd_level = 3}, 3.9, 40.0},
      {"int8+delta+zstd",
       {.quant = Quant::int8_per_channel, .zstd_level = 3, .frame_delta = true}, 4.5, 40.0},
      {"int8+delta+zstd19",
       {.quant = Quant::int8_per_channel, .zstd_level = 19, .frame_delta = true}, 4.5, 40.0},
      {"fp16+delta+zstd", {.quant = Quant::fp16, .zstd_level = 3, .frame_delta = true}, 2.0, 70.0},
  };
  using Clock = std::chrono::steady_clock;
  std::printf("latent [1,16,8,32,32] f32 = %.0f bytes, smooth + 1%% noise\n", f32_bytes);
  std::printf("%-20s %9s %10s %8s %10s %10s %12s\n", "codec", "bytes", "ratio", "PSNR dB",
              "enc MB/s", "dec MB/s", "enc+dec MB/s");
  for (const Row& row : rows) {
    constexpr int kReps = 5;
    double encode_s = 0.0, decode_s = 0.0;
    EncodedTensor encoded;
    std::vector<float> decoded;
    for (int rep = 0; rep < kReps; ++rep) {
      const auto t0 = Clock::now();
      Expected<EncodedTensor> e = encode(latent, shape, row.options);
      const auto t1 = Clock::now();
      ASSERT_TRUE(e.ok()) << row.name << ": " << e.error().message;
      Expected<std::vector<float>> d = decode(*e);
      const auto t2 = Clock::now();
      ASSERT_TRUE(d.ok()) << row.name << ": " << d.error().message;
      encode_s += std::chrono::duration<double>(t1 - t0).count();
      decode_s += std::chrono::duration<double>(t2 - t1).count();
      encoded = std::move(*e);
      decoded = std::move(*d);
    }
    // Speeds in MB (10^6 bytes) of f32 input per second.
    const double mb = f32_bytes * kReps / 1e6;
    const double stored = static_cast<double>(encoded.stored_bytes());
    const double ratio = f32_bytes / stored;
    const double psnr = psnr_db(latent, decoded);
    std::printf("%-20s %9.0f %10.2f %8.1f %10.0f %10.0f %12.0f\n", row.name, stored, ratio, psnr,
                mb / encode_s, mb / decode_s, mb / (encode_s + decode_s));
    EXPECT_GE(ratio, row.min_ratio) << row.name;
    EXPECT_GE(psnr, row.min_psnr_db) << row.name;
  }
}

}  // namespace
}  // namespace reel::codecs
