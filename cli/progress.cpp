#include "cli/progress.hpp"

#include <unistd.h>

#include <cstdio>

namespace reel::cli {

Progress::Progress(std::string label, std::string unit, bool enabled)
    : label_(std::move(label)), unit_(std::move(unit)), enabled_(enabled), start_(std::chrono::steady_clock::now()) {}

Progress::~Progress() { finish(); }

bool Progress::stderr_is_terminal() { return isatty(STDERR_FILENO) == 1; }

std::string format_seconds(double seconds) {
  char buf[64];
  if (seconds < 60) {
    std::snprintf(buf, sizeof buf, "%.1f s", seconds);
  } else {
    int s = static_cast<int>(seconds + 0.5);
    std::snprintf(buf, sizeof buf, "%d min %02d s", s / 60, s % 60);
  }
  return buf;
}

void Progress::update(int done, int total) {
  if (!enabled_ || total <= 0) return;
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  constexpr int kWidth = 30;
  const int filled = done * kWidth / total;
  std::string bar(static_cast<size_t>(filled), '#');
  bar.append(static_cast<size_t>(kWidth - filled), '.');
  std::string eta = done > 0 ? format_seconds(elapsed / done * (total - done)) : "?";
  std::fprintf(stderr, "\r%s [%s] %d/%d %s  %s elapsed  ETA %s   ", label_.c_str(), bar.c_str(), done, total,
               unit_.c_str(), format_seconds(elapsed).c_str(), eta.c_str());
  std::fflush(stderr);
  drawn_ = true;
}

void Progress::finish() {
  if (!drawn_) return;
  std::fprintf(stderr, "\r\033[K");
  std::fflush(stderr);
  drawn_ = false;
}

}  // namespace reel::cli
