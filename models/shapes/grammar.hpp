// The prompt grammar of the shapes world and its inverse:
//
//   prompt  := object ["and" object] "on a" BACKGROUND "background"
//   object  := "a" SIZE COLOUR SHAPE motion
//   motion  := "moving" ("left" | "right" | "up" | "down") | "standing still" | "bouncing"
//
// e.g. "a large red circle moving right and a small blue square standing still on a striped
// navy background". Every word is in vocabulary_words().
#pragma once

#include <string>

#include "base/expected.hpp"
#include "models/shapes/world.hpp"

namespace reel::models::shapes {

[[nodiscard]] std::string prompt(const SceneSpec& scene);

// The scene a prompt describes. Case and runs of whitespace are ignored, as is one trailing
// full stop. Errors: invalid_argument naming the first unknown word (and the vocabulary) or the
// first word that breaks the grammar (and what was expected there); also for 0 or >2 objects.
[[nodiscard]] Expected<SceneSpec> parse_prompt(const std::string& text);

}  // namespace reel::models::shapes
