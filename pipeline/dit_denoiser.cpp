#include "pipeline/dit_denoiser.hpp"

#include <torch/torch.h>

namespace reel::pipeline {

Expected<torch::Tensor> DiTDenoiser::denoise(const torch::Tensor& x, const torch::Tensor& sigma,
                                             const torch::Tensor& text) {
  try {
    torch::NoGradGuard no_grad;
    return dit_->forward(x, sigma.to(torch::kFloat64) * 1000.0, text);
  } catch (const c10::Error& e) {
    return make_error(Errc::internal, std::string("model call failed: ") + e.what_without_backtrace());
  }
}

}  // namespace reel::pipeline
