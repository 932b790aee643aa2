#include "pipeline/pipefusion_stage.hpp"

#include <torch/torch.h>

#include <algorithm>
#include <utility>

namespace reel::pipeline {

namespace {

// Latent rows the 3x3 stem (one layer) and the refinement (two layers) need on each side.
constexpr int64_t kStemHalo = 1;
constexpr int64_t kRefineHalo = 2;

}  // namespace

PipeFusionStage::PipeFusionStage(models::VideoDiT dit, const PipeFusionLayout& layout, int stage)
    : dit_(std::move(dit)),
      layout_(layout),
      stage_(stage),
      blocks_(layout.stages.at(static_cast<size_t>(stage))),
      kv_(blocks_.first, blocks_.last, layout.grid.tokens()) {}

const PatchRange& PipeFusionStage::patch_at(int patch) const {
  TORCH_CHECK(patch >= 0 && patch < static_cast<int>(layout_.patches.size()), "patch ", patch, " outside [0, ",
              layout_.patches.size(), ")");
  return layout_.patches[static_cast<size_t>(patch)];
}

void PipeFusionStage::begin_request(const at::Tensor& text) {
  torch::NoGradGuard no_grad;
  const auto& cfg = dit_->config();
  rows_ = text.size(0);
  base_ = models::DiTState{};
  base_.grid = layout_.grid;
  base_.context = dit_->embed_text(text);  // [rows, Lt, D]
  dit_->cache_cross_kv(base_);
  auto rope = models::rope_tables(layout_.grid, cfg.rope_axes(), cfg.rope_theta);
  base_.rope_cos = rope.cos;
  base_.rope_sin = rope.sin;
  kv_.reset(layout_.grid.tokens());
  latent_view_ = at::Tensor();
  output_view_ = at::Tensor();
  const auto& shape = layout_.latent_shape;
  if (last() && layout_.split == PatchSplit::rows && cfg.refine_channels > 0)
    output_view_ = torch::zeros({rows_, cfg.out_channels, shape[2], shape[3], shape[4]});
  has_request_ = true;
  has_step_ = false;
}

void PipeFusionStage::begin_step(double sigma) {
  TORCH_CHECK(has_request_, "begin_step before begin_request");
  torch::NoGradGuard no_grad;
  const int64_t frames = layout_.latent_shape[2];
  // As DiTDenoiser: float32 sigmas per frame, widened, times 1000.
  const at::Tensor t = torch::full({rows_, frames}, sigma, torch::kFloat32).to(torch::kFloat64) * 1000.0;
  dit_->embed_time(base_, t, rows_, frames);
  has_step_ = true;
}

void PipeFusionStage::set_latent(const at::Tensor& latent) {
  TORCH_CHECK(first(), "only stage 0 holds the latent");
  if (layout_.split == PatchSplit::rows) latent_view_ = latent.clone();
}

at::Tensor PipeFusionStage::embed(int patch, const at::Tensor& latent_patch) {
  TORCH_CHECK(first(), "only stage 0 embeds patches");
  TORCH_CHECK(has_step_, "embed before begin_step");
  torch::NoGradGuard no_grad;
  if (patch == kFullSequence) {
    if (layout_.split == PatchSplit::rows) latent_view_ = latent_patch.clone();
    return dit_->patchify(latent_patch);
  }
  const auto& p = patch_at(patch);
  switch (layout_.split) {
    case PatchSplit::frames: return dit_->patchify(latent_patch);
    case PatchSplit::rows: {
      TORCH_CHECK(latent_view_.defined(), "stage 0 has no latent for the neighbouring rows (set_latent)");
      p.of(latent_view_).copy_(latent_patch);
      const int64_t halo = dit_->stem ? kStemHalo : 0;
      const int64_t lo = std::max<int64_t>(0, p.latent_begin - halo);
      const int64_t hi = std::min<int64_t>(latent_view_.size(3), p.latent_end + halo);
      return dit_->patchify(latent_view_.slice(3, lo, hi), p.latent_begin - lo, hi - p.latent_end);
    }
  }
  TORCH_CHECK(false, "unknown patch split");
  return {};
}

models::DiTState PipeFusionStage::state_for(int patch, const at::Tensor& tokens) const {
  TORCH_CHECK(has_step_, "no step begun on stage ", stage_);
  models::DiTState st = base_;
  st.tokens = tokens;
  if (patch == kFullSequence) return st;
  const auto& p = patch_at(patch);
  TORCH_CHECK(tokens.size(1) == p.tokens, "patch ", patch, " has ", p.tokens, " tokens, got ", tokens.sizes());
  if (p.contiguous) st.token_begin = p.token_begin;
  else st.token_index = p.token_index;
  return st;
}

at::Tensor PipeFusionStage::run(int patch, const at::Tensor& tokens) {
  torch::NoGradGuard no_grad;
  auto st = state_for(patch, tokens);
  dit_->run_blocks(blocks_.first, blocks_.last, st, &kv_);
  return st.tokens;
}

at::Tensor PipeFusionStage::output(int patch, const at::Tensor& tokens) {
  TORCH_CHECK(last(), "only the last stage computes outputs");
  torch::NoGradGuard no_grad;
  auto st = state_for(patch, tokens);
  const at::Tensor out_tokens = dit_->head_tokens(st);  // [rows, S_p, patch_volume * C_out]
  if (patch == kFullSequence) {
    at::Tensor y = dit_->unpatchify(out_tokens, layout_.grid);  // [rows, C_out, F, H, W]
    if (output_view_.defined()) output_view_ = y.clone();
    return dit_->refine(y);
  }
  const auto& p = patch_at(patch);
  at::Tensor y = dit_->unpatchify(out_tokens, p.box);
  if (!output_view_.defined()) return dit_->refine(y);  // frame-local refinement, or none
  // Rows split with a refinement: its convolutions see neighbouring rows of the head output,
  // fresh for earlier patches of this step and one step old for later ones.
  p.of(output_view_).copy_(y);
  const int64_t lo = std::max<int64_t>(0, p.latent_begin - kRefineHalo);
  const int64_t hi = std::min<int64_t>(output_view_.size(3), p.latent_end + kRefineHalo);
  return dit_->refine(output_view_.slice(3, lo, hi)).slice(3, p.latent_begin - lo, p.latent_end - lo);
}

PatchScheduler::PatchScheduler(const PipeFusionLayout& layout, const SampleOptions& options,
                               models::Prediction prediction, bool guided)
    : layout_(layout),
      solver_(options.solver, models::make_schedule(options.solver, options.steps, options.shift)),
      states_(layout.patches.size()),
      prediction_(prediction),
      guided_(guided),
      guidance_(options.guidance) {}

int PatchScheduler::step(int patch) const { return states_.at(static_cast<size_t>(patch)).step; }

double PatchScheduler::sigma(int patch) const { return solver_.sigma(states_.at(static_cast<size_t>(patch))); }

at::Tensor PatchScheduler::guide(const at::Tensor& output) const {
  if (!guided_) return output;
  // As guided_denoise: conditional rows first, combined in float32.
  auto halves = output.to(torch::kFloat32).chunk(2, 0);
  const at::Tensor& conditional = halves[0];
  const at::Tensor& unconditional = halves[1];
  return unconditional + (conditional - unconditional) * guidance_;
}

at::Tensor PatchScheduler::step(int patch, const at::Tensor& output, const at::Tensor& x) {
  torch::NoGradGuard no_grad;
  auto& st = states_.at(static_cast<size_t>(patch));
  return solver_.step_output(st, guide(output), prediction_, x);
}

at::Tensor PatchScheduler::step_all(const at::Tensor& output, const at::Tensor& x) {
  torch::NoGradGuard no_grad;
  const at::Tensor guided = guide(output);
  std::vector<at::Tensor> next;
  next.reserve(states_.size());
  for (size_t i = 0; i < states_.size(); ++i) {
    const auto& p = layout_.patches[i];
    next.push_back(solver_.step_output(states_[i], p.of(guided), prediction_, p.of(x)));
  }
  return torch::cat(next, layout_.patches.front().latent_dim);
}

}  // namespace reel::pipeline
