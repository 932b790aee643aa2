#include "pipeline/clips.hpp"

#include <chrono>
#include <cmath>
#include <map>
#include <sstream>
#include <string>
#include <utility>

#include "pipeline/detail/checks.hpp"
#include "pipeline/guidance.hpp"

namespace reel::pipeline {

using detail::clone_state;
using detail::shape_str;

namespace {

using detail::shape_str;

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

Error bad(std::string message) { return make_error(Errc::invalid_argument, std::move(message)); }

Status check_shape(const std::vector<int64_t>& shape, const char* what) {
  bool ok = shape.size() == 5;
  for (int64_t d : shape) ok = ok && d > 0;
  if (ok) return {};
  return bad(std::string(what) + " must be [B, Ch, N, H, W] with positive sizes, got " +
             shape_str(shape));
}

// Frames of a window that come from another clip: what the exchange carries for it.
int64_t foreign_frames(const ClipWindowSpan& span, int64_t clip_frames) {
  int64_t count = 0;
  for (int64_t frame : span.frames) count += frame / clip_frames != span.clip ? 1 : 0;
  return count;
}

}  // namespace

Expected<ClipsLayout> clips_layout(int64_t frames, const ClipsOptions& options) {
  const int C = options.clips;
  const int k = options.context_frames;
  const int g = options.global_frames;
  if (frames < 1) return bad("a video needs at least 1 frame, got " + std::to_string(frames));
  if (C < 1) return bad("clips (C) must be at least 1, got " + std::to_string(C));
  if (frames % C != 0) {
    const int64_t below = frames / C * C;
    return bad("frames N = " + std::to_string(frames) + " do not split into clips C = " +
               std::to_string(C) + " of equal length; use a multiple of " + std::to_string(C) +
               " (" + (below > 0 ? std::to_string(below) + " or " : std::string()) +
               std::to_string(below + C) + ") or a C that divides " + std::to_string(frames));
  }
  const int64_t n = frames / C;
  if (k < 0 || k > n) {
    return bad("context_frames (k) must be in [0, " + std::to_string(n) + "] (a clip's " +
               std::to_string(n) + " frames: a neighbour has no more to give), got " +
               std::to_string(k));
  }
  if (g < 0 || g > n) {
    return bad("global_frames (g) must be in [0, " + std::to_string(n) + "] (a clip's " +
               std::to_string(n) + " frames), got " + std::to_string(g));
  }
  REEL_RETURN_IF_ERROR(models::validate_schedule_args(options.steps, options.shift));
  if (!std::isfinite(options.guidance)) return bad("guidance must be a finite number");

  ClipsLayout out;
  out.frames = frames;
  out.clips = C;
  out.clip_frames = n;
  out.context_frames = k;
  out.global_frames = g;
  out.steps = options.steps;
  for (int j = 0; j < g; ++j) out.global_positions.push_back((2 * j + 1) * n / (2 * g));
  std::vector<int64_t> global;  // [G] video frames, clip-major
  for (int c = 0; c < C; ++c) {
    for (int64_t p : out.global_positions) global.push_back(c * n + p);
  }
  for (int c = 0; c < C; ++c) {
    ClipWindowSpan span;
    span.clip = c;
    span.first_frame = c * n;
    span.global_count = static_cast<int>(global.size());
    span.left_count = c > 0 ? k : 0;
    span.right_count = c < C - 1 ? k : 0;
    span.own_offset = span.global_count + span.left_count;
    span.frames = global;
    // Left context, own frames, right context: contiguous video frames.
    const int64_t end = span.first_frame + n + span.right_count;
    for (int64_t f = span.first_frame - span.left_count; f < end; ++f) span.frames.push_back(f);
    out.windows.push_back(std::move(span));
  }
  return out;
}

Expected<ClipsExchange> clips_exchange(const std::vector<int64_t>& latent_shape,
                                       const ClipsOptions& options) {
  REEL_RETURN_IF_ERROR(check_shape(latent_shape, "latent shape"));
  auto layout = clips_layout(latent_shape[2], options);
  if (!layout.ok()) return layout.error();
  const int64_t C = layout->clips;
  ClipsExchange out;
  out.local_frames = 2 * static_cast<int64_t>(layout->context_frames) * (C - 1);
  out.global_frames = static_cast<int64_t>(layout->global_frames) * C * (C - 1);
  out.frame_bytes = latent_shape[0] * latent_shape[1] * latent_shape[3] * latent_shape[4] *
                    static_cast<int64_t>(sizeof(float));
  out.bytes_per_step = (out.local_frames + out.global_frames) * out.frame_bytes;
  out.bytes_per_run = layout->steps * out.bytes_per_step;
  return out;
}

// ---- DenoiserClipRunner -----------------------------------------------------------------------

DenoiserClipRunner::DenoiserClipRunner(Denoiser& denoiser, Conditioning cond, double guidance,
                                       bool batched)
    : denoiser_(denoiser), cond_(std::move(cond)), guidance_(guidance), batched_(batched) {}

// One call for the windows of `group` (all of one length), concatenated along the batch.
Expected<torch::Tensor> DenoiserClipRunner::run_rows(const std::vector<const ClipWindow*>& group) {
  const int64_t row_factor = uses_guidance(cond_, guidance_) ? 2 : 1;
  const auto count = static_cast<int64_t>(group.size());
  if (count == 1) {
    auto out = guided_denoise(denoiser_, group[0]->x, group[0]->sigma, cond_, guidance_);
    if (!out.ok()) return out.error();
    ++model_calls_;
    model_rows_ += row_factor * group[0]->x.size(0);
    return out;
  }
  auto per_window = [count](const torch::Tensor& t) {
    return t.defined() ? t.repeat({count, 1, 1}) : t;  // [K*B, L, D], window-major
  };
  const Conditioning repeated{per_window(cond_.text), per_window(cond_.negative)};
  std::vector<torch::Tensor> xs;
  std::vector<torch::Tensor> sigmas;
  for (const ClipWindow* window : group) {
    xs.push_back(window->x);
    sigmas.push_back(window->sigma);
  }
  torch::Tensor x = torch::cat(xs, 0);          // [K*B, Ch, w, H, W]
  torch::Tensor sigma = torch::cat(sigmas, 0);  // [K*B, w]
  auto out = guided_denoise(denoiser_, x, sigma, repeated, guidance_);
  if (!out.ok()) return out.error();
  ++model_calls_;
  model_rows_ += row_factor * x.size(0);
  return out;
}

Expected<std::vector<torch::Tensor>> DenoiserClipRunner::run(
    const std::vector<ClipWindow>& windows) {
  std::vector<torch::Tensor> outs(windows.size());
  try {
    // Groups of equal window length, each in clip order; groups in order of first appearance.
    std::vector<std::vector<size_t>> groups;
    std::map<int64_t, size_t> group_of_length;
    for (size_t w = 0; w < windows.size(); ++w) {
      const int64_t length = windows[w].x.dim() == 5 ? windows[w].x.size(2) : -1;
      auto found = group_of_length.find(length);
      if (!batched_ || found == group_of_length.end()) {
        group_of_length[length] = groups.size();
        groups.push_back({w});
      } else {
        groups[found->second].push_back(w);
      }
    }
    for (const auto& group : groups) {
      std::vector<const ClipWindow*> members;
      for (size_t w : group) members.push_back(&windows[w]);
      auto out = run_rows(members);
      if (!out.ok()) return out.error();
      int64_t row = 0;
      for (size_t w : group) {
        const int64_t rows = windows[w].x.size(0);
        outs[w] = group.size() == 1 ? *out : out->narrow(0, row, rows);  // [B, Ch, w, H, W]
        row += rows;
      }
    }
    return outs;
  } catch (const std::exception& e) {
    return make_error(Errc::internal, std::string("clip window run failed: ") + e.what());
  }
}

// ---- VideoClips -------------------------------------------------------------------------------

VideoClips::VideoClips(ClipsLayout layout, ClipsState state)
    : layout_(std::move(layout)),
      solver_(state.options.solver,
              models::make_schedule(state.options.solver, layout_.steps, state.options.shift)),
      state_(std::move(state)) {}

Expected<VideoClips> VideoClips::start(const std::vector<int64_t>& latent_shape,
                                       const ClipsOptions& options) {
  REEL_RETURN_IF_ERROR(check_shape(latent_shape, "latent shape"));
  auto layout = clips_layout(latent_shape[2], options);  // before drawing noise for nothing
  if (!layout.ok()) return layout.error();
  torch::Tensor noise;
  try {
    noise = make_noise(latent_shape, options.seed);  // [B, Ch, N, H, W]
  } catch (const std::exception& e) {
    return make_error(Errc::internal, std::string("cannot make initial noise: ") + e.what());
  }
  return from_latent(noise, 0, options);
}

Expected<VideoClips> VideoClips::from_latent(const torch::Tensor& x, int start_step,
                                             const ClipsOptions& options) {
  if (!x.defined()) return bad("no latent to start the clips from");
  REEL_RETURN_IF_ERROR(check_shape(x.sizes().vec(), "latent"));
  auto layout = clips_layout(x.size(2), options);
  if (!layout.ok()) return layout.error();
  if (start_step < 0 || start_step > options.steps) {
    return bad("start step " + std::to_string(start_step) + " outside [0, " +
               std::to_string(options.steps) + "]");
  }
  ClipsState state;
  state.options = options;
  state.step = start_step;
  try {
    const torch::Tensor video = x.to(torch::kFloat32);  // [B, Ch, N, H, W]
    for (int c = 0; c < layout->clips; ++c) {
      // [B, Ch, n, H, W], a tensor of its own: a clip's latent is a worker's to keep.
      state.latents.push_back(
          video.narrow(2, c * layout->clip_frames, layout->clip_frames).contiguous());
      state.solver_states.push_back(models::SolverState{.step = start_step});
    }
  } catch (const std::exception& e) {
    return make_error(Errc::internal,
                      std::string("cannot split the video into clips: ") + e.what());
  }
  return VideoClips(std::move(*layout), std::move(state));
}

Expected<VideoClips> VideoClips::from_state(ClipsState state) {
  const ClipsOptions& options = state.options;
  if (options.clips < 1) {
    return bad("clips (C) must be at least 1, got " + std::to_string(options.clips));
  }
  if (state.latents.size() != static_cast<size_t>(options.clips)) {
    return bad("clips state has " + std::to_string(state.latents.size()) + " clip latents for " +
               std::to_string(options.clips) + " clips");
  }
  const torch::Tensor& first = state.latents.front();
  if (!first.defined() || first.dim() != 5) {
    return bad("clip latents must be [B, Ch, n, H, W], got " + shape_str(first));
  }
  for (size_t c = 0; c < state.latents.size(); ++c) {
    const torch::Tensor& latent = state.latents[c];
    if (!latent.defined() || latent.sizes() != first.sizes() ||
        latent.scalar_type() != torch::kFloat32) {
      return bad("clip latent " + std::to_string(c) + " must be float32 " + shape_str(first) +
                 " like clip 0, got " + shape_str(latent) +
                 (latent.defined() ? " " + std::string(c10::toString(latent.scalar_type())) : ""));
    }
  }
  auto layout = clips_layout(options.clips * first.size(2), options);
  if (!layout.ok()) return layout.error();
  if (state.step < 0 || state.step > layout->steps) {
    return bad("clips state is at step " + std::to_string(state.step) + ", outside [0, " +
               std::to_string(layout->steps) + "]");
  }
  if (state.solver_states.size() != state.latents.size()) {
    return bad("clips state has " + std::to_string(state.solver_states.size()) +
               " solver states for " + std::to_string(state.latents.size()) + " clips");
  }
  for (size_t c = 0; c < state.latents.size(); ++c) {
    REEL_RETURN_IF_ERROR(detail::check_solver_state(
        state.solver_states[c], state.step, state.latents[c].sizes(), "solver state of clip " + std::to_string(c),
        "the clips are at step", "not its clip's " + shape_str(state.latents[c])));
  }
  const bool finished = state.step == layout->steps;
  if (state.emitted_clips < 0 || state.emitted_clips > options.clips ||
      (state.emitted_clips > 0 && !finished)) {
    return bad("clips state has emitted " + std::to_string(state.emitted_clips) + " of " +
               std::to_string(options.clips) + " clips at step " + std::to_string(state.step) +
               " of " + std::to_string(layout->steps) + " (clips leave only after the last step)");
  }
  return VideoClips(std::move(*layout), std::move(state));
}

ClipsState VideoClips::state() const {
  ClipsState out;
  out.options = state_.options;
  out.step = state_.step;
  out.emitted_clips = state_.emitted_clips;
  for (const auto& latent : state_.latents) out.latents.push_back(latent.clone());
  for (const auto& st : state_.solver_states) out.solver_states.push_back(clone_state(st));
  return out;
}

torch::Tensor VideoClips::latent() const { return torch::cat(state_.latents, 2); }

Expected<std::vector<ClipWindow>> VideoClips::windows() const {
  if (done()) return bad("the clips are done: no step is left to build windows for");
  const int64_t n = layout_.clip_frames;
  std::vector<ClipWindow> out;
  try {
    const torch::Tensor& first = state_.latents.front();
    const int64_t batch = first.size(0);
    const auto sigma = static_cast<float>(solver_.sigma(state_.solver_states.front()));
    std::vector<torch::Tensor> global;  // G frames [B, Ch, 1, H, W], the same for every window
    for (const auto& latent : state_.latents) {
      for (int64_t p : layout_.global_positions) global.push_back(latent.narrow(2, p, 1));
    }
    for (const ClipWindowSpan& span : layout_.windows) {
      const auto c = static_cast<size_t>(span.clip);
      std::vector<torch::Tensor> parts = global;
      if (span.left_count > 0) {
        parts.push_back(state_.latents[c - 1].narrow(2, n - span.left_count, span.left_count));
      }
      parts.push_back(state_.latents[c]);
      if (span.right_count > 0) {
        parts.push_back(state_.latents[c + 1].narrow(2, 0, span.right_count));
      }
      torch::Tensor x = torch::cat(parts, 2);  // [B, Ch, w, H, W]
      const auto w = static_cast<int64_t>(span.frames.size());
      torch::Tensor sigmas = torch::full({batch, w}, sigma, torch::kFloat32);  // [B, w]
      out.push_back(ClipWindow{.span = span, .x = std::move(x), .sigma = std::move(sigmas)});
    }
  } catch (const std::exception& e) {
    return make_error(Errc::internal, std::string("cannot build the clip windows: ") + e.what());
  }
  return out;
}

Expected<ClipsResult> VideoClips::run(Denoiser& denoiser, const Conditioning& cond,
                                      const ClipCallback& on_clip, StepCallback on_step) {
  const int64_t batch = state_.latents.front().size(0);
  if (!cond.text.defined() || cond.text.dim() != 3 || cond.text.size(0) != batch) {
    return bad("text embedding must be [B, L, D] with B = " + std::to_string(batch) +
               " (the clips' batch), got " + shape_str(cond.text));
  }
  DenoiserClipRunner runner(denoiser, cond, state_.options.guidance, state_.options.batch_clips);
  auto result = run(runner, on_clip, std::move(on_step));
  if (result.ok()) {
    result->stats.model_calls = runner.model_calls();
    result->stats.model_rows = runner.model_rows();
  }
  return result;
}

Expected<ClipsResult> VideoClips::run(ClipRunner& runner, const ClipCallback& on_clip,
                                      StepCallback on_step) {
  const auto start = std::chrono::steady_clock::now();
  ClipsResult result;
  while (!done()) {
    REEL_RETURN_IF_ERROR(step_counted(runner, result.stats));
    if (on_step) on_step(state_.step, layout_.steps);
  }
  for (int c = state_.emitted_clips; c < layout_.clips; ++c) {
    const ClipWindowSpan& span = layout_.windows[static_cast<size_t>(c)];
    const torch::Tensor& latent = state_.latents[static_cast<size_t>(c)];
    if (on_clip) REEL_RETURN_IF_ERROR(on_clip(c, span.first_frame, latent));
    state_.emitted_clips = c + 1;
    ++result.stats.clips;
  }
  try {
    result.latent = latent();  // [B, Ch, N, H, W]
  } catch (const std::exception& e) {
    return make_error(Errc::internal, std::string("cannot join the clips: ") + e.what());
  }
  result.stats.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

Status VideoClips::step(ClipRunner& runner) {
  ClipsStats stats;
  return step_counted(runner, stats);
}

// Works on copies (tensors are never written in place, so copying the handles suffices) and
// commits only when every clip has stepped: an error leaves the state untouched.
Status VideoClips::step_counted(ClipRunner& runner, ClipsStats& stats) {
  auto windows = this->windows();
  if (!windows.ok()) return windows.error();
  auto outs = runner.run(*windows);
  if (!outs.ok()) return outs.error();
  std::vector<torch::Tensor> inputs;
  for (const auto& w : *windows) inputs.push_back(w.x);
  REEL_RETURN_IF_ERROR(detail::check_outputs(*outs, inputs, "clip runner", "the window of clip "));
  const int64_t n = layout_.clip_frames;
  try {
    const models::Prediction prediction = runner.prediction();
    std::vector<torch::Tensor> latents(state_.latents.size());
    std::vector<models::SolverState> states = state_.solver_states;
    int64_t foreign = 0;
    for (size_t c = 0; c < latents.size(); ++c) {
      const ClipWindowSpan& span = (*windows)[c].span;
      const torch::Tensor own = (*outs)[c].narrow(2, span.own_offset, n);  // [B, Ch, n, H, W]
      latents[c] = solver_.step_output(states[c], own, prediction, state_.latents[c]);
      foreign += foreign_frames(span, n);
    }
    const torch::Tensor& first = state_.latents.front();
    const int64_t frame_bytes = first.size(0) * first.size(1) * first.size(3) * first.size(4) *
                                static_cast<int64_t>(sizeof(float));
    state_.latents = std::move(latents);
    state_.solver_states = std::move(states);
    ++state_.step;
    ++stats.steps;
    stats.windows += static_cast<int64_t>(windows->size());
    stats.exchanged_bytes += foreign * frame_bytes;
  } catch (const std::exception& e) {
    return make_error(Errc::internal, std::string("clip-parallel step failed: ") + e.what());
  }
  return {};
}

}  // namespace reel::pipeline
