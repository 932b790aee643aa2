// Standard sampling: every frame at the same noise level, one solver state for the whole latent,
// from seeded noise down the shifted flow-matching schedule.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include <torch/types.h>

#include "base/expected.hpp"
#include "models/scheduler.hpp"
#include "pipeline/denoiser.hpp"

namespace reel::pipeline {

struct SampleOptions {
  int steps = 30;       // solver steps (model calls); default 30
  double shift = 5.0;   // sigma shift, shift * s / (1 + (shift - 1) * s); default 5
  models::SolverKind solver = models::SolverKind::unipc;  // default unipc
  double guidance = 5.0;  // classifier-free guidance scale; 1 (or no negative) turns it off; default 5
  uint64_t seed = 0;      // seed of the initial noise; default 0
};

struct SampleStats {
  int64_t model_calls = 0;  // Denoiser::denoise calls; a guided step is ONE call of batch 2B
  int64_t model_rows = 0;   // latent rows through the model: B per call, 2B when guided
  double seconds = 0.0;     // wall time of the whole sampling, noise included
};

struct SampleResult {
  torch::Tensor latent;  // [B, C, F, H, W] float32, at sigma 0
  SampleStats stats;
};

// Called after each step with the number of steps done so far (1..total) and the total.
using StepCallback = std::function<void(int step, int total)>;

// Called after each step with the schedule step reached and the latent there ([B, C, F, H, W],
// read-only: clone to keep it). The cache captures its entries this way.
using LatentCallback = std::function<void(int step, const torch::Tensor& x)>;

// The initial noise for a latent shape: N(0, 1) float32 from a CPU generator seeded with `seed`,
// so the same seed gives the same noise on every machine.
[[nodiscard]] torch::Tensor make_noise(const std::vector<int64_t>& shape, uint64_t seed);

// Samples a latent of latent_shape [B, C, F, H, W] from make_noise(latent_shape, seed).
// Errors: invalid_argument for a bad shape, steps, shift or guidance, or conditioning that does
// not match the batch; the denoiser's errors as it returns them; internal when LibTorch throws.
[[nodiscard]] Expected<SampleResult> sample(Denoiser& denoiser, const Conditioning& cond,
                                            std::vector<int64_t> latent_shape,
                                            const SampleOptions& options,
                                            StepCallback on_step = {},
                                            LatentCallback on_latent = {});

// Continues sampling a latent x [B, C, F, H, W] that is at schedule step start_step (0 = pure
// noise) down to sigma 0, with a fresh solver state (a cache hit resumes this way). on_step
// gets the schedule step reached (start_step + 1 .. steps) and options.steps.
[[nodiscard]] Expected<SampleResult> sample_from(Denoiser& denoiser, const Conditioning& cond,
                                                 torch::Tensor x, int start_step,
                                                 const SampleOptions& options,
                                                 StepCallback on_step = {},
                                                 LatentCallback on_latent = {});

}  // namespace reel::pipeline
