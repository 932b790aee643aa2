// Splitting a prompt into the objects it shows and the background they are shown on (FlexCache
// caches the two apart, so that a new prompt can reuse a background from one request and an
// object from another). Rule-based, no model: a miss only means the prompt is cached whole.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace reel::cachestore {

struct PromptParts {
  // Noun phrases of the things shown, in prompt order, e.g. "a blue car"; in the shapes world
  // each object keeps its motion ("a large red circle moving right").
  std::vector<std::string> objects;
  // The scene phrase without its preposition, e.g. "a stone bridge on a foggy morning" or
  // "a striped navy background".
  std::string background;

  // True when both parts were found; a prompt that is not split has neither.
  [[nodiscard]] bool split() const { return !objects.empty() && !background.empty(); }
  bool operator==(const PromptParts&) const = default;
};

// Parts of `prompt`, as lower-case words joined by single spaces (punctuation dropped,
// apostrophes and hyphens inside words kept).
//
// Shapes-world prompts (models/shapes/grammar.hpp: "a SIZE COLOUR SHAPE MOTION [and ...] on a
// BACKGROUND background") are parsed exactly. Other prompts are read by rules, without a model:
//  - the subject is the noun phrase the prompt opens with (determiner or number, adjectives,
//    noun; "and" joins up to three), past openers such as "a timelapse of";
//  - the background is the noun phrase after the first scene preposition of the subject's
//    clause (in, on, at, across, through, along, past, near, beside, in front of, ...), with the
//    place phrases that follow it ("a stone bridge on a foggy morning"); "from left to right"
//    and the like are dropped, and so are phrases that are no place ("in slow motion", "over
//    time", "its back", "each other");
//  - a relational preposition (beside, next to, in front of, on the left of, ...) followed by
//    another scene phrase makes its noun phrase a further object: "a brown horse grazing beside
//    a wooden barn in a green meadow" gives objects {"a brown horse", "a wooden barn"} and
//    background "a green meadow";
//  - a phrase between the subject and its verb describes the subject ("a man in a grey coat
//    reading ..."); it is the background only if the clause names no other place and it is not
//    clothing ("a paper boat on a pond drifts slowly").
// Without a subject or a scene phrase the prompt is not split. On T2V-CompBench's 700 prompts
// about 64% are split.
[[nodiscard]] PromptParts split_prompt(std::string_view prompt);

}  // namespace reel::cachestore
