#include "pipeline/sampler.hpp"

#include <ATen/CPUGeneratorImpl.h>

#include <chrono>
#include <cmath>
#include <string>
#include <utility>

#include "pipeline/guidance.hpp"

namespace reel::pipeline {

namespace {

Status check_options(const SampleOptions& options) {
  REEL_RETURN_IF_ERROR(models::validate_schedule_args(options.steps, options.shift));
  if (!std::isfinite(options.guidance)) {
    return make_error(Errc::invalid_argument, "guidance must be a finite number");
  }
  return {};
}

Status check_shape(const std::vector<int64_t>& shape) {
  bool ok = shape.size() == 5;
  for (int64_t d : shape) ok = ok && d > 0;
  if (ok) return {};
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return make_error(Errc::invalid_argument,
                    "latent shape must be [B, C, F, H, W] with positive sizes, got " + s + "]");
}

}  // namespace

torch::Tensor make_noise(const std::vector<int64_t>& shape, uint64_t seed) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  return torch::randn(shape, gen, torch::TensorOptions().dtype(torch::kFloat32));
}

Expected<SampleResult> sample(Denoiser& denoiser, const Conditioning& cond,
                              std::vector<int64_t> latent_shape, const SampleOptions& options,
                              StepCallback on_step, LatentCallback on_latent) {
  REEL_RETURN_IF_ERROR(check_shape(latent_shape));
  REEL_RETURN_IF_ERROR(check_options(options));
  const auto start = std::chrono::steady_clock::now();
  torch::Tensor noise;
  try {
    noise = make_noise(latent_shape, options.seed);  // [B, C, F, H, W]
  } catch (const std::exception& e) {
    return make_error(Errc::internal, std::string("cannot make initial noise: ") + e.what());
  }
  auto result = sample_from(denoiser, cond, std::move(noise), 0, options, std::move(on_step), std::move(on_latent));
  if (result.ok()) {
    result->stats.seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  return result;
}

Expected<SampleResult> sample_from(Denoiser& denoiser, const Conditioning& cond, torch::Tensor x,
                                   int start_step, const SampleOptions& options,
                                   StepCallback on_step, LatentCallback on_latent) {
  REEL_RETURN_IF_ERROR(check_options(options));
  if (!x.defined()) return make_error(Errc::invalid_argument, "no latent to sample from");
  REEL_RETURN_IF_ERROR(check_shape(x.sizes().vec()));
  if (start_step < 0 || start_step > options.steps) {
    return make_error(Errc::invalid_argument, "start step " + std::to_string(start_step) +
                                                  " outside [0, " + std::to_string(options.steps) +
                                                  "]");
  }
  const auto start = std::chrono::steady_clock::now();
  const bool guided = uses_guidance(cond, options.guidance);
  const int64_t batch = x.size(0);
  const int64_t frames = x.size(2);
  SampleResult result;
  try {
    models::FlowSolver solver(options.solver,
                              models::make_schedule(options.solver, options.steps, options.shift));
    models::SolverState state{.step = start_step};
    x = x.to(torch::kFloat32);
    while (!solver.done(state)) {
      const double sigma = solver.sigma(state);
      torch::Tensor sigmas = torch::full({batch, frames}, sigma, torch::kFloat32);  // [B, F]
      auto out = guided_denoise(denoiser, x, sigmas, cond, options.guidance);
      if (!out.ok()) return out.error();
      ++result.stats.model_calls;
      result.stats.model_rows += guided ? 2 * batch : batch;
      x = solver.step_output(state, *out, denoiser.prediction(), x);
      if (on_latent) on_latent(state.step, x);
      if (on_step) on_step(state.step, options.steps);
    }
  } catch (const std::exception& e) {
    return make_error(Errc::internal, std::string("sampling failed: ") + e.what());
  }
  result.latent = std::move(x);
  result.stats.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace reel::pipeline
