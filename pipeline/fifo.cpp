#include "pipeline/fifo.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <sstream>
#include <string>
#include <utility>

#include "pipeline/detail/checks.hpp"
#include "pipeline/guidance.hpp"
#include "pipeline/sampler.hpp"

namespace reel::pipeline {

using detail::clone_state;
using detail::shape_str;

namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

int64_t storage_bytes(const torch::Tensor& t) {
  return t.defined() ? static_cast<int64_t>(t.storage().nbytes()) : 0;
}

Error bad(std::string message) { return make_error(Errc::invalid_argument, std::move(message)); }

Status check_latent(const torch::Tensor& t, const char* what) {
  if (!t.defined() || t.dim() != 5) {
    return bad(std::string(what) + " must be [B, C, F, H, W], got " + shape_str(t));
  }
  for (int64_t d : t.sizes()) {
    if (d <= 0) return bad(std::string(what) + " has an empty dimension: " + shape_str(t));
  }
  return {};
}

}  // namespace

Expected<FifoLayout> fifo_layout(const FifoOptions& options) {
  const int f = options.window_frames;
  const int n = options.partitions;
  if (f < 1) return bad("window_frames (f) must be at least 1, got " + std::to_string(f));
  if (n < 1) return bad("partitions (n) must be at least 1, got " + std::to_string(n));
  if (options.lookahead && f % 2 != 0) {
    return bad("lookahead needs an even window_frames (its windows overlap by f/2), got " +
               std::to_string(f));
  }
  if (static_cast<int64_t>(f) * n > (1 << 20)) {
    return bad("window_frames x partitions = " + std::to_string(static_cast<int64_t>(f) * n) +
               " frames is too long a queue");
  }
  const int queue_frames = f * n;
  const int steps = options.steps == 0 ? queue_frames : options.steps;
  if (steps < 1 || steps % queue_frames != 0) {
    return bad("steps must be a positive multiple of the queue's window_frames x partitions = " +
               std::to_string(f) + " x " + std::to_string(n) + " = " +
               std::to_string(queue_frames) + " frames (or 0 for " +
               std::to_string(queue_frames) + "), got " + std::to_string(options.steps) +
               ": each iteration moves every frame one slot and steps it steps / " +
               std::to_string(queue_frames) + " times");
  }
  REEL_RETURN_IF_ERROR(models::validate_schedule_args(steps, options.shift));
  if (!std::isfinite(options.guidance)) return bad("guidance must be a finite number");

  FifoLayout out;
  out.window_frames = f;
  out.context_slots = options.lookahead ? f / 2 : 0;
  out.denoising_slots = queue_frames;
  out.slots = out.context_slots + queue_frames;
  out.steps = steps;
  out.steps_per_iteration = steps / queue_frames;
  out.warmup_frames = queue_frames - f;
  out.slot_steps.assign(static_cast<size_t>(out.context_slots), steps);
  for (int p = 0; p < queue_frames; ++p) {
    out.slot_steps.push_back(steps - out.steps_per_iteration * (p + 1));
  }
  if (options.lookahead) {
    for (int w = 0; w < 2 * n; ++w) out.windows.push_back({w * f / 2, w * f / 2 + f / 2});
  } else {
    for (int w = 0; w < n; ++w) out.windows.push_back({w * f, w * f});
  }
  return out;
}

uint64_t fifo_frame_seed(uint64_t seed, int64_t frame) {
  // LibTorch's CPU generator keeps the low 32 bits of its seed: consecutive offsets keep the
  // frames of one video distinct for 2^32 frames, which hashing each frame would not.
  return splitmix64(seed) + static_cast<uint64_t>(frame);
}

torch::Tensor fifo_frame_noise(const std::vector<int64_t>& frame_shape, uint64_t seed,
                               int64_t frame) {
  return make_noise(frame_shape, fifo_frame_seed(seed, frame));
}

// ---- DenoiserWindowRunner ---------------------------------------------------------------------

DenoiserWindowRunner::DenoiserWindowRunner(Denoiser& denoiser, Conditioning cond, double guidance,
                                           bool batched)
    : denoiser_(denoiser), cond_(std::move(cond)), guidance_(guidance), batched_(batched) {}

