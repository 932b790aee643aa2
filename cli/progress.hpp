// A progress bar with ETA on stderr, drawn only when stderr is a terminal.
#pragma once

#include <chrono>
#include <string>

namespace reel::cli {

class Progress {
 public:
  // `unit` names what is counted ("steps", "frames").
  Progress(std::string label, std::string unit, bool enabled);
  ~Progress();

  void update(int done, int total);
  void finish();  // clears the bar's line

  [[nodiscard]] static bool stderr_is_terminal();

 private:
  std::string label_, unit_;
  bool enabled_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point start_;
};

// "1.2 s", "3 min 04 s".
[[nodiscard]] std::string format_seconds(double seconds);

}  // namespace reel::cli
