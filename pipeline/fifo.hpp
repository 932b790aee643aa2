// FIFO-Diffusion (Kim et al. 2024, arXiv 2405.11473): diagonal denoising of a queue of frames
// whose noise levels rise from head to tail, for videos of any length at constant memory.
//
// The queue. With f = window_frames (the model's window, in latent frames), n = partitions and
// S = steps, the queue holds L = f * n DENOISING slots, head first, and, with lookahead,
// c = f / 2 CONTEXT slots in front of them (c = 0 without lookahead):
//
//   slot:   0 .. c-1          c          c+1   ...   c+L-1
//           clean context     head                    tail
//   step:   S (sigma 0)       S - m      S - 2m  ...  S - m*L = 0 (pure noise)
//
// Every iteration moves each frame one slot towards the head and steps it m = S / L times, so S
// must be a positive multiple of L (m = 1 is the paper's layout, queue length = steps). At the
// start of an iteration the frame in denoising slot p = q - c (q the slot) is at solver step
// S - m * (p + 1), i.e. at sigma = schedule.sigmas[S - m * (p + 1)]; levels rise strictly from
// head to tail. Context slots hold the last c frames popped, clean, and are shown to the model
// at sigma 0; they are never written.
//
// One iteration:
//  1. m times: run every window on the queue as it is (the windows of one pass read the same
//     queue, so they are independent), then step every denoising frame with the output of the
//     one window that writes it, using the frame's own SolverState (its own step, sigma and
//     multistep history);
//  2. pop the head frame (now at step S, sigma 0: clean) to the caller; with lookahead it also
//     becomes the newest context frame;
//  3. push fresh noise at the tail (step 0), with a fresh SolverState.
//
// Windows (f consecutive slots each; what the Denoiser sees per window: x [B, C, f, H, W], sigma
// [B, f] of the slots' levels, rising along the frames):
//  - without lookahead: n windows at slots [w*f, w*f + f), each writing all its f frames;
//  - with lookahead: 2n windows at slots [w*f/2, w*f/2 + f), each writing only its second half
//    [w*f/2 + f/2, w*f/2 + f). Every frame is denoised with f/2 cleaner frames before it in its
//    window; window 0's first half is the context. (Requires f even.)
// Every denoising slot is written by exactly one window per pass. With batch_windows, the
// windows of a pass go to the Denoiser as ONE call, concatenated along the batch dimension in
// window order ([W*B, C, f, H, W], text repeated per window; classifier-free guidance doubles
// it to 2*W*B rows); otherwise as W calls of B rows. Both give the same result for a model whose
// rows are independent. A WindowRunner replaces the Denoiser to spread windows over workers.
//
// Frames are numbered as the output video: the caller receives frames 0, 1, 2, ... The queue
// starts from a clean clip c_0 .. c_{f-1} of f frames (given, or sampled with pipeline::sample),
// forward-noised as in the paper: denoising slot p holds video frame k = p - (L - f), set to
// (1 - sigma) * c_{max(0, k)} + sigma * noise_k at its slot's sigma; context slots hold c_0
// clean. The first L - f frames popped (k < 0, the paper's warm-up, copies of c_0) are dropped,
// not emitted. Frames 0 .. f-1 pop re-denoised along the diagonal, frame f-1 from pure noise; what
// is emitted for them, and what becomes context, is the clip's own frame c_k instead. So the video
// starts with the clip exactly as it was sampled (the same 8 frames as standard mode with the same
// seed and steps), and the first new frame f is denoised with the clip's last f/2 frames as its
// context, their motion included, rather than with copies of c_0 or the diagonal's remakes of
// them. Frame k's noise, at the start or pushed at the tail, is fifo_frame_noise(shape, seed, k):
// a resumed run draws the same noise.
//
// Memory: the queue is c + L frames and each SolverState holds at most 3 frame tensors (two x0
// predictions and UniPC's last sample), whatever the number of frames generated.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include <torch/types.h>

#include "base/expected.hpp"
#include "models/scheduler.hpp"
#include "pipeline/denoiser.hpp"

