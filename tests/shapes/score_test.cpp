// score_clip(): rendered clips score as right, deliberately wrong ones as wrong, and blur and
// noise do not change the verdicts.
#include "models/shapes/score.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <tuple>

#include "models/shapes/grammar.hpp"
#include "models/shapes/render.hpp"
#include "models/shapes/rng.hpp"

namespace reel::models::shapes {
namespace {

const SampleOptions kTwoObjects = SampleOptions{}.with_max_objects(2);

// The render seed differs from the scene seed so that positions do not follow the scene.
std::uint64_t render_seed(std::uint64_t seed) { return seed * 7919 + 13; }

VideoScore score_or_fail(const SceneSpec& asked, const Clip& clip) {
  auto score = score_clip(asked, clip.rgb, clip.frames, clip.height, clip.width);
  EXPECT_TRUE(score.ok()) << score.error().message;
  return score.ok() ? *score : VideoScore{};
}

// 3x3 box blur of every frame and channel, edges clamped.
void blur(Clip& clip) {
  std::vector<std::uint8_t> out(clip.rgb.size());
  for (int f = 0; f < clip.frames; ++f) {
    for (int row = 0; row < clip.height; ++row) {
      for (int column = 0; column < clip.width; ++column) {
        for (int ch = 0; ch < 3; ++ch) {
          int sum = 0;
          for (int dr = -1; dr <= 1; ++dr) {
            for (int dc = -1; dc <= 1; ++dc) {
              int r = std::clamp(row + dr, 0, clip.height - 1);
              int c = std::clamp(column + dc, 0, clip.width - 1);
              sum += clip.rgb[((size_t(f) * clip.height + r) * clip.width + c) * 3 + ch];
            }
          }
          out[((size_t(f) * clip.height + row) * clip.width + column) * 3 + ch] =
              std::uint8_t((sum + 4) / 9);
        }
      }
    }
  }
  clip.rgb = std::move(out);
}

// Uniform noise in [-amplitude, amplitude] on every byte, the same for the same seed.
void add_noise(Clip& clip, int amplitude, std::uint64_t seed) {
  detail::SplitMix64 rng(seed);
  for (auto& v : clip.rgb) {
    int noisy = int(v) + rng.below(2 * amplitude + 1) - amplitude;
    v = std::uint8_t(std::clamp(noisy, 0, 255));
  }
}

// Totals over `n` sampled scenes rendered at the given size; `degrade` may alter each clip.
// The first few objects scored wrong are printed, to show what goes wrong.
template <class Degrade>
AdherenceTotals score_sampled(int n, const SampleOptions& options, int frames, int height,
                              int width, Degrade degrade) {
  AdherenceTotals totals;
  int printed = 0;
  for (std::uint64_t seed = 0; seed < std::uint64_t(n); ++seed) {
    SceneSpec scene = sample_scene(seed, options);
    Clip clip = render(scene, frames, height, width, render_seed(seed));
    degrade(clip, seed);
    VideoScore score = score_or_fail(scene, clip);
    totals.add(score);
    for (size_t o = 0; o < score.objects.size(); ++o) {
      const ObjectScore& obj = score.objects[o];
      if ((score.background && obj.colour && obj.shape && obj.motion) || ++printed > 8) continue;
      std::printf(
          "  miss %dx%dx%d seed %d object %d: %s -> %s %s %s %s (square %.2f skew %.2f "
          "dx %.1f dy %.1f)\n",
          frames, height, width, int(seed), int(o), prompt(scene).c_str(),
          std::string(name(score.seen_background)).c_str(),
          std::string(name(obj.seen_colour)).c_str(), std::string(name(obj.seen_shape)).c_str(),
          std::string(name(obj.seen_motion)).c_str(), obj.squareness, obj.skew_up, obj.dx, obj.dy);
    }
  }
  return totals;
}

AdherenceTotals score_sampled(int n, const SampleOptions& options, int frames, int height,
                              int width) {
  return score_sampled(n, options, frames, height, width, [](Clip&, std::uint64_t) {});
}

void expect_rates_at_least(const AdherenceTotals& totals, double floor, const char* what) {
  std::printf("%s: %s\n", what, totals.summary().c_str());
  EXPECT_GE(totals.background_rate(), floor) << what;
  EXPECT_GE(totals.colour_rate(), floor) << what;
  EXPECT_GE(totals.shape_rate(), floor) << what;
  EXPECT_GE(totals.motion_rate(), floor) << what;
}

TEST(ScoreClip, RatesRenderedOneObjectScenesRightAt32x32With8Frames) {
  expect_rates_at_least(score_sampled(1000, {}, 8, 32, 32), 0.99, "1 object 32x32x8");
}

TEST(ScoreClip, RatesRenderedOneObjectScenesRightAt64x64With16Frames) {
  expect_rates_at_least(score_sampled(500, {}, 16, 64, 64), 0.99, "1 object 64x64x16");
}

TEST(ScoreClip, RatesRenderedOneObjectScenesRightInLongClipsWithManyBounces) {
  expect_rates_at_least(score_sampled(300, {}, 48, 32, 32), 0.99, "1 object 32x32x48");
  expect_rates_at_least(score_sampled(200, {}, 8, 48, 64), 0.99, "1 object 48x64x8");
}

TEST(ScoreClip, RatesRenderedTwoObjectScenesMostlyRight) {
  // Occlusion hides part of the lower object in some frames; these floors sit a little under
  // the measured rates.
  expect_rates_at_least(score_sampled(1000, kTwoObjects, 8, 32, 32), 0.95, "1-2 objects 32x32x8");
  expect_rates_at_least(score_sampled(300, kTwoObjects, 16, 64, 64), 0.95, "1-2 objects 64x64x16");
}

// A generated clip is soft and grainy: a 3x3 blur then +-20 noise on every byte.
TEST(ScoreClip, StillRatesBlurredNoisyClipsRight) {
  auto blurred_noisy = [](Clip& clip, std::uint64_t seed) {
    blur(clip);
    add_noise(clip, 20, seed);
  };
  expect_rates_at_least(score_sampled(500, {}, 8, 32, 32, blurred_noisy), 0.95,
                        "blur+noise 1 object 32x32x8");
  expect_rates_at_least(score_sampled(200, {}, 16, 64, 64, blurred_noisy), 0.95,
                        "blur+noise 1 object 64x64x16");
  expect_rates_at_least(
      score_sampled(500, {}, 8, 32, 32,
                    [](Clip& clip, std::uint64_t seed) { add_noise(clip, 20, seed); }),
      0.95, "noise 1 object 32x32x8");
}

// Generated backgrounds come out a little off in colour; the scorer removes a frame's overall
// tint before it segments, and forgives some of it when it names the background.
TEST(ScoreClip, StillRatesTintedBlurredNoisyClipsRight) {
  auto tinted = [](Clip& clip, std::uint64_t seed) {
    blur(clip);
    int tint = seed % 2 == 0 ? 25 : -25;
    for (auto& v : clip.rgb) v = std::uint8_t(std::clamp(int(v) + tint, 0, 255));
    add_noise(clip, 20, seed);
  };
  expect_rates_at_least(score_sampled(400, {}, 8, 32, 32, tinted), 0.95,
                        "blur+tint+-25+noise 1 object 32x32x8");
}

// Grainier than the above: frames are smoothed before segmentation when their background
// varies this much.
TEST(ScoreClip, StillRatesVeryGrainyClipsMostlyRight) {
  auto grainy = [](Clip& clip, std::uint64_t seed) {
    blur(clip);
    add_noise(clip, 40, seed);
  };
  expect_rates_at_least(score_sampled(400, {}, 8, 32, 32, grainy), 0.9,
                        "blur+noise40 1 object 32x32x8");
}

// Shape features of rendered objects, per shape: the range over many clips at both sizes, so
// that kSquareMinSquareness and kTriangleMinSkewUp can be checked to sit between them.
TEST(ScoreClip, ShapeFeaturesSeparateTheThreeShapesAtBothSizes) {
  for (auto [height, width] : {std::pair{32, 32}, std::pair{64, 64}}) {
    for (bool degraded : {false, true}) {
      std::map<Shape, std::pair<float, float>> squareness, skew;  // min, max
      for (Shape shape : kShapes) squareness[shape] = skew[shape] = {1e9f, -1e9f};
      for (std::uint64_t seed = 0; seed < 400; ++seed) {
        SceneSpec scene = sample_scene(seed);
        Clip clip = render(scene, 8, height, width, render_seed(seed));
        if (degraded) blur(clip), add_noise(clip, 20, seed);
        VideoScore score = score_or_fail(scene, clip);
        ASSERT_TRUE(score.objects[0].found);
        Shape shape = scene.objects[0].shape;
        auto widen = [](std::pair<float, float>& range, float v) {
          range.first = std::min(range.first, v), range.second = std::max(range.second, v);
        };
        widen(squareness[shape], score.objects[0].squareness);
        widen(skew[shape], score.objects[0].skew_up);
      }
      for (Shape shape : kShapes) {
        std::printf("%dx%d%s %-8s squareness %.2f..%.2f skew_up %.2f..%.2f\n", height, width,
                    degraded ? " blur+noise" : "", std::string(name(shape)).c_str(),
                    squareness[shape].first, squareness[shape].second, skew[shape].first,
                    skew[shape].second);
      }
      if (degraded) continue;
      EXPECT_GT(squareness[Shape::square].first, kSquareMinSquareness);
      EXPECT_LT(squareness[Shape::circle].second, kSquareMinSquareness);
      EXPECT_GT(skew[Shape::triangle].first, kTriangleMinSkewUp);
      EXPECT_LT(skew[Shape::circle].second, kTriangleMinSkewUp);
      EXPECT_LT(skew[Shape::square].second, kTriangleMinSkewUp);
    }
  }
}

// Renders sampled scenes, asks for a changed version of each, and returns the share of
// videos for which `said_no` holds. `change` returns false for scenes it cannot change.
template <class Change, class SaidNo>
double share_said_no(int n, Change change, SaidNo said_no) {
  int asked = 0, no = 0;
  for (std::uint64_t seed = 0; seed < std::uint64_t(n); ++seed) {
    SceneSpec scene = sample_scene(seed);
    SceneSpec wrong = scene;
    if (!change(wrong, seed)) continue;
    Clip clip = render(scene, 8, 32, 32, render_seed(seed));
    VideoScore score = score_or_fail(wrong, clip);
    ++asked;
    no += said_no(score);
  }
  EXPECT_GT(asked, n / 4);
  return asked > 0 ? double(no) / asked : 0.0;
}

TEST(ScoreClip, SaysNoToAColourOtherThanTheOneDrawn) {
  double no = share_said_no(
      300,
      [](SceneSpec& s, std::uint64_t seed) {
        Colour drawn = s.objects[0].colour;
        s.objects[0].colour = kColours[(size_t(drawn) + 1 + seed % 9) % kColours.size()];
        return true;
      },
      [](const VideoScore& v) { return !v.objects[0].colour; });
  std::printf("wrong colour rejected: %.1f%%\n", 100 * no);
  EXPECT_GE(no, 0.95);
}

TEST(ScoreClip, SaysNoToTheReverseMotion) {
  double no = share_said_no(
      600,
      [](SceneSpec& s, std::uint64_t) {
        Motion& m = s.objects[0].motion;
        switch (m) {
          case Motion::left: m = Motion::right; return true;
          case Motion::right: m = Motion::left; return true;
          case Motion::up: m = Motion::down; return true;
          case Motion::down: m = Motion::up; return true;
          case Motion::still: m = Motion::bouncing; return true;
          case Motion::bouncing: m = Motion::still; return true;
        }
        return false;
      },
      [](const VideoScore& v) { return !v.objects[0].motion; });
  std::printf("reversed motion rejected: %.1f%%\n", 100 * no);
  EXPECT_GE(no, 0.95);
}

TEST(ScoreClip, SaysNoToAnotherShape) {
  double no = share_said_no(
      300,
      [](SceneSpec& s, std::uint64_t seed) {
        Shape drawn = s.objects[0].shape;
        s.objects[0].shape = kShapes[(size_t(drawn) + 1 + seed % 2) % kShapes.size()];
        return true;
      },
      [](const VideoScore& v) { return !v.objects[0].shape; });
  std::printf("wrong shape rejected: %.1f%%\n", 100 * no);
  EXPECT_GE(no, 0.95);
}

TEST(ScoreClip, SaysNoToAnotherBackground) {
  double no = share_said_no(
      300,
      [](SceneSpec& s, std::uint64_t seed) {
        size_t drawn = size_t(s.background);
        s.background = kBackgrounds[(drawn + 1 + seed % 6) % kBackgrounds.size()];
        return true;
      },
      [](const VideoScore& v) { return !v.background; });
  std::printf("wrong background rejected: %.1f%%\n", 100 * no);
  EXPECT_GE(no, 0.95);
}

TEST(ScoreClip, FindsNoObjectInABackgroundOnlyClipOrAUniformBlackOne) {
  SceneSpec asked{{ObjectSpec{Shape::square, Colour::red, Size::large, Motion::right}},
                  Background::striped_navy};
  std::vector<std::uint8_t> frame = render_background(Background::striped_navy, 32, 32);
  std::vector<std::uint8_t> clip;
  for (int f = 0; f < 8; ++f) clip.insert(clip.end(), frame.begin(), frame.end());
  std::vector<std::uint8_t> black(clip.size(), 0);
  for (const auto* pixels : {&clip, &black}) {
    auto score = score_clip(asked, *pixels, 8, 32, 32);
    ASSERT_TRUE(score.ok()) << score.error().message;
    ASSERT_EQ(score->objects.size(), 1u);
    const ObjectScore& o = score->objects[0];
    EXPECT_FALSE(o.found);
    EXPECT_FALSE(o.colour);
    EXPECT_FALSE(o.shape);
    EXPECT_FALSE(o.motion);
  }
  EXPECT_TRUE(score_clip(asked, clip, 8, 32, 32)->background);
}

TEST(ScoreClip, RejectsAClipWhoseSizeDoesNotMatchItsShape) {
  SceneSpec asked = sample_scene(1);
  std::vector<std::uint8_t> clip(8 * 32 * 32 * 3, 128);
  for (auto [frames, height, width] :
       {std::tuple{8, 32, 31}, std::tuple{9, 32, 32}, std::tuple{0, 32, 32},
        std::tuple{8, -32, -32}, std::tuple{8, 0, 32}}) {
    auto score = score_clip(asked, clip, frames, height, width);
    ASSERT_FALSE(score.ok()) << frames << "x" << height << "x" << width;
    EXPECT_EQ(score.error().code, Errc::invalid_argument);
  }
  auto empty = score_clip(asked, {}, 8, 32, 32);
  EXPECT_FALSE(empty.ok());
}

TEST(ScoreClip, ScoresAnEmptyAskOnlyForItsBackground) {
  Clip clip = render(sample_scene(4), 8, 32, 32, 4);
  auto score = score_clip(SceneSpec{{}, sample_scene(4).background}, clip.rgb, 8, 32, 32);
  ASSERT_TRUE(score.ok());
  EXPECT_TRUE(score->background);
  EXPECT_TRUE(score->objects.empty());
}

TEST(ScoreClip, TellsTwoObjectsOfTheSameColourApartBySize) {
  // Two same-coloured objects that touch are one segment, so only clips where the rendered
  // boxes stay apart count.
  int right = 0, n = 0;
  for (std::uint64_t seed = 0; seed < 400; ++seed) {
    SceneSpec scene{{ObjectSpec{Shape::circle, Colour::green, Size::small, Motion::up},
                     ObjectSpec{Shape::square, Colour::green, Size::large, Motion::down}},
                    kBackgrounds[seed % kBackgrounds.size()]};
    Clip clip = render(scene, 8, 64, 64, render_seed(seed));
    bool apart = true;
    for (int f = 0; f < clip.frames; ++f) {
      const Box &a = clip.boxes[0][f], &b = clip.boxes[1][f];
      apart = apart && (a.x > b.x + b.side + 2 || b.x > a.x + a.side + 2 ||
                        a.y > b.y + b.side + 2 || b.y > a.y + a.side + 2);
    }
    if (!apart) continue;
    VideoScore score = score_or_fail(scene, clip);
    ++n;
    right += score.objects[0].shape && score.objects[0].motion && score.objects[1].shape &&
             score.objects[1].motion;
  }
  std::printf("same-colour pairs right: %d of %d\n", right, n);
  EXPECT_GE(n, 20);
  EXPECT_GE(right, n * 95 / 100);
}

// Windows of 8 frames late in a long rendered video, as reel bench long scores them: after
// bounces a "moving right" object rightly moves left, so the signed motion is often "wrong"
// there, while the motion up to its sign (motion_axis) stays right.
TEST(ScoreClip, ALateWindowIsRightUpToTheSignOfItsMotion) {
  AdherenceTotals late;
  for (std::uint64_t seed = 0; seed < 200; ++seed) {
    SceneSpec scene = sample_scene(seed);
    Clip clip = render(scene, 488, 32, 32, render_seed(seed));
    for (int first : {120, 480}) {
      const size_t frame_bytes = size_t(clip.height) * clip.width * 3;
      std::vector<std::uint8_t> window(clip.rgb.begin() + first * frame_bytes,
                                       clip.rgb.begin() + (first + 8) * frame_bytes);
      auto score = score_clip(scene, window, 8, clip.height, clip.width);
      ASSERT_TRUE(score.ok()) << score.error().message;
      late.add(*score);
    }
  }
  std::printf("late windows: motion %.1f%%, up to its sign %.1f%%\n", 100 * late.motion_rate(),
              100 * late.motion_axis_rate());
  EXPECT_GE(late.motion_axis_rate(), 0.99);
  EXPECT_LT(late.motion_rate(), 0.9);  // the signed score would count right objects as wrong
}

TEST(ScoreClip, SaysNoToAMotionOnTheOtherAxis) {
  double no = share_said_no(
      600,
      [](SceneSpec& s, std::uint64_t) {
        Motion& m = s.objects[0].motion;
        switch (m) {
          case Motion::left: m = Motion::up; return true;
          case Motion::right: m = Motion::down; return true;
          case Motion::up: m = Motion::right; return true;
          case Motion::down: m = Motion::left; return true;
          case Motion::still: m = Motion::right; return true;
          case Motion::bouncing: m = Motion::up; return true;
        }
        return false;
      },
      [](const VideoScore& v) { return !v.objects[0].motion_axis; });
  std::printf("motion on another axis rejected: %.1f%%\n", 100 * no);
  EXPECT_GE(no, 0.95);
}

TEST(AdherenceTotals, CountsVideosAndObjectsAndGivesRates) {
  AdherenceTotals totals;
  EXPECT_EQ(AdherenceTotals::rate(0, 0), 0.0);
  EXPECT_EQ(totals.colour_rate(), 0.0);
  ObjectScore right;
  right.found = right.colour = right.shape = right.motion = right.motion_axis = true;
  ObjectScore wrong_motion = right;
  wrong_motion.motion = false;  // e.g. moving left where right was asked: the axis is right
  totals.add(VideoScore{true, Background::sky, {right, wrong_motion}});
  totals.add(VideoScore{true, Background::sky, {right}});
  totals.add(VideoScore{false, Background::gray, {ObjectScore{}}});
  EXPECT_EQ(totals.videos, 3);
  EXPECT_EQ(totals.objects, 4);
  EXPECT_EQ(totals.background, 2);
  EXPECT_EQ(totals.found, 3);
  EXPECT_EQ(totals.colour, 3);
  EXPECT_EQ(totals.motion, 2);
  EXPECT_EQ(totals.motion_axis, 3);
  EXPECT_EQ(totals.object_all, 2);
  EXPECT_EQ(totals.scenes, 1);
  EXPECT_DOUBLE_EQ(totals.motion_rate(), 0.5);
  EXPECT_DOUBLE_EQ(totals.motion_axis_rate(), 0.75);
  EXPECT_DOUBLE_EQ(totals.scene_rate(), 1.0 / 3);
  EXPECT_NE(totals.summary().find("background 66.7%"), std::string::npos) << totals.summary();
}

}  // namespace
}  // namespace reel::models::shapes

