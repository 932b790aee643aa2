// prompt() and parse_prompt(): see grammar.hpp for the grammar.
#include "models/shapes/grammar.hpp"

#include <algorithm>
#include <cctype>
#include <optional>

namespace reel::models::shapes {

namespace {

std::string motion_phrase(Motion motion) {
  switch (motion) {
    case Motion::left:
    case Motion::right:
    case Motion::up:
    case Motion::down: return "moving " + std::string(name(motion));
    case Motion::still: return "standing still";
    case Motion::bouncing: return "bouncing";
  }
  return "?";
}

std::vector<std::string> split_words(const std::string& text) {
  std::vector<std::string> words;
  std::string word;
  for (char ch : text) {
    if (std::isspace(static_cast<unsigned char>(ch))) {
      if (!word.empty()) words.push_back(std::move(word));
      word.clear();
    } else {
      word += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    }
  }
  if (!word.empty()) words.push_back(std::move(word));
  if (!words.empty() && words.back().size() > 1 && words.back().back() == '.') {
    words.back().pop_back();
  }
  return words;
}

template <class Array>
std::string alternatives(const Array& values) {
  std::string out;
  for (auto v : values) {
    if (!out.empty()) out += ", ";
    out += name(v);
  }
  return out;
}

template <class Array>
std::optional<typename Array::value_type> lookup(const Array& values, const std::string& word) {
  for (auto v : values) {
    if (name(v) == word) return v;
  }
  return std::nullopt;
}

// A cursor over the prompt's words that builds error messages naming the prompt.
class Reader {
 public:
  Reader(const std::string& text, std::vector<std::string> words)
      : text_(text), words_(std::move(words)) {}

  bool done() const { return pos_ >= words_.size(); }
  const std::string& peek() const { return words_[pos_]; }
  std::string take() { return done() ? std::string() : words_[pos_++]; }

  Error fail(const std::string& expected) const {
    std::string found = done() ? "the end of the prompt"
                               : "\"" + words_[pos_] + "\" (word " + std::to_string(pos_ + 1) + ")";
    return make_error(Errc::invalid_argument,
                      "prompt \"" + text_ + "\": expected " + expected + ", found " + found);
  }

  Expected<bool> expect(const char* word) {
    if (done() || peek() != word) return fail(std::string("\"") + word + "\"");
    ++pos_;
    return true;
  }

  template <class Array>
  Expected<typename Array::value_type> expect_one_of(const Array& values, const char* category) {
    if (!done()) {
      if (auto v = lookup(values, peek())) {
        ++pos_;
        return *v;
      }
    }
    return fail(std::string("a ") + category + " (" + alternatives(values) + ")");
  }

 private:
  const std::string& text_;
  std::vector<std::string> words_;
  size_t pos_ = 0;
};

Expected<Motion> read_motion(Reader& in) {
  if (!in.done() && in.peek() == "bouncing") {
    in.take();
    return Motion::bouncing;
  }
  if (!in.done() && in.peek() == "standing") {
    in.take();
    REEL_RETURN_IF_ERROR(in.expect("still"));
    return Motion::still;
  }
  if (!in.done() && in.peek() == "moving") {
    in.take();
    constexpr std::array directions{Motion::left, Motion::right, Motion::up, Motion::down};
    return in.expect_one_of(directions, "direction");
  }
  return in.fail("a motion (moving left/right/up/down, standing still, bouncing)");
}

Expected<ObjectSpec> read_object(Reader& in) {
  ObjectSpec object;
  REEL_RETURN_IF_ERROR(in.expect("a"));
  auto size = in.expect_one_of(kSizes, "size");
  if (!size) return size.error();
  auto colour = in.expect_one_of(kColours, "colour");
  if (!colour) return colour.error();
  auto shape = in.expect_one_of(kShapes, "shape");
  if (!shape) return shape.error();
  auto motion = read_motion(in);
  if (!motion) return motion.error();
  return ObjectSpec{*shape, *colour, *size, *motion};
}

}  // namespace

std::string prompt(const SceneSpec& scene) {
  std::string out;
  for (const ObjectSpec& object : scene.objects) {
    if (!out.empty()) out += " and ";
    out += "a " + std::string(name(object.size)) + " " + std::string(name(object.colour)) + " " +
           std::string(name(object.shape)) + " " + motion_phrase(object.motion);
  }
  out += " on a " + std::string(name(scene.background)) + " background";
  return out;
}

Expected<SceneSpec> parse_prompt(const std::string& text) {
  std::vector<std::string> words = split_words(text);
  if (words.empty()) return make_error(Errc::invalid_argument, "prompt is empty");
  // Unknown words first: "a purple hexagon" should name "hexagon", not a grammar position.
  const auto& vocab = vocabulary_words();
  for (size_t i = 0; i < words.size(); ++i) {
    if (std::find(vocab.begin(), vocab.end(), words[i]) == vocab.end()) {
      return make_error(Errc::invalid_argument,
                        "prompt \"" + text + "\": unknown word \"" + words[i] + "\" (word " +
                            std::to_string(i + 1) + "); shapes are " + alternatives(kShapes) +
                            "; colours are " + alternatives(kColours) + "; backgrounds are " +
                            alternatives(kBackgrounds));
    }
  }
  Reader in(text, std::move(words));
  SceneSpec scene;
  while (true) {
    auto object = read_object(in);
    if (!object) return object.error();
    scene.objects.push_back(*object);
    if (in.done() || in.peek() != "and") break;
    if (scene.objects.size() == 2) return in.fail("at most two objects, then \"on\"");
    in.take();
  }
  REEL_RETURN_IF_ERROR(in.expect("on"));
  REEL_RETURN_IF_ERROR(in.expect("a"));
  // A background name is one or two words, always followed by "background".
  std::string phrase;
  while (!in.done() && in.peek() != "background") {
    phrase += phrase.empty() ? "" : " ";
    phrase += in.take();
  }
  auto background = lookup(kBackgrounds, phrase);
  if (!background) {
    return make_error(Errc::invalid_argument, "prompt \"" + text + "\": \"" + phrase +
                                                  "\" is not a background (" +
                                                  alternatives(kBackgrounds) + ")");
  }
  scene.background = *background;
  REEL_RETURN_IF_ERROR(in.expect("background"));
  if (!in.done()) return in.fail("the end of the prompt");
  return scene;
}

}  // namespace reel::models::shapes
