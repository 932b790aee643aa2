// The in-process Denoiser: a VideoDiT called directly, on the caller's thread.
#pragma once

#include "models/dit.hpp"
#include "pipeline/denoiser.hpp"

namespace reel::pipeline {

class DiTDenoiser : public Denoiser {
 public:
  DiTDenoiser(models::VideoDiT dit, models::Prediction prediction) : dit_(std::move(dit)), prediction_(prediction) {}

  // Calls the DiT with timesteps t = 1000 * sigma per frame. LibTorch exceptions (shape
  // mismatches, out of memory) become Errc::internal errors here, at the model boundary.
  [[nodiscard]] Expected<torch::Tensor> denoise(const torch::Tensor& x, const torch::Tensor& sigma,
                                                const torch::Tensor& text) override;
  [[nodiscard]] models::Prediction prediction() const override { return prediction_; }

 private:
  models::VideoDiT dit_;
  models::Prediction prediction_;
};

}  // namespace reel::pipeline