namespace reel::pipeline {

struct FifoOptions {
  // f: latent frames per model call; set it to the model's window. Default 8.
  int window_frames = 8;
  // n: windows in the queue, which holds f * n denoising frames. Default 1.
  int partitions = 1;
  // Lookahead denoising: 2n half-overlapping windows and f/2 clean context frames. Default true.
  bool lookahead = true;
  // The windows of a pass in one Denoiser call; false: one call per window. Default true.
  bool batch_windows = true;
  // S: solver steps a frame takes from noise to clean, a positive multiple of f * n; 0 means
  // f * n (the paper's one step per slot). Default 0.
  int steps = 0;
  double shift = 5.0;  // sigma shift of the schedule; default 5
  models::SolverKind solver = models::SolverKind::unipc;  // default unipc
  double guidance = 5.0;  // classifier-free guidance; 1 (or no negative) turns it off; default 5
  uint64_t seed = 0;  // seed of the first clip's noise (when sampled) and every frame's; default 0
};

// Where a window sits in the queue.
struct FifoWindowSpan {
  int first_slot = 0;  // the window covers slots [first_slot, first_slot + f)
  int write_from = 0;  // and writes back slots [write_from, first_slot + f)
};

// The queue layout fifo_layout derives from FifoOptions (see the top of this file).
struct FifoLayout {
  int window_frames = 0;        // f
  int context_slots = 0;        // c: f / 2 with lookahead, else 0
  int denoising_slots = 0;      // L = f * n
  int slots = 0;                // c + L: frames the queue holds
  int steps = 0;                // S
  int steps_per_iteration = 0;  // m = S / L: solver steps (and model passes) per iteration
  int64_t warmup_frames = 0;    // L - f: frames popped before video frame 0
  // Solver step of each slot at the start of an iteration, head first: S for context slots,
  // S - m * (p + 1) for denoising slot p. Strictly decreasing over the denoising slots.
  std::vector<int> slot_steps;
  std::vector<FifoWindowSpan> windows;  // in queue order, head first
};

// Validates the options and derives the layout. Errors (invalid_argument): window_frames or
// partitions below 1, an odd window_frames with lookahead, steps that are not a positive
// multiple of f * n, a bad shift or a non-finite guidance.
[[nodiscard]] Expected<FifoLayout> fifo_layout(const FifoOptions& options);

// The seed of video frame k's noise: splitmix64(seed) + k, so the frames of one video never
// share noise (LibTorch's CPU generator keeps only the low 32 bits of a seed). Frames before the
// video (k < 0) have seeds too.
[[nodiscard]] uint64_t fifo_frame_seed(uint64_t seed, int64_t frame);
// Frame k's noise for a frame shape [B, C, 1, H, W]: make_noise(shape, fifo_frame_seed(seed, k)).
[[nodiscard]] torch::Tensor fifo_frame_noise(const std::vector<int64_t>& frame_shape,
                                             uint64_t seed, int64_t frame);

// Everything a FIFO run needs to continue exactly where it stopped: plain data, for saving. The
// state is always between two iterations.
struct FifoState {
  FifoOptions options;  // what the queue was built with (batch_windows may change on resume)
  torch::Tensor queue;  // [B, C, c + L, H, W] float32, slot 0 (oldest context frame) first
  // One per denoising slot, head first (L entries); solver_states[p].step = slot_steps[c + p].
  // Their tensors are [B, C, 1, H, W].
  std::vector<models::SolverState> solver_states;
  int64_t head_frame = 0;  // video frame in the head slot, popped next; negative during warm-up
  // [B, C, f, H, W] float32 the first clip, whose frames are emitted as frames 0 .. f-1. Needed
  // while head_frame < f; undefined once frame f-1 has popped.
  torch::Tensor first_clip;
};

// One window of one pass, as a WindowRunner receives it.
struct FifoWindow {
  FifoWindowSpan span;
  int64_t first_frame = 0;  // video frame index of the window's first frame
  torch::Tensor x;          // [B, C, f, H, W] the frames of slots span.first_slot ...
  torch::Tensor sigma;      // [B, f] float32 noise level of each frame (0 for context frames)
};

// Runs the model on the windows of one pass. A distributed runner spreads them over workers.
class WindowRunner {
 public:
  virtual ~WindowRunner() = default;
  // The (guided) model output of every window, in order, each shaped like its x, of type
  // prediction(). Only the written slots' outputs are used.
  [[nodiscard]] virtual Expected<std::vector<torch::Tensor>> run(
      const std::vector<FifoWindow>& windows) = 0;
  [[nodiscard]] virtual models::Prediction prediction() const = 0;
};

// The in-process runner: guided_denoise over a Denoiser, all windows in one batched call or one
// call per window. Errors: the Denoiser's and guided_denoise's.
class DenoiserWindowRunner : public WindowRunner {
 public:
  DenoiserWindowRunner(Denoiser& denoiser, Conditioning cond, double guidance, bool batched);

