// Clip-parallel denoising (Video-Infinity, Tan et al. 2024, arXiv 2406.16260): a video of N
// latent frames is split into C clips of n = N / C frames that are denoised together, every frame
// at the same step of one schedule, one model call per clip (one worker per clip when
// distributed). Before every model call the clips exchange context, so that the clips agree.
//
// The window. What the Denoiser sees for clip i is x [B, Ch, w, H, W] and sigma [B, w], every
// entry the step's sigma (all frames share the noise level), with the frames in this order:
//
//   [ global context: G = g C | left context: k | own frames: n | right context: k ]
//
//  - global context: g frames of every clip, the clip's own included, clip by clip, at the fixed
//    positions p_j = floor((2j + 1) n / (2g)), j = 0 .. g-1, inside each clip (the centres of g
//    equal strata); the same G frames in every window;
//  - left context: the last k frames of clip i - 1 (none for clip 0);
//  - right context: the first k frames of clip i + 1 (none for clip C - 1);
//  - own frames: the clip's n frames.
// Context frames are taken from the clips' CURRENT latents, at the same step as the own frames:
// they are exchanged before every model call. w = G + n + 2k for middle clips, G + n + k for the
// first and the last (C >= 2), G + n for C = 1. The model treats a window as an ordinary clip of
// w frames: its temporal RoPE positions follow window order (global frames at 0 .. G-1 wherever
// they sit in the video, then left context, own frames, right context), not video frame indices,
// since the Denoiser takes no positions. Only the own frames' outputs are used.
//
// Solver state: one SolverState per clip, over the clip's own [B, Ch, n, H, W] frames; it never
// leaves its clip. All clips take the same step with the same schedule coefficients and the
// solvers are elementwise, so this equals one state over the whole video (with C = 1 and no
// context the result is pipeline::sample's, bit for bit).
//
// Noise: the whole video's, make_noise([B, Ch, N, H, W], seed), clip i taking frames
// [i n, (i + 1) n): the same noise as pipeline::sample, whatever C and however the clips are
// batched, so runs with different C start from the same video noise. (A worker that makes its
// clip's noise itself draws the whole video's and keeps its slice: N frames of randn per job.)
//
// Model calls: with batch_clips, windows of equal length go to the Denoiser as ONE call,
// concatenated along the batch dimension in clip order ([K*B, Ch, w, H, W], text repeated per
// window; guidance doubles it): at most two calls per step (the two edge clips, the middle ones),
// one when k = 0 or C <= 2. Otherwise one call per clip. Both give the same result for a model
// whose rows are independent. A ClipRunner replaces the Denoiser to spread clips over workers.
//
// The exchange, per step. Clip i receives k frames from each neighbour (its left and right
// context) and g frames from each other clip (the global context; its own g it has). Over the
// video that is
//   local:  2 k (C - 1) frames   (k each way over each of the C - 1 boundaries)
//   global: g C (C - 1) frames   (every clip's g frames to the C - 1 others)
// each frame B x Ch x H x W float32 values, so
//   bytes per step = (2 k (C - 1) + g C (C - 1)) x B x Ch x H x W x 4      (clips_exchange)
// and steps times that per video. Nothing else crosses clips: the sigma and the step index follow
// from the schedule, solver state stays with its clip, guidance doubles rows inside a worker only.
// A frame that is both a neighbour's edge frame and one of its global frames is counted (and
// sent) twice. Example: Wan 2.1 at 480x832 (latent Ch 16, 60 x 104), B = 1, C = 4, k = 2, g = 2:
// 12 + 24 = 36 frames of 399,360 bytes = 14,376,960 bytes per step.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include <torch/types.h>

#include "base/expected.hpp"
#include "models/scheduler.hpp"
#include "pipeline/denoiser.hpp"
#include "pipeline/sampler.hpp"

