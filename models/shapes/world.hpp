// The "shapes world": a closed vocabulary of coloured shapes moving over simple backgrounds.
// It is the training data and the ground truth for the small text-to-video model that reel
// trains itself, so everything here is deterministic and free of LibTorch. The prompt grammar
// lives in grammar.hpp and the renderer in render.hpp.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace reel::models::shapes {

enum class Shape { circle, square, triangle };

// Object colours. Their RGB values (see rgb()) are at least ~80 apart from each other and from
// every background tone, so that nearest_colour() recovers them from rendered pixels.
enum class Colour { red, green, blue, yellow, orange, purple, white, black, cyan, magenta };

// Side of the object's bounding square: small is 25%, large 45% of the frame's smaller side.
enum class Size { small, large };

// left/right/up/down start moving that way and bounce off the edges; bouncing moves diagonally
// and bounces; still stays put.
enum class Motion { left, right, up, down, still, bouncing };

// Closed list of backgrounds; its name is the phrase between "on a" and "background".
// Backgrounds do not depend on the seed (a background is reusable across clips).
enum class Background {
  navy,            // plain navy
  gray,            // plain gray
  sand,            // plain sand (beige)
  striped_navy,    // horizontal navy and gray stripes
  striped_sand,    // vertical sand and gray stripes
  checkered_gray,  // gray and dark-gray checks
  sky,             // light-blue gradient sky over brown ground
};

inline constexpr std::array kShapes{Shape::circle, Shape::square, Shape::triangle};
inline constexpr std::array kColours{Colour::red,    Colour::green,  Colour::blue,  Colour::yellow,
                                     Colour::orange, Colour::purple, Colour::white, Colour::black,
                                     Colour::cyan,   Colour::magenta};
inline constexpr std::array kSizes{Size::small, Size::large};
inline constexpr std::array kMotions{Motion::left, Motion::right, Motion::up,
                                     Motion::down, Motion::still, Motion::bouncing};
inline constexpr std::array kBackgrounds{Background::navy,         Background::gray,
                                         Background::sand,         Background::striped_navy,
                                         Background::striped_sand, Background::checkered_gray,
                                         Background::sky};

struct Rgb {
  std::uint8_t r = 0, g = 0, b = 0;
  bool operator==(const Rgb&) const = default;
};

struct ObjectSpec {
  Shape shape = Shape::circle;
  Colour colour = Colour::red;
  Size size = Size::small;
  Motion motion = Motion::still;
  bool operator==(const ObjectSpec&) const = default;
};

struct SceneSpec {
  std::vector<ObjectSpec> objects;  // 1 or 2; drawn in order, so the last is on top
  Background background = Background::gray;
  bool operator==(const SceneSpec&) const = default;
};

// Vocabulary names as they appear in prompts ("striped navy" for Background::striped_navy).
[[nodiscard]] std::string_view name(Shape shape);
[[nodiscard]] std::string_view name(Colour colour);
[[nodiscard]] std::string_view name(Size size);
[[nodiscard]] std::string_view name(Motion motion);
[[nodiscard]] std::string_view name(Background background);

[[nodiscard]] Rgb rgb(Colour colour);

// The vocabulary colour whose RGB value is nearest (squared Euclidean distance) to `pixel`.
[[nodiscard]] Colour nearest_colour(Rgb pixel);

// Every word that can appear in a prompt, each once, in a fixed order: grammar words first
// ("a", "and", "moving", ...), then shapes, colours, sizes, motions and background words.
// The tokenizer numbers words by this order, so new words go at the end.
[[nodiscard]] const std::vector<std::string>& vocabulary_words();

// {"shapes": [...], "colours": [...], "sizes": [...], "motions": [...], "backgrounds": [...],
//  "words": [...]} on one line; "words" is vocabulary_words().
[[nodiscard]] std::string vocabulary_json();

struct SampleOptions {
  int max_objects = 1;  // scenes have 1..max_objects objects (clamped to 1..2); default 1
  SampleOptions& with_max_objects(int n) {
    max_objects = n;
    return *this;
  }
};

// A scene drawn uniformly from the vocabulary, the same for the same seed on every platform
// (own SplitMix64, no <random> distributions). Two objects always have different colours.
[[nodiscard]] SceneSpec sample_scene(std::uint64_t seed, const SampleOptions& opts = {});

}  // namespace reel::models::shapes
