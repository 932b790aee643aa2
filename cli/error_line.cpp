#include "cli/error_line.hpp"

namespace reel::cli {

std::string one_error_line(std::string message) {
  // LibTorch's errors carry a C++ backtrace after the message: users get the message.
  for (const char* backtrace : {"\nException raised from", "\nframe #0"})
    if (auto at = message.find(backtrace); at != std::string::npos) message.resize(at);
  constexpr size_t kMost = 1000;  // an error that quotes a huge input quotes its start
  if (message.size() > kMost) {
    const size_t more = message.size() - kMost;
    message.resize(kMost);
    message += "... (" + std::to_string(more) + " more bytes)";
  }
  return message;
}

}  // namespace reel::cli
