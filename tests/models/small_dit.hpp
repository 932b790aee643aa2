// A small VideoDiT for tests that need a real network but not a trained one (models, pipeline
// and actors tests share it).
#pragma once

#include <torch/torch.h>

#include <cstdint>

#include "models/dit.hpp"

namespace reel::models::testing {

// 48 wide, 2 heads, 16-d text of 8 tokens, 1x2x2 patches of 3 channels, `layers` blocks. With
// `convolutions`, also a 3x3 stem and refinement of 8 channels: every part PipeFusion touches.
inline DiTConfig small_dit_config(int layers = 4, bool convolutions = true) {
  DiTConfig cfg;
  cfg.in_channels = 3;
  cfg.out_channels = 3;
  cfg.patch = {1, 2, 2};
  cfg.dim = 48;
  cfg.ffn_dim = 96;
  cfg.freq_dim = 32;
  cfg.text_dim = 16;
  cfg.text_len = 8;
  cfg.num_heads = 2;
  cfg.num_layers = layers;
  if (convolutions) {
    cfg.stem_channels = 8;
    cfg.refine_channels = 8;
  }
  return cfg;
}

// small_dit_config() with weights drawn from `seed`, in eval mode. The refinement starts as the
// identity; its output layer is made random so that neighbouring rows matter.
// With `abs_pos`, the same weights with the fixed position embedding switched on; with
// `text_time`, the prompt and frame index also condition the modulation (more weights).
inline VideoDiT small_dit(uint64_t seed = 7, bool abs_pos = false, bool text_time = false) {
  torch::manual_seed(static_cast<int64_t>(seed));
  auto cfg = small_dit_config();
  cfg.abs_pos = abs_pos;
  cfg.text_time = text_time;
  VideoDiT dit(cfg);
  torch::NoGradGuard no_grad;
  dit->refine_out->weight.normal_(0.0, 0.1);
  dit->refine_out->bias.normal_(0.0, 0.1);
  dit->eval();
  return dit;
}

}  // namespace reel::models::testing
