// How an error reaches the user: one line on stderr.
#pragma once

#include <string>

namespace reel::cli {

// The message as one line for stderr: cut before a LibTorch backtrace ("Exception raised from",
// "frame #0") and after 1,000 bytes, with the count of bytes cut.
[[nodiscard]] std::string one_error_line(std::string message);

}  // namespace reel::cli
