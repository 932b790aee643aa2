// PipeFusion for the video DiT (Fang et al. 2024, xDiT), run in one process.
//
// N stages each own a contiguous range of DiT blocks; the token sequence is cut into M patches.
// W synchronous warm-up steps run the full sequence through all blocks and fill every stage's
// stale K/V buffers (stale_kv.hpp). Then, in the steady state, stage i computes patch p of step
// t with self-attention over a full-sequence K/V buffer in which patches 0..p are fresh (step t)
// and patches p+1..M-1 are from step t-1; it sends p's residual tokens to stage i+1 while it
// works on p+1. The last stage runs the head, classifier-free guidance and the solver step of
// patch p and sends the updated latent patch back to stage 0 (a ring).
//
// Every stage processes patches in the same order, so the numbers do not depend on timing:
// sample_pipefusion simulates the schedule in one thread (for step: for patch: for stage) and
// produces exactly what concurrent stages (actors) compute. Those are meant to be built from the
// same pieces: one PipeFusionStage per stage (pipefusion_stage.hpp) and a PatchScheduler on the
// last stage.
//
// Exactness: with one patch, or with W >= steps, every step is a full-sequence model call and
// the result equals pipeline::sample's bit for bit (tested). The solvers are elementwise (UniPC,
// DPM-Solver++ and Euler only scale and add whole tensors with per-step scalars; their history
// is per element), so one solver state per patch, stepped as soon as the patch is done, gives
// the same numbers as one state for the whole latent.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>
#include <vector>

#include <torch/types.h>

#include "base/expected.hpp"
#include "models/dit.hpp"
#include "models/scheduler.hpp"
#include "pipeline/denoiser.hpp"
#include "pipeline/sampler.hpp"

namespace reel::pipeline {

// How the token sequence is cut into patches.
enum class PatchSplit {
  // Whole token frames per patch: each patch is one contiguous run of the sequence, its frame-
  // local convolutions (the stem and the output refinement) see exactly what they see in a full
  // pass, and its 3D RoPE positions are the full pass's. At most as many patches as token frames.
  frames,
  // The same token rows of every frame: with more than one frame a patch is not contiguous in
  // the sequence and runs with an index list (DiTState::token_index). The 3x3 convolutions need
  // neighbouring rows: stage 0 embeds with the freshest latent rows it is sure to have, which
  // do not depend on timing: earlier patches' rows at this step, later patches' rows as stage 0
  // last embedded them (the previous step), except right after a synchronous step (and at the
  // start), which hands stage 0 the whole latent. The last stage refines with the head outputs
  // of earlier patches at this step and of later ones at the previous step (zeros before any,
  // i.e. in the first step without warm-up). Patches without neighbours' rows in the latent
  // (one frame, or one patch) run as contiguous runs. At most as many patches as token rows.
  rows,
};

// "frames", "rows"; anything else is Errc::invalid_argument.
[[nodiscard]] Expected<PatchSplit> parse_patch_split(std::string_view name);
[[nodiscard]] const char* patch_split_name(PatchSplit split);

struct PipeFusionPlan {
  int stages = 2;   // N: pipeline stages, each a contiguous range of blocks; 1..blocks; default 2
  int patches = 4;  // M: patches of the token sequence; 1..frames (or rows); default 4
  PatchSplit split = PatchSplit::frames;  // how patches cut the sequence; default frames
  // W: synchronous full-sequence steps at the start, which fill the stale K/V buffers; 0 runs
  // the first step with attention over the patches visited so far (nothing is stale yet);
  // W >= steps is sequential sampling. Default 1.
  int warmup_steps = 1;
};

// Blocks [first, last) of one stage.
struct BlockRange {
  int64_t first = 0;
  int64_t last = 0;
  [[nodiscard]] int64_t size() const { return last - first; }
};

// One patch: a box of the token grid, and where it lies in the sequence and in the latent.
struct PatchRange {
  int64_t begin = 0;  // first token frame (frames split) or token row of every frame (rows split)
  int64_t end = 0;    // one past the last
  models::TokenGrid box;  // token frames, rows and columns of the patch
  int64_t tokens = 0;     // box.tokens()
  bool contiguous = true;  // one run of the sequence, starting at token_begin
  int64_t token_begin = 0;
  at::Tensor token_index;  // [tokens] int64 positions in the sequence, increasing (always set)
  int latent_dim = 2;      // the latent's dimension the patch cuts: 2 (frames) or 3 (rows)
  int64_t latent_begin = 0, latent_end = 0;  // [begin, end) along latent_dim, in latent units

