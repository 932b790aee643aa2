// Frames and scratch folders for the video tests.
#pragma once

#include <cstdint>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "video/frame.hpp"

namespace reel::video::testing {

// A fresh folder under the system temp dir, removed with everything in it at scope exit.
class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() /
            ("reel-video-test-" + std::to_string(rd()) + "-" + std::to_string(rd()));
    std::filesystem::create_directories(path_);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  [[nodiscard]] std::string file(const std::string& name) const { return (path_ / name).string(); }
  [[nodiscard]] const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

inline Frame solid(int width, int height, uint8_t r, uint8_t g, uint8_t b) {
  Frame f{width, height, {}};
  f.rgb.reserve(static_cast<size_t>(width) * height * 3);
  for (int i = 0; i < width * height; ++i) f.rgb.insert(f.rgb.end(), {r, g, b});
  return f;
}

inline Frame noise(int width, int height, uint32_t seed) {
  std::mt19937 rng(seed);
  Frame f{width, height, std::vector<uint8_t>(static_cast<size_t>(width) * height * 3)};
  for (auto& v : f.rgb) v = static_cast<uint8_t>(rng() & 0xff);
  return f;
}

// A smooth diagonal gradient that moves `shift` pixels right: easy to encode, not static.
inline Frame moving_gradient(int width, int height, int shift) {
  Frame f{width, height, std::vector<uint8_t>(static_cast<size_t>(width) * height * 3)};
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x) {
      uint8_t* p = f.rgb.data() + (static_cast<size_t>(y) * width + x) * 3;
      p[0] = static_cast<uint8_t>((x + shift) * 255 / (width + shift));
      p[1] = static_cast<uint8_t>(y * 255 / height);
      p[2] = static_cast<uint8_t>(128);
    }
  return f;
}

// The pixel at (x, y) as {r, g, b}.
inline std::vector<int> pixel(const Frame& f, int x, int y) {
  const uint8_t* p = f.rgb.data() + (static_cast<size_t>(y) * f.width + x) * 3;
  return {p[0], p[1], p[2]};
}

}  // namespace reel::video::testing
