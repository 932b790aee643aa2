#include "pipeline/guidance.hpp"

#include <sstream>
#include <string>

namespace reel::pipeline {

namespace {

std::string shape_str(const torch::Tensor& t) {
  std::ostringstream os;
  os << t.sizes();
  return os.str();
}

Status check_inputs(const torch::Tensor& x, const torch::Tensor& sigma, const Conditioning& cond,
                    bool guided) {
  if (!x.defined() || x.dim() != 5) {
    return make_error(Errc::invalid_argument,
                      "latent must be [B, C, F, H, W], got " + (x.defined() ? shape_str(x) : "none"));
  }
  const int64_t batch = x.size(0);
  if (!sigma.defined() || sigma.dim() != 2 || sigma.size(0) != batch || sigma.size(1) != x.size(2)) {
    return make_error(Errc::invalid_argument, "sigma must be [B, F] = [" + std::to_string(batch) +
                                                  ", " + std::to_string(x.size(2)) + "], got " +
                                                  (sigma.defined() ? shape_str(sigma) : "none"));
  }
  if (!cond.text.defined() || cond.text.dim() != 3 || cond.text.size(0) != batch) {
    return make_error(Errc::invalid_argument,
                      "text embedding must be [B, L, D] with B = " + std::to_string(batch) +
                          ", got " + (cond.text.defined() ? shape_str(cond.text) : "none"));
  }
  if (guided && cond.negative.sizes() != cond.text.sizes()) {
    return make_error(Errc::invalid_argument, "negative embedding " + shape_str(cond.negative) +
                                                  " must be shaped like the text embedding " +
                                                  shape_str(cond.text));
  }
  return {};
}

Status check_output(const torch::Tensor& out, const torch::Tensor& in) {
  if (!out.defined() || out.sizes() != in.sizes()) {
    return make_error(Errc::invalid_argument,
                      "denoiser returned " + (out.defined() ? shape_str(out) : "nothing") +
                          " for an input of " + shape_str(in));
  }
  return {};
}

}  // namespace

bool uses_guidance(const Conditioning& cond, double guidance) {
  return guidance != 1.0 && cond.negative.defined();
}

Expected<torch::Tensor> guided_denoise(Denoiser& denoiser, const torch::Tensor& x,
                                       const torch::Tensor& sigma, const Conditioning& cond,
                                       double guidance) {
  const bool guided = uses_guidance(cond, guidance);
  REEL_RETURN_IF_ERROR(check_inputs(x, sigma, cond, guided));
  try {
    if (!guided) {
      auto out = denoiser.denoise(x, sigma, cond.text);
      if (!out.ok()) return out.error();
      REEL_RETURN_IF_ERROR(check_output(*out, x));
      return out->to(x.scalar_type());
    }
    torch::Tensor x2 = torch::cat({x, x}, 0);                        // [2B, C, F, H, W]
    torch::Tensor sigma2 = torch::cat({sigma, sigma}, 0);            // [2B, F]
    torch::Tensor text2 = torch::cat({cond.text, cond.negative}, 0);  // [2B, L, D]
    auto out = denoiser.denoise(x2, sigma2, text2);
    if (!out.ok()) return out.error();
    REEL_RETURN_IF_ERROR(check_output(*out, x2));
    // Combine in the latent's dtype (float32), not in a reduced-precision model dtype.
    auto halves = out->to(x.scalar_type()).chunk(2, 0);
    const torch::Tensor& conditional = halves[0];    // [B, C, F, H, W]
    const torch::Tensor& unconditional = halves[1];  // [B, C, F, H, W]
    return unconditional + (conditional - unconditional) * guidance;
  } catch (const std::exception& e) {
    return make_error(Errc::internal, std::string("guided denoise failed: ") + e.what());
  }
}

}  // namespace reel::pipeline