namespace reel::models::shapes {
namespace {

TEST(ObjectMask, CoversTheObjectBoxesAndLittleElse) {
  int covered = 0, inside = 0, outside_marked = 0, outside = 0;
  for (uint64_t seed = 0; seed < 20; ++seed) {
    SceneSpec scene = sample_scene(seed, kTwoObjects);
    Clip clip = render(scene, 8, 32, 32, render_seed(seed));
    auto mask = object_mask(scene, clip.rgb, 8, 32, 32);
    ASSERT_TRUE(mask.ok()) << mask.error().message;
    ASSERT_EQ(mask->size(), 8u * 32 * 32);
    for (int f = 0; f < 8; ++f) {
      for (int y = 0; y < 32; ++y) {
        for (int x = 0; x < 32; ++x) {
          bool in_box = false;
          for (const auto& boxes : clip.boxes) {
            const Box& b = boxes[size_t(f)];
            in_box |= x + 0.5f >= b.x && x + 0.5f < b.x + b.side && y + 0.5f >= b.y && y + 0.5f < b.y + b.side;
          }
          const bool marked = (*mask)[size_t(f) * 1024 + size_t(y) * 32 + size_t(x)] != 0;
          if (in_box) {
            ++inside;
            covered += marked;
          } else {
            ++outside;
            outside_marked += marked;
          }
        }
      }
    }
  }
  // Circles and triangles fill about half to three quarters of their box; the mask is dilated.
  EXPECT_GT(double(covered) / inside, 0.5);
  EXPECT_LT(double(outside_marked) / outside, 0.08);
}

TEST(ObjectMask, RejectsAClipOfTheWrongSize) {
  SceneSpec scene = sample_scene(1);
  std::vector<std::uint8_t> rgb(10);
  EXPECT_FALSE(object_mask(scene, rgb, 8, 32, 32).ok());
}

}  // namespace
}  // namespace reel::models::shapes
