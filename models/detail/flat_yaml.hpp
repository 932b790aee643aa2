// A reader for the small YAML subset of reel's model configs: nested mappings of scalars.
//
// models/ must build against any LibTorch with nothing else (see REEL_MODELS_ONLY), so the
// trainer cannot use yaml-cpp. Supported: "key: value" lines, nesting by indentation (spaces),
// comments from '#', single- or double-quoted values, inline lists kept as text ("[1, 4, 4]"),
// and "null" / "~" / empty values (returned as empty strings). Block lists ("- item"), anchors,
// multi-line strings and flow mappings are rejected with the line number.
#pragma once

#include <map>
#include <string>

#include "base/expected.hpp"

namespace reel::models::detail {

// Keys are the dotted path ("train.lr" for "lr" under "train:"); only leaves are returned.
// invalid_argument naming `source` (a file name, for messages) and the line for anything outside
// the subset, a duplicate key, or inconsistent indentation.
[[nodiscard]] Expected<std::map<std::string, std::string>> parse_flat_yaml(const std::string& text,
                                                                           const std::string& source);

// Reads and parses a file: not_found when it cannot be opened.
[[nodiscard]] Expected<std::map<std::string, std::string>> read_flat_yaml(const std::string& path);

}  // namespace reel::models::detail
