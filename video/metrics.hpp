// Quality metrics between videos, and of one video over time. Every function takes whole videos
// (vectors of frames); a and b must have the same number of frames, frame i of each the same
// size, else invalid_argument. Empty videos are invalid_argument too.
#pragma once

#include <vector>

#include "base/expected.hpp"
#include "video/frame.hpp"

namespace reel::video {

// Peak signal-to-noise ratio in dB over all frames, channels and pixels together:
// 10 * log10(255^2 / MSE). Identical videos (MSE = 0) give +infinity
// (std::numeric_limits<double>::infinity()), not an error.
[[nodiscard]] Expected<double> psnr(const std::vector<Frame>& a, const std::vector<Frame>& b);

// Mean structural similarity (Wang et al. 2004) on luma (BT.601 weights, 0..255): an 11x11
// Gaussian window with sigma 1.5, K1 = 0.01, K2 = 0.03, borders reflected so that every pixel
// counts (small frames included); averaged over pixels, then over frames. In [-1, 1]; 1 means
// identical.
[[nodiscard]] Expected<double> ssim(const std::vector<Frame>& a, const std::vector<Frame>& b);

// Mean SSIM (as ssim() above) between each frame and the next: 1 for a static video, lower the
// more frames change from one to the next (flicker, jumps). Needs at least two frames of one
// size, else invalid_argument.
[[nodiscard]] Expected<double> temporal_consistency(const std::vector<Frame>& video);

}  // namespace reel::video
