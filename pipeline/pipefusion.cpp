// The PipeFusion schedule simulated in one thread: for step: for patch: for stage.
#include "pipeline/pipefusion.hpp"

#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <sstream>
#include <string>
#include <utility>

#include "pipeline/guidance.hpp"
#include "pipeline/pipefusion_stage.hpp"

namespace reel::pipeline {

namespace {

std::string sizes_str(const torch::Tensor& t) {
  std::ostringstream os;
  os << t.sizes();
  return os.str();
}

Status check_conditioning(const Conditioning& cond, const models::DiTConfig& cfg, int64_t batch, bool guided) {
  if (!cond.text.defined() || cond.text.dim() != 3 || cond.text.size(0) != batch ||
      cond.text.size(2) != cfg.text_dim || cond.text.size(1) > cfg.text_len) {
    return make_error(Errc::invalid_argument,
                      "text embedding must be [B, L, D] with B = " + std::to_string(batch) + ", L <= " +
                          std::to_string(cfg.text_len) + ", D = " + std::to_string(cfg.text_dim) + ", got " +
                          (cond.text.defined() ? sizes_str(cond.text) : "none"));
  }
  if (guided && cond.negative.sizes() != cond.text.sizes()) {
    return make_error(Errc::invalid_argument, "negative embedding " + sizes_str(cond.negative) +
                                                  " must be shaped like the text embedding " + sizes_str(cond.text));
  }
  return {};
}

int64_t bytes_of(const torch::Tensor& t) { return static_cast<int64_t>(t.nbytes()); }

}  // namespace

double PipeFusionStats::boundary_bytes_per_step(int boundary) const {
  if (boundary_bytes.empty()) return 0.0;
  double total = 0.0;
  for (const auto& step : boundary_bytes) total += static_cast<double>(step.at(static_cast<size_t>(boundary)));
  return total / static_cast<double>(boundary_bytes.size());
}

Expected<SampleResult> sample_pipefusion(models::VideoDiT& dit, models::Prediction prediction,
                                         const Conditioning& cond, std::vector<int64_t> latent_shape,
                                         const SampleOptions& options, const PipeFusionPlan& plan,
                                         PipeFusionStats* stats) {
  if (!dit) return make_error(Errc::invalid_argument, "no model");
  const auto& cfg = dit->config();
  auto layout_or = make_layout(plan, cfg, latent_shape);
  if (!layout_or) return layout_or.error();
  const PipeFusionLayout& layout = *layout_or;
  REEL_RETURN_IF_ERROR(models::validate_schedule_args(options.steps, options.shift));
  if (!std::isfinite(options.guidance)) return make_error(Errc::invalid_argument, "guidance must be a finite number");
  const bool guided = uses_guidance(cond, options.guidance);
  const int64_t batch = latent_shape[0];
  REEL_RETURN_IF_ERROR(check_conditioning(cond, cfg, batch, guided));

  const auto start = std::chrono::steady_clock::now();
  const int n_stages = static_cast<int>(layout.stages.size());
  const int n_patches = static_cast<int>(layout.patches.size());
  const int warmup = std::min(layout.warmup_steps, options.steps);
  const int64_t rows = guided ? 2 * batch : batch;
  const int cut_dim = layout.patches.front().latent_dim;

  PipeFusionStats st;
  st.stages = n_stages;
  st.patches = n_patches;
  st.steps = options.steps;
  st.warmup_steps = warmup;
  st.element_bytes = static_cast<int64_t>(sizeof(float));
  for (const auto& p : layout.patches) st.analytic_patch_bytes.push_back(p.tokens * cfg.dim * rows * st.element_bytes);
  st.analytic_step_bytes = layout.grid.tokens() * cfg.dim * rows * st.element_bytes;

  SampleResult result;
  try {
    torch::NoGradGuard no_grad;
    // Conditional rows first, as guided_denoise.
    const torch::Tensor text = guided ? torch::cat({cond.text, cond.negative}, 0) : cond.text;  // [rows, L, D]
    auto with_rows = [guided](const torch::Tensor& x) { return guided ? torch::cat({x, x}, 0) : x; };
    st.request_bytes = bytes_of(text);

    std::vector<PipeFusionStage> stages;
    stages.reserve(static_cast<size_t>(n_stages));
    for (int s = 0; s < n_stages; ++s) {
      stages.emplace_back(dit, layout, s);
      stages.back().begin_request(text);
    }
    PipeFusionStage& first = stages.front();
    PipeFusionStage& last = stages.back();
    PatchScheduler scheduler(layout, options, prediction, guided);

    const torch::Tensor noise = make_noise(latent_shape, options.seed);  // [B, C, F, H, W]
    first.set_latent(with_rows(noise));
    std::vector<torch::Tensor> x_patches;  // the latent, patch by patch, each at its current step
    for (const auto& p : layout.patches) x_patches.push_back(p.of(noise));

    for (int step = 0; step < options.steps; ++step) {
      const double sigma = scheduler.sigma(0);
      for (auto& stage : stages) stage.begin_step(sigma);
      std::vector<int64_t> sent(static_cast<size_t>(n_stages - 1), 0);
      int64_t ring = 0;
      if (step < warmup) {
        // Synchronous: the whole sequence through every stage; the buffers fill completely.
        const torch::Tensor x = n_patches == 1 ? x_patches[0] : torch::cat(x_patches, cut_dim);
        torch::Tensor tokens = first.embed(kFullSequence, with_rows(x));  // [rows, S, D]
        for (int s = 0; s < n_stages; ++s) {
          tokens = stages[static_cast<size_t>(s)].run(kFullSequence, tokens);
          ++st.stage_runs;
          if (s + 1 < n_stages) sent[static_cast<size_t>(s)] += bytes_of(tokens);
        }
        const torch::Tensor next = scheduler.step_all(last.output(kFullSequence, tokens), x);
        ring += bytes_of(next);
        first.set_latent(with_rows(next));
        for (int i = 0; i < n_patches; ++i) x_patches[static_cast<size_t>(i)] = layout.patches[static_cast<size_t>(i)].of(next);
      } else {
        // Steady state: patch by patch; each stage attends over its partly stale buffers.
        for (int i = 0; i < n_patches; ++i) {
          auto& x = x_patches[static_cast<size_t>(i)];
          torch::Tensor tokens = first.embed(i, with_rows(x));  // [rows, S_p, D]
          for (int s = 0; s < n_stages; ++s) {
            tokens = stages[static_cast<size_t>(s)].run(i, tokens);
            ++st.stage_runs;
            if (s + 1 < n_stages) sent[static_cast<size_t>(s)] += bytes_of(tokens);
          }
          x = scheduler.step(i, last.output(i, tokens), x);
          ring += bytes_of(x);
          ++st.patch_passes;
        }
      }
      st.boundary_bytes.push_back(std::move(sent));
      st.ring_bytes.push_back(ring);
      ++st.model_calls;
      st.model_rows += rows;
    }
    result.latent = n_patches == 1 ? x_patches[0].contiguous() : torch::cat(x_patches, cut_dim);
    for (const auto& stage : stages) st.stale_kv_bytes += stage.stale_kv().bytes();
  } catch (const std::exception& e) {
    return make_error(Errc::internal, std::string("PipeFusion sampling failed: ") + e.what());
  }
  st.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  result.stats.model_calls = st.model_calls;
  result.stats.model_rows = st.model_rows;
  result.stats.seconds = st.seconds;
  if (stats != nullptr) *stats = std::move(st);
  return result;
}

}  // namespace reel::pipeline
