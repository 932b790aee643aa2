// The pieces PipeFusion is made of, one object per pipeline role, so that the one-thread
// simulation (sample_pipefusion) and concurrent stages (actors) compute the same numbers:
//
//   PipeFusionStage  one stage: its blocks and stale K/V buffers, the request's text embedding
//                    and the step's time embedding (derived locally: only tokens travel).
//                    Stage 0 also embeds latent patches; the last stage also computes the model
//                    output of patches (head, unpatchify, refinement).
//   PatchScheduler   on the last stage: classifier-free guidance and one solver state per patch.
//
// Messages between them: stage i -> i+1 the residual tokens of a patch [rows, S_p, D]; the last
// stage -> stage 0 the updated latent patch [B, C, ...] (the whole latent after a synchronous
// step). `rows` is B, or 2B with guidance (conditional rows first).
//
// All methods throw c10::Error on LibTorch failures; callers turn them into errors at their
// boundary (sample_pipefusion returns Errc::internal).
#pragma once

#include <vector>

#include <torch/types.h>

#include "models/dit.hpp"
#include "models/scheduler.hpp"
#include "pipeline/pipefusion.hpp"
#include "pipeline/stale_kv.hpp"

namespace reel::pipeline {

// The patch argument that means the whole sequence (a synchronous step).
inline constexpr int kFullSequence = -1;

class PipeFusionStage {
 public:
  PipeFusionStage(models::VideoDiT dit, const PipeFusionLayout& layout, int stage);

  [[nodiscard]] int stage() const { return stage_; }
  [[nodiscard]] bool first() const { return stage_ == 0; }
  [[nodiscard]] bool last() const { return stage_ + 1 == static_cast<int>(layout_.stages.size()); }
  [[nodiscard]] const BlockRange& blocks() const { return blocks_; }
  [[nodiscard]] const StaleKV& stale_kv() const { return kv_; }

  // Once per request, before anything else: text [rows, L, text_dim]. Embeds the text, computes
  // the cross-attention K/V of every block once, resets the stale K/V buffers and, on the last
  // stage with a rows split, the head outputs its refinement sees (zeros).
  void begin_request(const at::Tensor& text);
  // Once per step, before its first patch: the time embedding for every frame at `sigma`
  // (t = 1000 sigma, as DiTDenoiser).
  void begin_step(double sigma);

  // Stage 0, rows split: the whole latent [rows, C, F, H, W] as the ring delivered it (the
  // initial noise, and the result of each synchronous step). Patches then refresh their rows.
  void set_latent(const at::Tensor& latent);
  // Stage 0: the tokens [rows, S_p, D] of patch `patch` of the latent (kFullSequence: latent is
  // the whole [rows, C, F, H, W] and the result the whole sequence). latent_patch is the
  // patch's part of the latent, fresh for this step; with a rows split the stem also sees the
  // neighbouring rows from the latent set_latent and earlier patches left.
  [[nodiscard]] at::Tensor embed(int patch, const at::Tensor& latent_patch);

  // Every stage: runs its blocks on the tokens of `patch` with its stale K/V buffers and
  // returns the tokens to send on.
  [[nodiscard]] at::Tensor run(int patch, const at::Tensor& tokens);

  // Last stage: the model output [rows, C_out, ...] of `patch` from the tokens after the last
  // block (kFullSequence: the whole [rows, C_out, F, H, W], equal to VideoDiT::head).
  [[nodiscard]] at::Tensor output(int patch, const at::Tensor& tokens);

 private:
  models::DiTState state_for(int patch, const at::Tensor& tokens) const;
  const PatchRange& patch_at(int patch) const;

  models::VideoDiT dit_;
  PipeFusionLayout layout_;
  int stage_ = 0;
  BlockRange blocks_;
  StaleKV kv_;
  models::DiTState base_;  // text, cross K/V, RoPE, grid, time embedding of the step; no tokens
  int64_t rows_ = 0;
  bool has_request_ = false;
  bool has_step_ = false;
  at::Tensor latent_view_;  // stage 0, rows split: [rows, C, F, H, W] as last seen
  at::Tensor output_view_;  // last stage, rows split with refinement: unrefined outputs
};

class PatchScheduler {
 public:
  // One solver state per patch of `layout`, all at step 0.
  PatchScheduler(const PipeFusionLayout& layout, const SampleOptions& options, models::Prediction prediction,
                 bool guided);

  [[nodiscard]] int steps() const { return solver_.steps(); }
  [[nodiscard]] int step(int patch) const;      // steps the patch has done
  [[nodiscard]] double sigma(int patch) const;  // noise level the patch is at

  // Guidance on the model output [rows, C, ...] of `patch`, then its solver step from x, the
  // patch's part [B, C, ...] of the latent. Returns the patch at the next noise level.
  [[nodiscard]] at::Tensor step(int patch, const at::Tensor& output, const at::Tensor& x);
  // The same for every patch of a whole-latent output: returns the whole next latent.
  [[nodiscard]] at::Tensor step_all(const at::Tensor& output, const at::Tensor& x);

 private:
  [[nodiscard]] at::Tensor guide(const at::Tensor& output) const;

  PipeFusionLayout layout_;
  models::FlowSolver solver_;
  std::vector<models::SolverState> states_;
  models::Prediction prediction_;
  bool guided_;
  double guidance_;
};

}  // namespace reel::pipeline