Expected<std::vector<torch::Tensor>> DenoiserWindowRunner::run(
    const std::vector<FifoWindow>& windows) {
  std::vector<torch::Tensor> outs;
  const int64_t row_factor = uses_guidance(cond_, guidance_) ? 2 : 1;
  try {
    if (!batched_ || windows.size() <= 1) {
      for (const auto& window : windows) {
        auto out = guided_denoise(denoiser_, window.x, window.sigma, cond_, guidance_);
        if (!out.ok()) return out.error();
        ++model_calls_;
        model_rows_ += row_factor * window.x.size(0);
        outs.push_back(std::move(*out));
      }
      return outs;
    }
    const auto count = static_cast<int64_t>(windows.size());
    if (repeated_windows_ != count) {
      auto per_window = [count](const torch::Tensor& t) {
        return t.defined() ? t.repeat({count, 1, 1}) : t;  // [W*B, L, D], window-major
      };
      repeated_ = Conditioning{per_window(cond_.text), per_window(cond_.negative)};
      repeated_windows_ = count;
    }
    std::vector<torch::Tensor> xs;
    std::vector<torch::Tensor> sigmas;
    for (const auto& window : windows) {
      xs.push_back(window.x);
      sigmas.push_back(window.sigma);
    }
    torch::Tensor x = torch::cat(xs, 0);          // [W*B, C, f, H, W]
    torch::Tensor sigma = torch::cat(sigmas, 0);  // [W*B, f]
    auto out = guided_denoise(denoiser_, x, sigma, repeated_, guidance_);
    if (!out.ok()) return out.error();
    ++model_calls_;
    model_rows_ += row_factor * x.size(0);
    int64_t row = 0;
    for (const auto& window : windows) {
      outs.push_back(out->narrow(0, row, window.x.size(0)));  // [B, C, f, H, W]
      row += window.x.size(0);
    }
    return outs;
  } catch (const std::exception& e) {
    return make_error(Errc::internal, std::string("FIFO window run failed: ") + e.what());
  }
}

// ---- FifoQueue ----------------------------------------------------------------------------------

FifoQueue::FifoQueue(FifoLayout layout, FifoState state)
    : layout_(std::move(layout)),
      solver_(state.options.solver,
              models::make_schedule(state.options.solver, layout_.steps, state.options.shift)),
      state_(std::move(state)) {}

Expected<FifoQueue> FifoQueue::from_clip(const torch::Tensor& clip, const FifoOptions& options) {
  auto layout = fifo_layout(options);
  if (!layout.ok()) return layout.error();
  REEL_RETURN_IF_ERROR(check_latent(clip, "first clip"));
  const int f = layout->window_frames;
  if (clip.size(2) != f) {
    return bad("the first clip has " + std::to_string(clip.size(2)) +
               " frames; FIFO starts from a clip of exactly window_frames = " +
               std::to_string(f) + " frames");
  }
  FifoState state;
  state.options = options;
  state.head_frame = -layout->warmup_frames;
  try {
    const torch::Tensor c = clip.to(torch::kFloat32);  // [B, C, f, H, W]
    const std::vector<int64_t> frame_shape = {c.size(0), c.size(1), 1, c.size(3), c.size(4)};
    const models::Schedule schedule =
        models::make_schedule(options.solver, layout->steps, options.shift);
    std::vector<torch::Tensor> slots;
    for (int q = 0; q < layout->slots; ++q) {
      const int64_t frame = state.head_frame - layout->context_slots + q;
      const torch::Tensor source = c.narrow(2, std::max<int64_t>(0, frame), 1);  // [B, C, 1, H, W]
      if (q < layout->context_slots) {
        slots.push_back(source);
        continue;
      }
      const int step = layout->slot_steps[static_cast<size_t>(q)];
      const double sigma = schedule.sigmas[static_cast<size_t>(step)];
      slots.push_back(source * (1.0 - sigma) +
                      fifo_frame_noise(frame_shape, options.seed, frame) * sigma);
      state.solver_states.push_back(models::SolverState{.step = step});
    }
    state.queue = torch::cat(slots, 2);  // [B, C, c + L, H, W]
    state.first_clip = c.clone();
  } catch (const std::exception& e) {
    return make_error(Errc::internal, std::string("cannot fill the FIFO queue: ") + e.what());
  }
  return FifoQueue(std::move(*layout), std::move(state));
}

Expected<FifoQueue> FifoQueue::start(Denoiser& denoiser, const Conditioning& cond,
                                     const std::vector<int64_t>& clip_shape,
                                     const FifoOptions& options) {
  auto layout = fifo_layout(options);
  if (!layout.ok()) return layout.error();
  if (clip_shape.size() == 5 && clip_shape[2] != layout->window_frames) {
    return bad("the first clip would have " + std::to_string(clip_shape[2]) +
               " frames; FIFO starts from a clip of exactly window_frames = " +
               std::to_string(layout->window_frames) + " frames");
  }
  const SampleOptions sampling{.steps = layout->steps,
                               .shift = options.shift,
                               .solver = options.solver,
                               .guidance = options.guidance,
                               .seed = options.seed};
  auto clip = sample(denoiser, cond, clip_shape, sampling);
  if (!clip.ok()) return clip.error();
  return from_clip(clip->latent, options);
}