  [[nodiscard]] Expected<std::vector<torch::Tensor>> run(
      const std::vector<FifoWindow>& windows) override;
  [[nodiscard]] models::Prediction prediction() const override { return denoiser_.prediction(); }

  [[nodiscard]] int64_t model_calls() const { return model_calls_; }  // Denoiser::denoise calls
  [[nodiscard]] int64_t model_rows() const { return model_rows_; }    // rows through the model

 private:
  Denoiser& denoiser_;
  Conditioning cond_;
  Conditioning repeated_;  // cond_ repeated for repeated_windows_ windows
  int64_t repeated_windows_ = 0;
  double guidance_;
  bool batched_;
  int64_t model_calls_ = 0;
  int64_t model_rows_ = 0;
};

// Receives each clean frame [B, C, 1, H, W] float32 as it pops, with its video frame index, in
// order. An error stops the run and leaves the queue before that frame's iteration, so a resumed
// run recomputes the frame and offers it again.
using FrameCallback = std::function<Status(int64_t frame, const torch::Tensor& latent)>;

struct FifoStats {
  int64_t iterations = 0;   // frames popped, warm-up included
  int64_t frames = 0;       // frames given to the callback
  int64_t windows = 0;      // windows run (per pass: n, or 2n with lookahead)
  int64_t model_calls = 0;  // Denoiser calls (run with a Denoiser only)
  int64_t model_rows = 0;   // latent rows through the model (run with a Denoiser only)
  double seconds = 0.0;     // wall time
};

// The queue and its algorithm. Errors of every function: invalid_argument for malformed input
// (messages name the value and what was expected); the runner's or Denoiser's errors as they
// are; internal when LibTorch throws.
class FifoQueue {
 public:
  // Starts from a clean clip [B, C, f, H, W] (exactly window_frames frames).
  [[nodiscard]] static Expected<FifoQueue> from_clip(const torch::Tensor& clip,
                                                     const FifoOptions& options);
  // Samples the first clip of clip_shape [B, C, f, H, W] with pipeline::sample (same steps,
  // shift, solver, guidance and seed) and starts from it.
  [[nodiscard]] static Expected<FifoQueue> start(Denoiser& denoiser, const Conditioning& cond,
                                                 const std::vector<int64_t>& clip_shape,
                                                 const FifoOptions& options);
  // Continues from a saved state, after checking that it is complete and consistent.
  [[nodiscard]] static Expected<FifoQueue> from_state(FifoState state);

  // A deep copy of the state (the queue keeps running on its own tensors).
  [[nodiscard]] FifoState state() const;

  // Runs iterations until video frames 0 .. total_frames - 1 have been emitted (total_frames
  // counts from the start of the video, so a resumed run is given the same total). Requires
  // total_frames >= window_frames: shorter videos are sampled with pipeline::sample.
  [[nodiscard]] Expected<FifoStats> run(Denoiser& denoiser, const Conditioning& cond,
                                        int64_t total_frames, const FrameCallback& on_frame);
  [[nodiscard]] Expected<FifoStats> run(WindowRunner& runner, int64_t total_frames,
                                        const FrameCallback& on_frame);
  // One iteration; on_frame is called unless the popped frame is a warm-up frame.
  [[nodiscard]] Status step(WindowRunner& runner, const FrameCallback& on_frame);

  [[nodiscard]] int64_t head_frame() const { return state_.head_frame; }
  [[nodiscard]] const FifoLayout& layout() const { return layout_; }
  [[nodiscard]] const FifoOptions& options() const { return state_.options; }
  // Bytes of the tensor storage the queue holds now (queue and solver histories).
  [[nodiscard]] int64_t tensor_bytes() const;

 private:
  FifoQueue(FifoLayout layout, FifoState state);
  Status step_counted(WindowRunner& runner, const FrameCallback& on_frame, FifoStats& stats);

  FifoLayout layout_;
  models::FlowSolver solver_;
  FifoState state_;
};

}  // namespace reel::pipeline
