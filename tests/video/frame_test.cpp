#include <gtest/gtest.h>

#include "test_frames.hpp"
#include "video/frame.hpp"

namespace reel::video {
namespace {

using testing::pixel;
using testing::solid;

// 2x1: a black pixel then a white one.
Frame black_white() { return Frame{2, 1, {0, 0, 0, 255, 255, 255}}; }

TEST(CheckFrame, AcceptsAFrameWhoseBufferMatchesItsSize) {
  EXPECT_TRUE(check_frame(solid(3, 2, 1, 2, 3)).ok());
}

TEST(CheckFrame, RejectsAFrameWhoseBufferDoesNotMatchItsSize) {
  Frame f = solid(3, 2, 1, 2, 3);
  f.rgb.pop_back();
  const Status s = check_frame(f);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, Errc::invalid_argument);
}

TEST(CheckFrame, RejectsAnEmptyFrame) { EXPECT_FALSE(check_frame(Frame{}).ok()); }

TEST(Upscale, NearestRepeatsEachPixelFactorTimesInBothDirections) {
  const Frame up = upscale(black_white(), 3, Interp::nearest);
  ASSERT_EQ(up.width, 6);
  ASSERT_EQ(up.height, 3);
  ASSERT_EQ(up.rgb.size(), 6u * 3 * 3);
  for (int y = 0; y < 3; ++y)
    for (int x = 0; x < 6; ++x) {
      const int v = x < 3 ? 0 : 255;
      EXPECT_EQ(pixel(up, x, y), (std::vector<int>{v, v, v})) << x << "," << y;
    }
}

TEST(Upscale, BicubicKeepsASolidColourAndScalesTheSize) {
  const Frame up = upscale(solid(5, 3, 10, 200, 77), 4, Interp::bicubic);
  ASSERT_EQ(up.width, 20);
  ASSERT_EQ(up.height, 12);
  ASSERT_EQ(up.rgb.size(), 20u * 12 * 3);
  for (int y = 0; y < up.height; ++y)
    for (int x = 0; x < up.width; ++x)
      ASSERT_EQ(pixel(up, x, y), (std::vector<int>{10, 200, 77})) << x << "," << y;
}

TEST(Upscale, BicubicBlendsAcrossAnEdgeWhereNearestDoesNot) {
  Frame ramp{8, 1, {}};
  for (int x = 0; x < 8; ++x) ramp.rgb.insert(ramp.rgb.end(), 3, x < 4 ? 0 : 240);
  const Frame up = upscale(ramp, 4, Interp::bicubic);
  ASSERT_EQ(up.width, 32);
  // Around the edge (x = 16 in the output) the values pass through grey.
  bool saw_between = false;
  for (int x = 12; x < 20; ++x) {
    const int v = pixel(up, x, 0)[0];
    saw_between = saw_between || (v > 20 && v < 220);
  }
  EXPECT_TRUE(saw_between);
  // Far from the edge the flat levels stay.
  EXPECT_EQ(pixel(up, 0, 0)[0], 0);
  EXPECT_EQ(pixel(up, 31, 0)[0], 240);
}

TEST(Upscale, FactorOneReturnsAnEqualFrame) {
  const Frame f = black_white();
  const Frame up = upscale(f, 1, Interp::bicubic);
  EXPECT_EQ(up.width, f.width);
  EXPECT_EQ(up.height, f.height);
  EXPECT_EQ(up.rgb, f.rgb);
}

TEST(Upscale, AnInvalidFrameGivesAnEmptyFrame) {
  Frame bad = black_white();
  bad.rgb.pop_back();
  const Frame up = upscale(bad, 2, Interp::nearest);
  EXPECT_EQ(up.width, 0);
  EXPECT_TRUE(up.rgb.empty());
}

}  // namespace
}  // namespace reel::video
