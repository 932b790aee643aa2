// Classifier-free guidance around one Denoiser call. Every algorithm (standard, FIFO, clips)
// calls the model through this, so guidance behaves the same in all of them.
#pragma once

#include <torch/types.h>

#include "base/expected.hpp"
#include "pipeline/denoiser.hpp"

namespace reel::pipeline {

// True when guided_denoise will run guidance: guidance != 1 and a negative embedding is given.
[[nodiscard]] bool uses_guidance(const Conditioning& cond, double guidance);

// The guided model output for x [B, C, F, H, W] at sigma [B, F], in the denoiser's prediction
// type and x's dtype. With guidance, conditional and unconditional rows go through ONE batched call
// ([2B, ...], conditional first) and are combined as uncond + g * (cond - uncond). The
// combination is done on the raw output: x0 = x - sigma * v is affine in v with weight 1 on x, so
// guiding velocities and guiding x0 predictions give the same x0.
//
// Errors: invalid_argument when shapes disagree (text batch != B, negative shaped unlike text,
// sigma not [B, F], model output not shaped like its input); the denoiser's own errors as they
// are; internal when LibTorch throws.
[[nodiscard]] Expected<torch::Tensor> guided_denoise(Denoiser& denoiser, const torch::Tensor& x,
                                                     const torch::Tensor& sigma,
                                                     const Conditioning& cond, double guidance);

}  // namespace reel::pipeline
