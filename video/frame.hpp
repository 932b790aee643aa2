// A decoded video frame in memory, and what can be done to one without a file.
#pragma once

#include <cstdint>
#include <vector>

#include "base/expected.hpp"

namespace reel::video {

// One frame: `height` rows of `width` pixels, 3 bytes each (R, G, B), rows packed without
// padding. rgb.size() == width * height * 3.
struct Frame {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> rgb;  // [H, W, 3], RGB24
};

// invalid_argument when the size is not positive or rgb does not hold width*height*3 bytes.
[[nodiscard]] Status check_frame(const Frame& frame);

enum class Interp {
  nearest,  // each pixel becomes a factor x factor block: exact, blocky
  bicubic,  // OpenCV's bicubic (a = -0.75), values clamped to 0..255: smooth, may overshoot edges
};

// Enlarges `frame` by an integer `factor` in both directions (W*factor x H*factor).
// factor <= 1 returns a copy. A frame that fails check_frame, or a result wider or taller than
// 65536, gives an empty Frame, which every writer here then rejects with invalid_argument.
[[nodiscard]] Frame upscale(const Frame& frame, int factor, Interp interp);

}  // namespace reel::video
