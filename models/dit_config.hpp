// Configuration of the video DiT (Wan 2.1 block structure). Detectable from a weights file.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>

#include "base/expected.hpp"

namespace reel::models {

class SafeTensors;

struct DiTConfig {
  int64_t in_channels = 16;              // latent channels in; default 16 (Wan VAE)
  int64_t out_channels = 16;             // latent channels out; default 16
  std::array<int64_t, 3> patch = {1, 2, 2};  // (frames, rows, columns) per token; default 1x2x2
  int64_t dim = 1536;                    // model width; default 1536 (Wan 2.1 1.3B)
  int64_t ffn_dim = 8960;                // feed-forward width; default 8960
  int64_t freq_dim = 256;                // sinusoidal timestep embedding size; default 256
  int64_t text_dim = 4096;               // text encoder output width; default 4096 (umT5-XXL)
  int64_t text_len = 512;                // text rows after zero padding; default 512
  int64_t num_heads = 12;                // attention heads; default 12
  int64_t num_layers = 30;               // transformer blocks; default 30
  double eps = 1e-6;                     // norm epsilon; default 1e-6
  bool qk_norm = true;                   // RMSNorm on q and k across heads; default true
  bool cross_attn_norm = true;           // affine LayerNorm before cross-attention; default true
  double rope_theta = 10000.0;           // RoPE base; default 10000
  int64_t rope_max_positions = 1024;     // positions per axis the RoPE tables cover; default 1024
  // Optional convolutions for small pixel-space models (0 = off, as in Wan). The stem is a
  // per-frame 3x3 convolution whose GELU output is concatenated to the input before
  // patchifying; the refinement is a residual per-frame 3x3 convolution pair applied after
  // unpatchifying. Both are frame-local, so any split of the video by frames can apply them.
  int64_t stem_channels = 0;             // channels of the stem convolution; default 0 (off)
  int64_t refine_channels = 0;           // hidden channels of the output refinement; default 0 (off)
  // A fixed sinusoidal embedding of each token's absolute (frame, row, column) position, added
  // to the tokens before the first block (as DiT, Peebles & Xie; Wan has none and relies on
  // RoPE alone). Small models learn motion far sooner with it: a token then knows which frame
  // of the window and where in the frame it is. The axes split the width as RoPE's do.
  bool abs_pos = false;                  // default false (off)
  // The prompt and the frame's place in the window also condition the adaLN modulation: the
  // mean of the embedded text rows and a sinusoidal embedding of the frame index (0 at the
  // window's first frame) are projected and added to the timestep MLP's hidden layer, so each
  // frame's shift, scale and gate depend on (timestep, prompt, frame) together, as DiT's class
  // label and SD3's pooled text condition theirs. Wan conditions on text by cross-attention
  // alone; a small model trained from scratch then learns what a prompt says about colour but
  // not how it moves (the first shapes-m: a wrong motion word raised the loss by 0.2%). Weights
  // condition_embedder.text_pool and condition_embedder.frame_embedder; detected from them.
  bool text_time = false;                // default false (off)

  [[nodiscard]] int64_t head_dim() const { return dim / num_heads; }
  // A width d split over the (frame, row, column) axes, as Wan splits a head for RoPE:
  // d - 4*(d/6), 2*(d/6), 2*(d/6).
  [[nodiscard]] static std::array<int64_t, 3> axis_widths(int64_t d) { return {d - 4 * (d / 6), 2 * (d / 6), 2 * (d / 6)}; }
  // Head dimension split over the rotary axes.
  [[nodiscard]] std::array<int64_t, 3> rope_axes() const { return axis_widths(head_dim()); }
  [[nodiscard]] int64_t patch_volume() const { return patch[0] * patch[1] * patch[2]; }
  // Channels the patch embedding sees: the input, plus the stem's when there is one.
  [[nodiscard]] int64_t patch_in_channels() const { return in_channels + stem_channels; }

  // invalid_argument when dimensions do not fit together (dim % heads, odd head dim, ...).
  [[nodiscard]] Status validate() const;

  // Key/value form used in safetensors metadata and YAML model configs.
  [[nodiscard]] std::map<std::string, std::string> to_metadata() const;
};

// Reads the config from a weights file: shapes give the widths, channels, patch and number of
// blocks; metadata (Wan's "num_heads", "text_len", or a diffusers_config JSON) gives what shapes
// cannot. Without metadata the head count follows Wan's convention of 128-wide heads.
[[nodiscard]] Expected<DiTConfig> detect_dit_config(const SafeTensors& weights);

}  // namespace reel::models
