// Decoded pixels (LibTorch tensors) to the video module's frames.
#pragma once

#include <ATen/core/Tensor.h>

#include <vector>

#include "video/frame.hpp"

namespace reel::cli {

// pixels: [F, H, W, 3] uint8 -> F frames, each upscaled by `upscale` (1 = as is).
[[nodiscard]] std::vector<video::Frame> to_frames(const at::Tensor& pixels, int upscale = 1,
                                                  video::Interp interp = video::Interp::nearest);

}  // namespace reel::cli
