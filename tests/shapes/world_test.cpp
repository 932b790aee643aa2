// The shapes world: vocabulary, prompt grammar, sampling and rendering ground truth.
#include "models/shapes/world.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <sstream>

#include "models/shapes/grammar.hpp"
#include "models/shapes/render.hpp"

namespace reel::models::shapes {
namespace {

const SampleOptions kTwoObjects = SampleOptions{}.with_max_objects(2);

int distance2(Rgb a, Rgb b) {
  int dr = int(a.r) - b.r, dg = int(a.g) - b.g, db = int(a.b) - b.b;
  return dr * dr + dg * dg + db * db;
}

std::set<std::tuple<int, int, int>> distinct_colours(const std::vector<std::uint8_t>& rgb) {
  std::set<std::tuple<int, int, int>> out;
  for (size_t i = 0; i + 2 < rgb.size(); i += 3) out.insert({rgb[i], rgb[i + 1], rgb[i + 2]});
  return out;
}

SceneSpec one_object(Shape shape, Colour colour, Size size, Motion motion, Background bg) {
  return SceneSpec{{ObjectSpec{shape, colour, size, motion}}, bg};
}

TEST(SampleScene, IsTheSameForTheSameSeedAndVariesWithTheSeed) {
  std::set<std::string> prompts;
  for (std::uint64_t seed = 0; seed < 100; ++seed) {
    EXPECT_EQ(sample_scene(seed, kTwoObjects), sample_scene(seed, kTwoObjects));
    EXPECT_EQ(prompt(sample_scene(seed)), prompt(sample_scene(seed)));
    prompts.insert(prompt(sample_scene(seed, kTwoObjects)));
  }
  EXPECT_GT(prompts.size(), 95u);
}

TEST(SampleScene, HasOneObjectByDefaultAndOneOrTwoDifferentlyColouredWhenAllowed) {
  int two = 0;
  for (std::uint64_t seed = 0; seed < 500; ++seed) {
    EXPECT_EQ(sample_scene(seed).objects.size(), 1u);
    SceneSpec scene = sample_scene(seed, kTwoObjects);
    ASSERT_GE(scene.objects.size(), 1u);
    ASSERT_LE(scene.objects.size(), 2u);
    if (scene.objects.size() == 2) {
      ++two;
      EXPECT_NE(scene.objects[0].colour, scene.objects[1].colour);
    }
  }
  EXPECT_GT(two, 150);
  EXPECT_LT(two, 350);
}

TEST(Render, IsIdenticalForTheSameSeedAndDiffersForAnother) {
  SceneSpec scene = sample_scene(7, kTwoObjects);
  Clip a = render(scene, 16, 32, 32, 11);
  Clip b = render(scene, 16, 32, 32, 11);
  Clip c = render(scene, 16, 32, 32, 12);
  EXPECT_EQ(a.rgb, b.rgb);
  EXPECT_EQ(a.centroids, b.centroids);
  EXPECT_NE(a.rgb, c.rgb);
  EXPECT_EQ(a.rgb.size(), size_t(16) * 32 * 32 * 3);
}

TEST(Prompt, ReadsLikePlainEnglish) {
  SceneSpec scene =
      one_object(Shape::circle, Colour::red, Size::large, Motion::right, Background::striped_navy);
  EXPECT_EQ(prompt(scene), "a large red circle moving right on a striped navy background");
  scene.objects.push_back({Shape::square, Colour::blue, Size::small, Motion::still});
  EXPECT_EQ(prompt(scene),
            "a large red circle moving right and a small blue square standing still on a "
            "striped navy background");
}

TEST(Prompt, RoundTripsThroughParsePromptForAThousandSampledScenes) {
  int two = 0;
  for (std::uint64_t seed = 0; seed < 1000; ++seed) {
    SceneSpec scene = sample_scene(seed, kTwoObjects);
    two += scene.objects.size() == 2;
    auto parsed = parse_prompt(prompt(scene));
    ASSERT_TRUE(parsed.ok()) << prompt(scene) << ": " << parsed.error().message;
    EXPECT_EQ(*parsed, scene) << prompt(scene);
  }
  EXPECT_GT(two, 300);
}

TEST(Prompt, UsesOnlyVocabularyWords) {
  const auto& vocab = vocabulary_words();
  EXPECT_EQ(std::set<std::string>(vocab.begin(), vocab.end()).size(), vocab.size());
  for (std::uint64_t seed = 0; seed < 1000; ++seed) {
    std::istringstream words(prompt(sample_scene(seed, kTwoObjects)));
    for (std::string word; words >> word;) {
      EXPECT_NE(std::find(vocab.begin(), vocab.end(), word), vocab.end()) << word;
    }
  }
}

TEST(ParsePrompt, IgnoresCaseExtraSpacesAndAFullStop) {
  auto parsed = parse_prompt("  A Small CYAN triangle   bouncing on a SKY background. ");
  ASSERT_TRUE(parsed.ok()) << parsed.error().message;
  EXPECT_EQ(*parsed, one_object(Shape::triangle, Colour::cyan, Size::small, Motion::bouncing,
                                Background::sky));
}

TEST(ParsePrompt, RejectsAPurpleHexagonNamingTheUnknownWord) {
  auto parsed = parse_prompt("a purple hexagon");
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.error().code, Errc::invalid_argument);
  EXPECT_NE(parsed.error().message.find("unknown word \"hexagon\""), std::string::npos)
      << parsed.error().message;
  EXPECT_NE(parsed.error().message.find("circle, square, triangle"), std::string::npos);
}

TEST(ParsePrompt, RejectsPromptsOutsideTheGrammarSayingWhatWasExpected) {
  auto no_motion = parse_prompt("a large red circle on a gray background");
  ASSERT_FALSE(no_motion.ok());
  EXPECT_NE(no_motion.error().message.find("expected a motion"), std::string::npos)
      << no_motion.error().message;

  auto no_background = parse_prompt("a large red circle moving up");
  ASSERT_FALSE(no_background.ok());
  EXPECT_NE(no_background.error().message.find("the end of the prompt"), std::string::npos);

  auto bad_background = parse_prompt("a large red circle moving up on a striped gray background");
  ASSERT_FALSE(bad_background.ok());
  EXPECT_NE(bad_background.error().message.find("\"striped gray\" is not a background"),
            std::string::npos)
      << bad_background.error().message;

  std::string three =
      "a large red circle bouncing and a small blue square bouncing and a small "
      "green square bouncing on a sky background";
  EXPECT_FALSE(parse_prompt(three).ok());
  EXPECT_FALSE(parse_prompt("").ok());
  EXPECT_FALSE(parse_prompt("a small red circle moving up on a gray background and").ok());
}

TEST(Render, KeepsEveryObjectInsideTheFrameFor200FramesWithoutJumps) {
  for (auto [height, width] : {std::pair{32, 32}, std::pair{48, 64}}) {
    double speed = speed_px_per_frame(height, width);
    for (std::uint64_t seed = 0; seed < 60; ++seed) {
      SceneSpec scene = sample_scene(seed, kTwoObjects);
      Clip clip = render(scene, 200, height, width, seed * 31 + 5);
      ASSERT_EQ(clip.boxes.size(), scene.objects.size());
      for (size_t o = 0; o < scene.objects.size(); ++o) {
        for (int f = 0; f < 200; ++f) {
          const Box& box = clip.boxes[o][f];
          EXPECT_GE(box.x, 0.f);
          EXPECT_GE(box.y, 0.f);
          EXPECT_LE(box.x + box.side, float(width));
          EXPECT_LE(box.y + box.side, float(height));
          if (f == 0) continue;
          // A wrap would teleport the object across the frame.
          auto [x0, y0] = clip.centroids[o][f - 1];
          auto [x1, y1] = clip.centroids[o][f];
          EXPECT_LE(std::abs(x1 - x0), speed + 1.0) << prompt(scene) << " frame " << f;
          EXPECT_LE(std::abs(y1 - y0), speed + 1.0) << prompt(scene) << " frame " << f;
        }
      }
    }
  }
}

TEST(Render, DrawsAWholeSquareInEveryFrame) {
  SceneSpec scene = one_object(Shape::square, Colour::orange, Size::large, Motion::bouncing,
                               Background::checkered_gray);
  Clip clip = render(scene, 200, 32, 32, 3);
  int side = object_side(Size::large, 32, 32);
  EXPECT_EQ(side, 14);
  for (int f = 0; f < clip.frames; ++f) {
    int count = 0;
    for (int row = 0; row < 32; ++row) {
      for (int column = 0; column < 32; ++column) {
        count += clip.pixel(f, row, column) == rgb(Colour::orange);
      }
    }
    EXPECT_EQ(count, side * side) << "frame " << f;
  }
}

TEST(Render, MovesARightObjectRightUntilItBouncesOffTheRightEdge) {
  for (std::uint64_t seed = 0; seed < 50; ++seed) {
    SceneSpec scene =
        one_object(Shape::circle, Colour::red, Size::small, Motion::right, Background::gray);
    Clip clip = render(scene, 60, 32, 32, seed);
    const auto& c = clip.centroids[0];
    int first_turn = 1;
    while (first_turn < clip.frames && c[first_turn].first > c[first_turn - 1].first) ++first_turn;
    // The object starts in the left half of its travel, so it moves right for a while.
    EXPECT_GE(first_turn, 8) << "seed " << seed;
    ASSERT_LT(first_turn, clip.frames) << "never bounced";
    const Box& box = clip.boxes[0][first_turn - 1];
    EXPECT_GE(box.x + box.side, 32 - 2 * speed_px_per_frame(32, 32)) << "turned before the edge";
    // The box keeps its row; the raster centroid wobbles below half a pixel with subpixel x.
    for (int f = 1; f < clip.frames; ++f) {
      EXPECT_EQ(clip.boxes[0][f].y, clip.boxes[0][0].y);
      EXPECT_NEAR(c[f].second, c[0].second, 0.5);
    }
  }
}

TEST(Render, LeavesAStillObjectInPlace) {
  SceneSpec scene =
      one_object(Shape::triangle, Colour::yellow, Size::small, Motion::still, Background::sky);
  Clip clip = render(scene, 30, 32, 32, 9);
  for (int f = 1; f < clip.frames; ++f) EXPECT_EQ(clip.centroids[0][f], clip.centroids[0][0]);
  for (size_t i = 1; i < clip.rgb.size() / (32 * 32 * 3); ++i) {
    EXPECT_TRUE(std::equal(clip.rgb.begin(), clip.rgb.begin() + 32 * 32 * 3,
                           clip.rgb.begin() + i * 32 * 32 * 3));
  }
}

TEST(Render, PaintsTheObjectColourAtItsCentroid) {
  for (std::uint64_t seed = 0; seed < 300; ++seed) {
    SceneSpec scene = sample_scene(seed, kTwoObjects);
    Clip clip = render(scene, 20, 32, 32, seed);
    // Only the last object is never occluded.
    size_t last = scene.objects.size() - 1;
    for (size_t o = 0; o < scene.objects.size(); ++o) {
      if (scene.objects.size() == 2 && o != last) continue;
      for (int f = 0; f < clip.frames; ++f) {
        auto [x, y] = clip.centroids[o][f];
        Rgb p = clip.pixel(f, int(std::lround(y)), int(std::lround(x)));
        EXPECT_EQ(p, rgb(scene.objects[o].colour)) << prompt(scene) << " frame " << f;
        EXPECT_EQ(nearest_colour(p), scene.objects[o].colour);
      }
    }
  }
}

TEST(Backgrounds, TexturedOnesAreNotUniformAndPlainOnesAre) {
  for (Background bg : kBackgrounds) {
    size_t n = distinct_colours(render_background(bg, 32, 32)).size();
    switch (bg) {
      case Background::navy:
      case Background::gray:
      case Background::sand: EXPECT_EQ(n, 1u) << name(bg); break;
      case Background::striped_navy:
      case Background::striped_sand:
      case Background::checkered_gray: EXPECT_EQ(n, 2u) << name(bg); break;
      case Background::sky: EXPECT_GT(n, 3u) << name(bg); break;
    }
  }
}

TEST(Backgrounds, HaveNoPixelCloseToAnObjectColour) {
  for (Background bg : kBackgrounds) {
    for (auto [r, g, b] : distinct_colours(render_background(bg, 64, 64))) {
      Rgb pixel{std::uint8_t(r), std::uint8_t(g), std::uint8_t(b)};
      for (Colour c : kColours) {
        EXPECT_GE(distance2(pixel, rgb(c)), 70 * 70) << name(bg) << " vs " << name(c);
      }
    }
  }
}

TEST(NearestColour, RecoversEveryColourFromItsRgbAndFromNoisyCopies) {
  for (Colour c : kColours) {
    EXPECT_EQ(nearest_colour(rgb(c)), c);
    for (Colour other : kColours) {
      if (other == c) continue;
      EXPECT_GE(distance2(rgb(c), rgb(other)), 80 * 80) << name(c) << " vs " << name(other);
    }
    Rgb v = rgb(c);
    auto shift = [](std::uint8_t u, int d) { return std::uint8_t(std::clamp(u + d, 0, 255)); };
    EXPECT_EQ(nearest_colour({shift(v.r, 20), shift(v.g, -20), shift(v.b, 20)}), c) << name(c);
  }
}

TEST(NearestBackground, RecognisesEveryBackgroundWithTheObjectsMaskedOut) {
  for (std::uint64_t seed = 0; seed < 70; ++seed) {
    SceneSpec scene = sample_scene(seed, kTwoObjects);
    Clip clip = render(scene, 1, 32, 32, seed);
    std::vector<std::uint8_t> ignore(32 * 32, 0);
    for (const auto& boxes : clip.boxes) {
      const Box& b = boxes[0];
      for (int row = int(b.y); row < std::min(32, int(b.y + b.side) + 1); ++row) {
        for (int column = int(b.x); column < std::min(32, int(b.x + b.side) + 1); ++column) {
          ignore[row * 32 + column] = 1;
        }
      }
    }
    EXPECT_EQ(nearest_background(clip.rgb, 32, 32, ignore), scene.background) << prompt(scene);
    EXPECT_EQ(nearest_background(clip.rgb, 32, 32), scene.background) << prompt(scene);
  }
}

TEST(Vocabulary, JsonListsEveryCategory) {
  std::string json = vocabulary_json();
  EXPECT_EQ(json.front(), '{');
  EXPECT_EQ(json.back(), '}');
  EXPECT_NE(json.find("\"shapes\": [\"circle\", \"square\", \"triangle\"]"), std::string::npos);
  EXPECT_NE(json.find("\"sizes\": [\"small\", \"large\"]"), std::string::npos);
  EXPECT_NE(json.find("\"backgrounds\": [\"navy\", \"gray\", \"sand\", \"striped navy\""),
            std::string::npos);
  for (const char* key : {"\"colours\"", "\"motions\"", "\"words\""}) {
    EXPECT_NE(json.find(key), std::string::npos) << key;
  }
}

}  // namespace
}  // namespace reel::models::shapes
