// The model callback every denoising algorithm calls. An in-process DiT implements it; so does a
// distributed one made of actors. Algorithms never see weights, devices or the network.
#pragma once

#include <torch/types.h>

#include "base/expected.hpp"
#include "models/scheduler.hpp"

namespace reel::pipeline {

// What the video is conditioned on, already encoded.
struct Conditioning {
  torch::Tensor text;      // [B, L, D] prompt embedding
  torch::Tensor negative;  // [B, L, D] negative-prompt embedding, or undefined (no CFG)
};

class Denoiser {
 public:
  virtual ~Denoiser() = default;

  // x: [B, C, F, H, W] noisy latent; sigma: [B, F] float32 noise level of each frame, in [0, 1]
  // (the schedule's sigmas, exact in float32); text: [B, L, D]. Returns the model output, of
  // type prediction(), shaped like x. B here may be twice the caller's batch (classifier-free
  // guidance runs conditional and unconditional rows in one call).
  [[nodiscard]] virtual Expected<torch::Tensor> denoise(const torch::Tensor& x,
                                                        const torch::Tensor& sigma,
                                                        const torch::Tensor& text) = 0;

  [[nodiscard]] virtual models::Prediction prediction() const = 0;
};

}  // namespace reel::pipeline