  // The patch's part of a latent-shaped tensor [B, C, F, H, W] (a view).
  [[nodiscard]] torch::Tensor of(const torch::Tensor& latent) const {
    return latent.slice(latent_dim, latent_begin, latent_end);
  }
};

// `stages` contiguous ranges covering blocks [0, blocks), sizes differing by at most one (the
// earlier stages get the extra blocks: the last stage also runs the head and the solver).
// invalid_argument unless 1 <= stages <= blocks.
[[nodiscard]] Expected<std::vector<BlockRange>> stage_block_ranges(int64_t blocks, int stages);

// `patches` patches covering every token of `grid` exactly once, in sequence order, sizes (in
// frames or rows) differing by at most one. `patch` is the DiT's patch size (latent units per
// token along frames, rows, columns). invalid_argument for fewer than 1 patch or more patches
// than frames (rows) to cut.
[[nodiscard]] Expected<std::vector<PatchRange>> patch_ranges(const models::TokenGrid& grid,
                                                              const std::array<int64_t, 3>& patch,
                                                              PatchSplit split, int patches);

// Checks a plan against a model and a latent shape [B, C, F, H, W]: invalid_argument with a
// message naming the problem (more stages than blocks, more patches than frames, a negative
// warm-up, a latent the model cannot patch).
[[nodiscard]] Status validate_plan(const PipeFusionPlan& plan, const models::DiTConfig& cfg,
                                   const std::vector<int64_t>& latent_shape);

// What a plan fixes for one latent shape: every stage and every patch.
struct PipeFusionLayout {
  std::vector<int64_t> latent_shape;  // [B, C, F, H, W]
  models::TokenGrid grid;             // token frames, rows, columns of the whole latent
  PatchSplit split = PatchSplit::frames;
  int warmup_steps = 1;
  std::vector<BlockRange> stages;     // [N]
  std::vector<PatchRange> patches;    // [M], in sequence order
};

// validate_plan, then the stage and patch ranges.
[[nodiscard]] Expected<PipeFusionLayout> make_layout(const PipeFusionPlan& plan, const models::DiTConfig& cfg,
                                                     const std::vector<int64_t>& latent_shape);

struct PipeFusionStats {
  int stages = 0, patches = 0;
  int warmup_steps = 0;  // synchronous steps run: min(W, steps)
  int steps = 0;
  int64_t model_calls = 0;   // steps: each evaluates the model once over the whole latent
  int64_t patch_passes = 0;  // steady-state patches through all stages: (steps - warm-up) * M
  int64_t stage_runs = 0;    // run_blocks calls: stages per warm-up step, stages * M per other
  int64_t model_rows = 0;    // latent rows through the model per call, summed (2B when guided)
  int64_t element_bytes = 4;  // float32 activations
  // Measured: bytes of the tensors stage i sends to stage i + 1 (the residual tokens
  // [rows, S_p, D] of each patch; nothing else is needed: every stage derives the time
  // modulation from the step's sigma and holds the request's text embedding), per step and
  // boundary: [steps][stages - 1].
  std::vector<std::vector<int64_t>> boundary_bytes;
  // Analytic: tokens x D x rows x element bytes, per patch [M] and per step (their sum; a
  // warm-up step sends the full sequence once, which is the same).
  std::vector<int64_t> analytic_patch_bytes;
  int64_t analytic_step_bytes = 0;
  // The ring: updated latent patches [B, C, ...] the last stage sends back to stage 0, per step.
  std::vector<int64_t> ring_bytes;
  // Once per request, to every stage: the text embeddings [rows, L, text_dim].
  int64_t request_bytes = 0;
  int64_t stale_kv_bytes = 0;  // K/V buffer memory over all stages
  double seconds = 0.0;

  // Mean over steps of the bytes sent across `boundary`.
  [[nodiscard]] double boundary_bytes_per_step(int boundary) const;
};

// Samples like pipeline::sample (same noise from options.seed, same schedule, solver and
// guidance) with the PipeFusion schedule of `plan` over `dit`, whose output is a `prediction`.
// Guidance runs conditional and unconditional rows together through the stages (batch 2B) and
// combines them per patch at the scheduler step. `stats` may be null.
// Errors: invalid_argument for a bad plan, shape, options or conditioning; internal when
// LibTorch throws.
[[nodiscard]] Expected<SampleResult> sample_pipefusion(models::VideoDiT& dit, models::Prediction prediction,
                                                       const Conditioning& cond,
                                                       std::vector<int64_t> latent_shape,
                                                       const SampleOptions& options, const PipeFusionPlan& plan,
                                                       PipeFusionStats* stats = nullptr);

}  // namespace reel::pipeline
