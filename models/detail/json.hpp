// A small JSON reader for safetensors headers and model metadata. models/ depends on LibTorch
// only (it must build against any LibTorch, e.g. a CUDA PyTorch's), so it cannot use a JSON
// library from the system.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/expected.hpp"

namespace reel::models::detail {

struct Json {
  enum class Kind { null, boolean, number, string, array, object };
  Kind kind = Kind::null;
  bool boolean = false;
  double number = 0;
  bool is_integer = false;  // the literal had no fraction or exponent
  int64_t integer = 0;      // exact value when is_integer
  std::string string;
  std::vector<Json> array;
  std::map<std::string, Json> object;

  [[nodiscard]] const Json* find(const std::string& key) const;
};

// Parses one JSON value that spans the whole text (trailing white space allowed). The error
// message says what was expected and at which byte offset.
[[nodiscard]] Expected<Json> parse_json(std::string_view text);

// Writes a string as a JSON string literal (quotes and escapes).
[[nodiscard]] std::string json_quote(std::string_view s);

}  // namespace reel::models::detail
