#include "cli/frames.hpp"

#include <torch/torch.h>

namespace reel::cli {

std::vector<video::Frame> to_frames(const at::Tensor& pixels, int upscale, video::Interp interp) {
  std::vector<video::Frame> frames;
  auto p = pixels.contiguous();
  for (int64_t f = 0; f < p.size(0); ++f) {
    video::Frame frame;
    frame.height = static_cast<int>(p.size(1));
    frame.width = static_cast<int>(p.size(2));
    const auto* src = p[f].data_ptr<uint8_t>();
    frame.rgb.assign(src, src + static_cast<size_t>(frame.width) * frame.height * 3);
    frames.push_back(upscale > 1 ? video::upscale(frame, upscale, interp) : std::move(frame));
  }
  return frames;
}

}  // namespace reel::cli