namespace reel::pipeline {

struct ClipsOptions {
  int clips = 2;  // C: clips the video is split into; its frames must be a multiple. Default 2.
  // k: local context frames from each neighbour, per side, at most a clip's n. Default 2.
  int context_frames = 2;
  int global_frames = 1;  // g: global context frames from every clip, at most n. Default 1.
  // Windows of equal length in one Denoiser call; false: one call per clip. Default true.
  bool batch_clips = true;
  int steps = 30;      // solver steps (model calls per clip); default 30
  double shift = 5.0;  // sigma shift of the schedule; default 5
  models::SolverKind solver = models::SolverKind::unipc;  // default unipc
  double guidance = 5.0;  // classifier-free guidance; 1 (or no negative) turns it off; default 5
  uint64_t seed = 0;      // seed of the whole video's noise (see the top of this file); default 0
};

// One clip's window: which video frames it shows the model, in window order.
struct ClipWindowSpan {
  int clip = 0;
  int64_t first_frame = 0;  // the clip owns video frames [first_frame, first_frame + n)
  int global_count = 0;     // G = g C
  int left_count = 0;       // k, or 0 for clip 0
  int right_count = 0;      // k, or 0 for clip C - 1
  int64_t own_offset = 0;   // G + left_count: where the own frames start in the window
  std::vector<int64_t> frames;  // the video frame at each window position (w entries)
};

// The split clips_layout derives from the video length and ClipsOptions (see the top of this file).
struct ClipsLayout {
  int64_t frames = 0;       // N
  int clips = 0;            // C
  int64_t clip_frames = 0;  // n = N / C
  int context_frames = 0;   // k
  int global_frames = 0;    // g
  int steps = 0;
  std::vector<int64_t> global_positions;  // p_0 .. p_{g-1}, inside a clip
  std::vector<ClipWindowSpan> windows;    // one per clip, in clip order
};

// Validates the options for a video of `frames` latent frames and derives the layout. Errors
// (invalid_argument): frames or clips below 1, frames not a multiple of clips, context_frames or
// global_frames negative or above a clip's length, a bad steps or shift, a non-finite guidance.
[[nodiscard]] Expected<ClipsLayout> clips_layout(int64_t frames, const ClipsOptions& options);

// What crosses between clips for a latent of latent_shape [B, Ch, N, H, W].
struct ClipsExchange {
  int64_t local_frames = 0;    // 2 k (C - 1) per step
  int64_t global_frames = 0;   // g C (C - 1) per step
  int64_t frame_bytes = 0;     // B x Ch x H x W x 4
  int64_t bytes_per_step = 0;  // (local_frames + global_frames) x frame_bytes
  int64_t bytes_per_run = 0;   // steps x bytes_per_step
};
// Errors: clips_layout's, and invalid_argument for a shape that is not [B, Ch, N, H, W] positive.
[[nodiscard]] Expected<ClipsExchange> clips_exchange(const std::vector<int64_t>& latent_shape,
                                                     const ClipsOptions& options);

// Everything a clip-parallel run needs to continue exactly where it stopped: plain data, for
// saving. The state is always between two steps.
struct ClipsState {
  ClipsOptions options;  // what the run was built with (batch_clips may change on resume)
  std::vector<torch::Tensor> latents;  // C clips, [B, Ch, n, H, W] float32 each, in clip order
  // One per clip, each at `step`; their tensors are shaped like the clip's latent.
  std::vector<models::SolverState> solver_states;
  int step = 0;           // schedule steps done, 0 .. steps
  int emitted_clips = 0;  // clips the clip callback accepted (only once step == steps)
};

// One clip's window of one step, as a ClipRunner receives it.
struct ClipWindow {
  ClipWindowSpan span;
  torch::Tensor x;      // [B, Ch, w, H, W] the window's frames, in span.frames order
  torch::Tensor sigma;  // [B, w] float32, the step's sigma everywhere
};

// Runs the model on the clips' windows of one step. A distributed runner spreads them over workers.
class ClipRunner {
 public:
  virtual ~ClipRunner() = default;
  // The (guided) model output of every window, in order, each shaped like its x, of type
  // prediction(). Only the own frames' outputs are used.
  [[nodiscard]] virtual Expected<std::vector<torch::Tensor>> run(
      const std::vector<ClipWindow>& windows) = 0;
  [[nodiscard]] virtual models::Prediction prediction() const = 0;
};

// The in-process runner: guided_denoise over a Denoiser, windows of equal length in one batched
// call each, or one call per window. Errors: the Denoiser's and guided_denoise's.
class DenoiserClipRunner : public ClipRunner {
 public:
  DenoiserClipRunner(Denoiser& denoiser, Conditioning cond, double guidance, bool batched);

