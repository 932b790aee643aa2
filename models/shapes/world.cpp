// Vocabulary names, colours and scene sampling for the shapes world.
#include "models/shapes/world.hpp"

#include <algorithm>
#include <limits>

#include "models/shapes/rng.hpp"

namespace reel::models::shapes {

std::string_view name(Shape shape) {
  switch (shape) {
    case Shape::circle: return "circle";
    case Shape::square: return "square";
    case Shape::triangle: return "triangle";
  }
  return "?";
}

std::string_view name(Colour colour) {
  switch (colour) {
    case Colour::red: return "red";
    case Colour::green: return "green";
    case Colour::blue: return "blue";
    case Colour::yellow: return "yellow";
    case Colour::orange: return "orange";
    case Colour::purple: return "purple";
    case Colour::white: return "white";
    case Colour::black: return "black";
    case Colour::cyan: return "cyan";
    case Colour::magenta: return "magenta";
  }
  return "?";
}

std::string_view name(Size size) {
  switch (size) {
    case Size::small: return "small";
    case Size::large: return "large";
  }
  return "?";
}

std::string_view name(Motion motion) {
  switch (motion) {
    case Motion::left: return "left";
    case Motion::right: return "right";
    case Motion::up: return "up";
    case Motion::down: return "down";
    case Motion::still: return "still";
    case Motion::bouncing: return "bouncing";
  }
  return "?";
}

std::string_view name(Background background) {
  switch (background) {
    case Background::navy: return "navy";
    case Background::gray: return "gray";
    case Background::sand: return "sand";
    case Background::striped_navy: return "striped navy";
    case Background::striped_sand: return "striped sand";
    case Background::checkered_gray: return "checkered gray";
    case Background::sky: return "sky";
  }
  return "?";
}

// Saturated primaries and secondaries plus white and black; the background tones (render.cpp)
// are muted so that no object colour is within ~80 of any background pixel.
Rgb rgb(Colour colour) {
  switch (colour) {
    case Colour::red: return {230, 25, 25};
    case Colour::green: return {30, 180, 40};
    case Colour::blue: return {30, 60, 230};
    case Colour::yellow: return {245, 225, 30};
    case Colour::orange: return {245, 130, 20};
    case Colour::purple: return {130, 40, 170};
    case Colour::white: return {245, 245, 245};
    case Colour::black: return {15, 15, 15};
    case Colour::cyan: return {30, 220, 220};
    case Colour::magenta: return {230, 40, 200};
  }
  return {};
}

Colour nearest_colour(Rgb pixel) {
  Colour best = Colour::red;
  int best_d2 = std::numeric_limits<int>::max();
  for (Colour c : kColours) {
    Rgb v = rgb(c);
    int dr = int(pixel.r) - v.r, dg = int(pixel.g) - v.g, db = int(pixel.b) - v.b;
    int d2 = dr * dr + dg * dg + db * db;
    if (d2 < best_d2) best_d2 = d2, best = c;
  }
  return best;
}

namespace {

void add_words(std::vector<std::string>& words, std::string_view phrase) {
  size_t start = 0;
  while (start < phrase.size()) {
    size_t end = phrase.find(' ', start);
    if (end == std::string_view::npos) end = phrase.size();
    std::string word(phrase.substr(start, end - start));
    if (!word.empty() && std::find(words.begin(), words.end(), word) == words.end()) {
      words.push_back(std::move(word));
    }
    start = end + 1;
  }
}

template <class Range>
void append_json_names(std::string& out, const char* key, const Range& values) {
  out += '"';
  out += key;
  out += "\": [";
  bool first = true;
  for (const auto& v : values) {
    if (!first) out += ", ";
    first = false;
    out += '"';
    out += v;
    out += '"';
  }
  out += ']';
}

template <class Array>
std::vector<std::string_view> names_of(const Array& values) {
  std::vector<std::string_view> out;
  for (auto v : values) out.push_back(name(v));
  return out;
}

}  // namespace

const std::vector<std::string>& vocabulary_words() {
  static const std::vector<std::string> words = [] {
    std::vector<std::string> w;
    add_words(w, "a and moving standing on background");  // grammar.cpp writes these
    for (auto v : kShapes) add_words(w, name(v));
    for (auto v : kColours) add_words(w, name(v));
    for (auto v : kSizes) add_words(w, name(v));
    for (auto v : kMotions) add_words(w, name(v));
    for (auto v : kBackgrounds) add_words(w, name(v));
    return w;
  }();
  return words;
}

std::string vocabulary_json() {
  std::string out = "{";
  append_json_names(out, "shapes", names_of(kShapes));
  out += ", ";
  append_json_names(out, "colours", names_of(kColours));
  out += ", ";
  append_json_names(out, "sizes", names_of(kSizes));
  out += ", ";
  append_json_names(out, "motions", names_of(kMotions));
  out += ", ";
  append_json_names(out, "backgrounds", names_of(kBackgrounds));
  out += ", ";
  append_json_names(out, "words", vocabulary_words());
  out += "}";
  return out;
}

SceneSpec sample_scene(std::uint64_t seed, const SampleOptions& opts) {
  detail::SplitMix64 rng(seed);
  int max_objects = std::clamp(opts.max_objects, 1, 2);
  SceneSpec scene;
  scene.background = kBackgrounds[rng.below(int(kBackgrounds.size()))];
  int count = 1 + rng.below(max_objects);
  for (int i = 0; i < count; ++i) {
    ObjectSpec object;
    object.shape = kShapes[rng.below(int(kShapes.size()))];
    object.colour = kColours[rng.below(int(kColours.size()))];
    // Redraw a repeated colour so that the evaluator can tell the two objects apart.
    while (i > 0 && object.colour == scene.objects[0].colour) {
      object.colour = kColours[rng.below(int(kColours.size()))];
    }
    object.size = kSizes[rng.below(int(kSizes.size()))];
    object.motion = kMotions[rng.below(int(kMotions.size()))];
    scene.objects.push_back(object);
  }
  return scene;
}

}  // namespace reel::models::shapes