Expected<FifoQueue> FifoQueue::from_state(FifoState state) {
  auto layout = fifo_layout(state.options);
  if (!layout.ok()) return layout.error();
  REEL_RETURN_IF_ERROR(check_latent(state.queue, "FIFO queue"));
  if (state.queue.size(2) != layout->slots || state.queue.scalar_type() != torch::kFloat32) {
    return bad("FIFO queue must be float32 [B, C, " + std::to_string(layout->slots) +
               ", H, W] for these options, got " + shape_str(state.queue) + " " +
               std::string(c10::toString(state.queue.scalar_type())));
  }
  if (state.solver_states.size() != static_cast<size_t>(layout->denoising_slots)) {
    return bad("FIFO state has " + std::to_string(state.solver_states.size()) +
               " solver states; the queue has " + std::to_string(layout->denoising_slots) +
               " denoising slots");
  }
  const auto& q = state.queue;
  const std::vector<int64_t> frame_shape = {q.size(0), q.size(1), 1, q.size(3), q.size(4)};
  for (int p = 0; p < layout->denoising_slots; ++p) {
    REEL_RETURN_IF_ERROR(detail::check_solver_state(
        state.solver_states[static_cast<size_t>(p)],
        layout->slot_steps[static_cast<size_t>(layout->context_slots + p)], frame_shape,
        "solver state of denoising slot " + std::to_string(p), "the layout puts it at", "not one frame"));
  }
  if (state.head_frame < -layout->warmup_frames) {
    return bad("FIFO head frame " + std::to_string(state.head_frame) + " is before the warm-up's " +
               std::to_string(-layout->warmup_frames));
  }
  if (state.head_frame < layout->window_frames) {
    const std::vector<int64_t> clip_shape = {q.size(0), q.size(1), layout->window_frames, q.size(3),
                                             q.size(4)};
    if (!state.first_clip.defined() || state.first_clip.sizes().vec() != clip_shape ||
        state.first_clip.scalar_type() != torch::kFloat32) {
      return bad("FIFO head frame " + std::to_string(state.head_frame) +
                 " is inside the first clip, so the state needs the first clip, float32 with " +
                 std::to_string(layout->window_frames) + " frames shaped like the queue's, got " +
                 shape_str(state.first_clip));
    }
  } else {
    state.first_clip = torch::Tensor();
  }
  return FifoQueue(std::move(*layout), std::move(state));
}

FifoState FifoQueue::state() const {
  FifoState out;
  out.options = state_.options;
  out.queue = state_.queue.clone();
  out.head_frame = state_.head_frame;
  if (state_.first_clip.defined()) out.first_clip = state_.first_clip.clone();
  for (const auto& st : state_.solver_states) out.solver_states.push_back(clone_state(st));
  return out;
}

int64_t FifoQueue::tensor_bytes() const {
  int64_t bytes = storage_bytes(state_.queue) + storage_bytes(state_.first_clip);
  for (const auto& st : state_.solver_states) {
    for (const auto& h : st.x0_history) bytes += storage_bytes(h);
    bytes += storage_bytes(st.last_sample);
  }
  return bytes;
}

Expected<FifoStats> FifoQueue::run(Denoiser& denoiser, const Conditioning& cond,
                                   int64_t total_frames, const FrameCallback& on_frame) {
  const int64_t batch = state_.queue.size(0);
  if (!cond.text.defined() || cond.text.dim() != 3 || cond.text.size(0) != batch) {
    return bad("text embedding must be [B, L, D] with B = " + std::to_string(batch) +
               " (the queue's batch), got " + shape_str(cond.text));
  }
  DenoiserWindowRunner runner(denoiser, cond, state_.options.guidance,
                              state_.options.batch_windows);
  auto stats = run(runner, total_frames, on_frame);
  if (stats.ok()) {
    stats->model_calls = runner.model_calls();
    stats->model_rows = runner.model_rows();
  }
  return stats;
}

Expected<FifoStats> FifoQueue::run(WindowRunner& runner, int64_t total_frames,
                                   const FrameCallback& on_frame) {
  if (total_frames < layout_.window_frames) {
    return bad("FIFO needs at least window_frames = " + std::to_string(layout_.window_frames) +
               " frames, got " + std::to_string(total_frames) +
               "; sample a video this short with pipeline::sample");
  }
  const auto start = std::chrono::steady_clock::now();
  FifoStats stats;
  while (state_.head_frame < total_frames) {
    REEL_RETURN_IF_ERROR(step_counted(runner, on_frame, stats));
  }
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return stats;
}

