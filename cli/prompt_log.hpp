// Prompt logs and request traces: what `reel warm` and `reel bench cache` read.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/expected.hpp"

namespace reel::cli {

// One request of a log or trace. Options left out take the command's defaults.
struct LoggedRequest {
  std::string prompt;
  std::optional<uint64_t> seed;
  std::optional<int> steps;
  std::optional<double> guidance;
  int line = 0;  // 1-based line of the file it came from
};

enum class LogFormat { txt, jsonl, csv };

// "txt", "jsonl" or "csv"; "auto" picks by the file's extension (.jsonl/.json, .csv, else txt).
[[nodiscard]] Expected<LogFormat> parse_log_format(const std::string& name, const std::string& path);

// Reads a log:
//   txt    one request a line: a prompt, or a JSON object {"prompt": ..., "seed": ..., "steps": ...,
//          "guidance": ...} (a line starting with '{'); blank lines and lines starting with # are skipped
//   jsonl  one JSON object a line, as above
//   csv    a header naming a "prompt" column (and optionally seed, steps, guidance), then rows;
//          fields may be quoted ("a, b" and "" for a quote inside)
// Errors: not_found for an unreadable file; invalid_argument naming the line for malformed JSON or
// CSV, a missing or empty prompt, or an option of the wrong type.
[[nodiscard]] Expected<std::vector<LoggedRequest>> read_prompt_log(const std::string& path, LogFormat format);

}  // namespace reel::cli
