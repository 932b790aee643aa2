// The identity of a model's weights file, as job directories and cache keys record it.
#pragma once

#include <string>

#include "base/expected.hpp"

namespace reel::models {

// FNV-1a 64 of the file's bytes as 16 hex digits; "builtin" for a built-in model (a source
// "builtin:<name>", see open_model). Errors: not_found when the file cannot be read.
[[nodiscard]] Expected<std::string> weights_file_checksum(const std::string& source);

}  // namespace reel::models