Status FifoQueue::step(WindowRunner& runner, const FrameCallback& on_frame) {
  FifoStats stats;
  return step_counted(runner, on_frame, stats);
}

// Works on copies (tensors are never written in place, so copying the handles suffices) and
// commits only after the callback accepted the frame: an error leaves the state untouched.
Status FifoQueue::step_counted(WindowRunner& runner, const FrameCallback& on_frame,
                               FifoStats& stats) {
  const int f = layout_.window_frames;
  const int c = layout_.context_slots;
  const int64_t head = state_.head_frame;
  try {
    torch::Tensor queue = state_.queue;  // [B, C, c + L, H, W]
    std::vector<models::SolverState> states = state_.solver_states;
    const int64_t batch = queue.size(0);
    const models::Prediction prediction = runner.prediction();
    torch::Tensor popped;  // [B, C, 1, H, W]
    for (int pass = 0; pass < layout_.steps_per_iteration; ++pass) {
      std::vector<float> slot_sigma(static_cast<size_t>(layout_.slots), 0.0F);
      for (int p = 0; p < layout_.denoising_slots; ++p) {
        slot_sigma[static_cast<size_t>(c + p)] =
            static_cast<float>(solver_.sigma(states[static_cast<size_t>(p)]));
      }
      const torch::Tensor sigmas = torch::tensor(slot_sigma, torch::kFloat32);  // [c + L]
      std::vector<FifoWindow> windows;
      for (const auto& span : layout_.windows) {
        windows.push_back(FifoWindow{
            .span = span,
            .first_frame = head - c + span.first_slot,
            .x = queue.narrow(2, span.first_slot, f),  // [B, C, f, H, W]
            .sigma = sigmas.narrow(0, span.first_slot, f).unsqueeze(0).expand({batch, f})
                         .contiguous(),  // [B, f]
        });
      }
      auto outs = runner.run(windows);
      if (!outs.ok()) return outs.error();
      std::vector<torch::Tensor> inputs;
      for (const auto& w : windows) inputs.push_back(w.x);
      REEL_RETURN_IF_ERROR(detail::check_outputs(*outs, inputs, "window runner", "window "));
      stats.windows += static_cast<int64_t>(windows.size());

      std::vector<torch::Tensor> next(static_cast<size_t>(layout_.slots));
      for (int q = 0; q < c; ++q) next[static_cast<size_t>(q)] = queue.narrow(2, q, 1);
      for (size_t w = 0; w < windows.size(); ++w) {
        const FifoWindowSpan& span = windows[w].span;
        for (int q = span.write_from; q < span.first_slot + f; ++q) {
          next[static_cast<size_t>(q)] = solver_.step_output(
              states[static_cast<size_t>(q - c)], (*outs)[w].narrow(2, q - span.first_slot, 1),
              prediction, queue.narrow(2, q, 1));
        }
      }
      popped = next[static_cast<size_t>(c)];
      queue = torch::cat(next, 2);
    }
    // A frame of the first clip leaves as the clip has it (see the top of fifo.hpp), and enters
    // the context so.
    torch::Tensor first_clip = state_.first_clip;
    if (head >= 0 && head < f) {
      popped = first_clip.narrow(2, head, 1);
      queue = torch::cat({queue.narrow(2, 0, c), popped, queue.narrow(2, c + 1, layout_.slots - c - 1)}, 2);
      if (head == f - 1) first_clip = torch::Tensor();
    }

    // Pop: slot 0 leaves (the oldest context frame, or the head itself without lookahead), the
    // clean head becomes the newest context frame; frame head + L enters at the tail as noise.
    const std::vector<int64_t> frame_shape = {batch, queue.size(1), 1, queue.size(3),
                                              queue.size(4)};
    torch::Tensor tail =
        fifo_frame_noise(frame_shape, state_.options.seed, head + layout_.denoising_slots);
    torch::Tensor next_queue = torch::cat({queue.narrow(2, 1, layout_.slots - 1), tail}, 2);
    states.erase(states.begin());
    states.push_back(models::SolverState{});

    if (head >= 0) {
      if (on_frame) REEL_RETURN_IF_ERROR(on_frame(head, popped));
      ++stats.frames;
    }
    state_.queue = std::move(next_queue);
    state_.solver_states = std::move(states);
    state_.first_clip = std::move(first_clip);
    state_.head_frame = head + 1;
    ++stats.iterations;
  } catch (const std::exception& e) {
    return make_error(Errc::internal, std::string("FIFO iteration failed: ") + e.what());
  }
  return {};
}

}  // namespace reel::pipeline