  [[nodiscard]] Expected<std::vector<torch::Tensor>> run(
      const std::vector<ClipWindow>& windows) override;
  [[nodiscard]] models::Prediction prediction() const override { return denoiser_.prediction(); }

  [[nodiscard]] int64_t model_calls() const { return model_calls_; }  // Denoiser::denoise calls
  [[nodiscard]] int64_t model_rows() const { return model_rows_; }    // rows through the model

 private:
  Expected<torch::Tensor> run_rows(const std::vector<const ClipWindow*>& group);

  Denoiser& denoiser_;
  Conditioning cond_;
  double guidance_;
  bool batched_;
  int64_t model_calls_ = 0;
  int64_t model_rows_ = 0;
};

// Receives each clip's clean latent [B, Ch, n, H, W] float32 once the last step is done, in clip
// order, with its first video frame. An error stops the run; a later run offers that clip again
// (and the ones after it), without model calls.
using ClipCallback =
    std::function<Status(int clip, int64_t first_frame, const torch::Tensor& latent)>;

struct ClipsStats {
  int64_t steps = 0;        // solver steps taken by this run
  int64_t windows = 0;      // clip windows run (C per step)
  int64_t model_calls = 0;  // Denoiser calls (run with a Denoiser only)
  int64_t model_rows = 0;   // latent rows through the model (run with a Denoiser only)
  int64_t clips = 0;        // clips given to the callback
  // Bytes of context frames taken from other clips, counted from the windows built: steps x
  // clips_exchange(...).bytes_per_step.
  int64_t exchanged_bytes = 0;
  double seconds = 0.0;  // wall time
};

struct ClipsResult {
  torch::Tensor latent;  // [B, Ch, N, H, W] float32, at sigma 0: the clips in order
  ClipsStats stats;
};

// The clips of one video and their algorithm. Errors of every function: invalid_argument for
// malformed input (messages name the value and what was expected); the runner's or Denoiser's
// errors as they are; internal when LibTorch throws.
class VideoClips {
 public:
  // Starts from make_noise(latent_shape, options.seed), latent_shape [B, Ch, N, H, W].
  [[nodiscard]] static Expected<VideoClips> start(const std::vector<int64_t>& latent_shape,
                                                  const ClipsOptions& options);
  // Starts from a latent x [B, Ch, N, H, W] at schedule step start_step (0 = pure noise), with
  // fresh solver states (a cache hit resumes this way).
  [[nodiscard]] static Expected<VideoClips> from_latent(const torch::Tensor& x, int start_step,
                                                        const ClipsOptions& options);
  // Continues from a saved state, after checking that it is complete and consistent.
  [[nodiscard]] static Expected<VideoClips> from_state(ClipsState state);

  // A deep copy of the state (the clips keep running on their own tensors).
  [[nodiscard]] ClipsState state() const;

  // Steps until the last step is done, then offers the clips not yet accepted to on_clip (may be
  // empty) and returns the whole latent. on_step gets the step reached and the total.
  [[nodiscard]] Expected<ClipsResult> run(Denoiser& denoiser, const Conditioning& cond,
                                          const ClipCallback& on_clip, StepCallback on_step = {});
  [[nodiscard]] Expected<ClipsResult> run(ClipRunner& runner, const ClipCallback& on_clip,
                                          StepCallback on_step = {});
  // One step of every clip: exchange context, run the windows, step each clip's own frames. An
  // error leaves the state as it was. Requires !done().
  [[nodiscard]] Status step(ClipRunner& runner);

  // The windows of the next step, built from the current latents (what step() hands the runner).
  [[nodiscard]] Expected<std::vector<ClipWindow>> windows() const;
  // The clips concatenated: [B, Ch, N, H, W].
  [[nodiscard]] torch::Tensor latent() const;

  [[nodiscard]] bool done() const { return state_.step >= layout_.steps; }
  [[nodiscard]] int step_index() const { return state_.step; }
  [[nodiscard]] const ClipsLayout& layout() const { return layout_; }
  [[nodiscard]] const ClipsOptions& options() const { return state_.options; }

 private:
  VideoClips(ClipsLayout layout, ClipsState state);
  Status step_counted(ClipRunner& runner, ClipsStats& stats);

  ClipsLayout layout_;
  models::FlowSolver solver_;
  ClipsState state_;
};

}  // namespace reel::pipeline
