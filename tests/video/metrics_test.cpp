#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "test_frames.hpp"
#include "video/metrics.hpp"

namespace reel::video {
namespace {

using testing::moving_gradient;
using testing::noise;
using testing::solid;

std::vector<Frame> gradient_video(int frames) {
  std::vector<Frame> v;
  for (int i = 0; i < frames; ++i) v.push_back(moving_gradient(48, 32, 2 * i));
  return v;
}

TEST(Psnr, IsInfiniteForIdenticalVideos) {
  const auto v = gradient_video(3);
  const auto p = psnr(v, v);
  ASSERT_TRUE(p.ok()) << p.error().message;
  EXPECT_EQ(*p, std::numeric_limits<double>::infinity());
}

TEST(Psnr, OfEveryPixelOffByTenIsTwentyLog10Of255Over10) {
  const std::vector<Frame> a{solid(16, 8, 100, 50, 0), solid(16, 8, 10, 20, 30)};
  const std::vector<Frame> b{solid(16, 8, 110, 40, 10), solid(16, 8, 0, 30, 40)};
  const auto p = psnr(a, b);
  ASSERT_TRUE(p.ok()) << p.error().message;
  EXPECT_NEAR(*p, 20.0 * std::log10(255.0 / 10.0), 1e-9);
}

TEST(Psnr, RejectsVideosOfDifferentFrameCounts) {
  const auto p = psnr(gradient_video(2), gradient_video(3));
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.error().code, Errc::invalid_argument);
}

TEST(Psnr, RejectsFramesOfDifferentSizes) {
  const auto p = psnr({solid(4, 4, 0, 0, 0)}, {solid(4, 2, 0, 0, 0)});
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.error().code, Errc::invalid_argument);
}

TEST(Psnr, RejectsEmptyVideos) {
  const auto p = psnr({}, {});
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.error().code, Errc::invalid_argument);
}

TEST(Ssim, IsOneForIdenticalVideos) {
  const auto v = gradient_video(3);
  const auto s = ssim(v, v);
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_NEAR(*s, 1.0, 1e-12);
}

TEST(Ssim, IsLowerForANoisyCopyAndLowerStillForMoreNoise) {
  const std::vector<Frame> clean{moving_gradient(64, 48, 0)};
  auto noisy = [&](int amplitude) {
    Frame f = clean[0];
    const Frame n = noise(64, 48, 7);
    for (size_t i = 0; i < f.rgb.size(); ++i) {
      const int v = f.rgb[i] + (n.rgb[i] - 128) * amplitude / 128;
      f.rgb[i] = static_cast<uint8_t>(std::clamp(v, 0, 255));
    }
    return std::vector<Frame>{f};
  };
  const auto light = ssim(clean, noisy(10));
  const auto heavy = ssim(clean, noisy(80));
  ASSERT_TRUE(light.ok() && heavy.ok());
  EXPECT_LT(*light, 0.99);
  EXPECT_LT(*heavy, *light);
  EXPECT_GE(*heavy, -1.0);
}

TEST(Ssim, OfIndependentNoiseIsNearZero) {
  const auto s = ssim({noise(64, 64, 1)}, {noise(64, 64, 2)});
  ASSERT_TRUE(s.ok());
  EXPECT_NEAR(*s, 0.0, 0.1);
}

TEST(Ssim, WorksOnFramesSmallerThanItsWindow) {
  const auto s = ssim({solid(3, 2, 9, 9, 9)}, {solid(3, 2, 9, 9, 9)});
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_NEAR(*s, 1.0, 1e-12);
}

TEST(Ssim, RejectsMismatchedVideos) {
  const auto s = ssim(gradient_video(1), gradient_video(2));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, Errc::invalid_argument);
}

TEST(TemporalConsistency, IsOneForAStaticVideo) {
  const std::vector<Frame> still(5, moving_gradient(40, 30, 0));
  const auto t = temporal_consistency(still);
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_NEAR(*t, 1.0, 1e-12);
}

TEST(TemporalConsistency, IsLowerForFramesOfIndependentNoiseThanForSlowMotion) {
  std::vector<Frame> flicker;
  for (uint32_t i = 0; i < 4; ++i) flicker.push_back(noise(40, 30, i));
  const auto smooth = temporal_consistency(gradient_video(4));
  const auto noisy = temporal_consistency(flicker);
  ASSERT_TRUE(smooth.ok() && noisy.ok());
  EXPECT_LT(*noisy, 0.2);
  EXPECT_GT(*smooth, *noisy);
}

TEST(TemporalConsistency, NeedsAtLeastTwoFrames) {
  const auto t = temporal_consistency(gradient_video(1));
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.error().code, Errc::invalid_argument);
}

TEST(TemporalConsistency, RejectsFramesOfDifferentSizes) {
  const auto t = temporal_consistency({solid(4, 4, 0, 0, 0), solid(2, 4, 0, 0, 0)});
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.error().code, Errc::invalid_argument);
}

}  // namespace
}  // namespace reel::video
