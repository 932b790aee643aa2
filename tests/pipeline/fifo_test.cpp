#include "pipeline/fifo.hpp"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "pipeline/sampler.hpp"

namespace reel::pipeline {
namespace {

using models::Prediction;
using models::SolverKind;

constexpr SolverKind kAllSolvers[] = {SolverKind::euler, SolverKind::unipc, SolverKind::dpmpp};
constexpr int64_t kB = 2, kC = 3, kH = 4, kW = 4;

// The clean target of video frame k: a fixed pattern plus 0.1 k everywhere, so frames differ.
torch::Tensor target_frame(int64_t k) {
  static const torch::Tensor pattern = make_noise({1, kC, 1, kH, kW}, 77);
  return pattern + 0.1 * static_cast<double>(k);  // [1, C, 1, H, W]
}

// A model that knows the video. Its x0 prediction for a frame of video index k is
// level * target_frame(k) + keep * x, with level the mean of the row's text (so guidance
// matters). It finds k from the frame's sigma, which names the frame's denoising slot (every
// slot has levels of its own), and the queue's head frame. Context frames (sigma 0) predict
// x0 = x. Frames at window offsets below `poison_below` get NaN, to show they are never used.
class VideoFake : public Denoiser {
 public:
  VideoFake(Prediction prediction, const FifoOptions& options, double keep = 0.0)
      : prediction_(prediction),
        layout_(*fifo_layout(options)),
        schedule_(models::make_schedule(options.solver, layout_.steps, options.shift)),
        keep_(keep) {}

  void follow(const FifoQueue& queue) { queue_ = &queue; }

  Expected<torch::Tensor> denoise(const torch::Tensor& x, const torch::Tensor& sigma,
                                  const torch::Tensor& text) override {
    rows.push_back(x.size(0));
    sigmas.push_back(sigma.clone());
    const auto s = sigma.accessor<float, 2>();
    const torch::Tensor level = text.mean({1, 2});  // [R]
    std::vector<torch::Tensor> out_rows;
    for (int64_t r = 0; r < x.size(0); ++r) {
      std::vector<torch::Tensor> frames;
      for (int64_t j = 0; j < x.size(2); ++j) {
        const torch::Tensor xf = x.slice(0, r, r + 1).slice(2, j, j + 1);  // [1, C, 1, H, W]
        const float sj = s[r][j];
        torch::Tensor x0 =
            sj == 0.0F ? xf : level[r].item<double>() * target_frame(frame_at(sj)) + keep_ * xf;
        torch::Tensor out = prediction_ == Prediction::sample ? x0
                            : sj == 0.0F                      ? torch::zeros_like(xf)
                                                              : (xf - x0) / sj;
        if (j < poison_below) out = torch::full_like(out, NAN);
        frames.push_back(out);
      }
      out_rows.push_back(torch::cat(frames, 2));
    }
    return torch::cat(out_rows, 0);
  }

  Prediction prediction() const override { return prediction_; }

  // Slot p holds steps S - m(p + 1) .. S - m p - 1 during an iteration.
  int64_t frame_at(float sigma) const {
    const int S = layout_.steps;
    const int m = layout_.steps_per_iteration;
    for (int step = 0; step < S; ++step) {
      if (static_cast<float>(schedule_.sigmas[static_cast<size_t>(step)]) == sigma) {
        return queue_->head_frame() + (S - step - 1) / m;
      }
    }
    ADD_FAILURE() << "sigma " << sigma << " is no step of the schedule";
    return 0;
  }

  std::vector<int64_t> rows;
  std::vector<torch::Tensor> sigmas;
  int64_t poison_below = 0;

 private:
  Prediction prediction_;
  FifoLayout layout_;
  models::Schedule schedule_;
  double keep_;
  const FifoQueue* queue_ = nullptr;
};

FifoOptions small_options(bool lookahead, SolverKind solver = SolverKind::unipc, int steps = 0) {
  FifoOptions o;
  o.window_frames = 4;
  o.partitions = 2;
  o.lookahead = lookahead;
  o.steps = steps;
  o.solver = solver;
  o.shift = 3.0;
  o.guidance = 1.0;
  o.seed = 3;
  return o;
}

torch::Tensor first_clip(int64_t frames = 4) { return make_noise({kB, kC, frames, kH, kW}, 9); }

// Constant text embeddings; a negative level of 0 means "no negative prompt".
Conditioning conditioning(float positive, float negative) {
  return Conditioning{torch::full({kB, 5, 6}, positive),
                      negative == 0.0F ? torch::Tensor() : torch::full({kB, 5, 6}, negative)};
}

struct Video {
  std::vector<int64_t> index;
  std::vector<torch::Tensor> frames;
  FrameCallback collect() {
    return [this](int64_t k, const torch::Tensor& latent) -> Status {
      index.push_back(k);
      frames.push_back(latent);
      return {};
    };
  }
};

// A fresh queue from first_clip() run to `total` frames with a VideoFake of `keep`.
Video run_video(const FifoOptions& options, Prediction prediction, double keep,
                const Conditioning& cond, int64_t total) {
  Video video;
  auto queue = FifoQueue::from_clip(first_clip(), options);
  EXPECT_TRUE(queue.ok()) << queue.error().message;
  if (!queue.ok()) return video;
  VideoFake model(prediction, options, keep);
  model.follow(*queue);
  auto stats = queue->run(model, cond, total, video.collect());
  EXPECT_TRUE(stats.ok()) << stats.error().message;
  return video;
}

void expect_same_frames(const Video& a, const Video& b) {
  ASSERT_EQ(a.index, b.index);
  for (size_t i = 0; i < a.frames.size(); ++i) {
    EXPECT_TRUE(torch::equal(a.frames[i], b.frames[i])) << "frame " << a.index[i];
  }
}

template <class T>
void expect_invalid(const Expected<T>& result, const std::string& words) {
  ASSERT_FALSE(result.ok()) << "expected an error mentioning '" << words << "'";
  EXPECT_EQ(result.error().code, Errc::invalid_argument) << result.error().message;
  EXPECT_NE(result.error().message.find(words), std::string::npos) << result.error().message;
}

TEST(FifoLayout, PutsEachSlotAtItsDocumentedStepRisingFromHeadToTail) {
  auto plain = fifo_layout(small_options(false, SolverKind::unipc, 16));
  ASSERT_TRUE(plain.ok()) << plain.error().message;
  EXPECT_EQ(plain->context_slots, 0);
  EXPECT_EQ(plain->denoising_slots, 8);
  EXPECT_EQ(plain->slots, 8);
  EXPECT_EQ(plain->steps_per_iteration, 2);
  EXPECT_EQ(plain->warmup_frames, 4);
  EXPECT_EQ(plain->slot_steps, (std::vector<int>{14, 12, 10, 8, 6, 4, 2, 0}));
  ASSERT_EQ(plain->windows.size(), 2U);
  EXPECT_EQ(plain->windows[1].first_slot, 4);
  EXPECT_EQ(plain->windows[1].write_from, 4);

  auto ahead = fifo_layout(small_options(true));  // steps 0: one step per slot, as the paper
  ASSERT_TRUE(ahead.ok()) << ahead.error().message;
  EXPECT_EQ(ahead->steps, 8);
  EXPECT_EQ(ahead->context_slots, 2);
  EXPECT_EQ(ahead->slots, 10);
  EXPECT_EQ(ahead->slot_steps, (std::vector<int>{8, 8, 7, 6, 5, 4, 3, 2, 1, 0}));
  ASSERT_EQ(ahead->windows.size(), 4U);
  for (int w = 0; w < 4; ++w) {
    EXPECT_EQ(ahead->windows[static_cast<size_t>(w)].first_slot, 2 * w);
    EXPECT_EQ(ahead->windows[static_cast<size_t>(w)].write_from, 2 * w + 2);
  }

  // Noise levels rise strictly from the head to the tail, which starts at the schedule's top.
  models::Schedule schedule = models::make_schedule(SolverKind::unipc, 8, 3.0);
  for (int q = ahead->context_slots + 1; q < ahead->slots; ++q) {
    EXPECT_GT(schedule.sigmas[static_cast<size_t>(ahead->slot_steps[static_cast<size_t>(q)])],
              schedule.sigmas[static_cast<size_t>(ahead->slot_steps[static_cast<size_t>(q - 1)])]);
  }
  EXPECT_EQ(ahead->slot_steps.back(), 0);
}

TEST(FifoQueue, ForwardNoisesTheFirstClipIntoEachSlotsLevel) {
  FifoOptions options = small_options(true, SolverKind::dpmpp);
  torch::Tensor clip = first_clip();
  auto queue = FifoQueue::from_clip(clip, options);
  ASSERT_TRUE(queue.ok()) << queue.error().message;
  FifoState state = queue->state();
  const FifoLayout& layout = queue->layout();
  EXPECT_EQ(state.head_frame, -4);
  EXPECT_EQ(state.queue.sizes(), torch::IntArrayRef({kB, kC, 10, kH, kW}));
  ASSERT_EQ(state.solver_states.size(), 8U);
  models::Schedule schedule = models::make_schedule(SolverKind::dpmpp, 8, 3.0);
  for (int q = 0; q < layout.slots; ++q) {
    const int64_t frame = state.head_frame - layout.context_slots + q;  // video frame in slot q
    torch::Tensor source = clip.narrow(2, std::max<int64_t>(0, frame), 1);
    torch::Tensor slot = state.queue.narrow(2, q, 1);
    if (q < layout.context_slots) {
      EXPECT_TRUE(torch::equal(slot, source)) << "context slot " << q;
      continue;
    }
    const int step = layout.slot_steps[static_cast<size_t>(q)];
    const double sigma = schedule.sigmas[static_cast<size_t>(step)];
    torch::Tensor noise = fifo_frame_noise({kB, kC, 1, kH, kW}, options.seed, frame);
    EXPECT_TRUE(torch::allclose(slot, (1.0 - sigma) * source + sigma * noise, 1e-6, 1e-6))
        << "slot " << q;
    EXPECT_EQ(state.solver_states[static_cast<size_t>(q - 2)].step, step);
  }
}

TEST(FifoQueue, EmitsTheFirstClipAsItIsAndMakesItsLastFramesTheContext) {
  const Conditioning cond = conditioning(1.0F, 0.0F);
  FifoOptions options = small_options(true, SolverKind::unipc, 16);
  const torch::Tensor clip = first_clip();
  auto queue = FifoQueue::from_clip(clip, options);
  ASSERT_TRUE(queue.ok()) << queue.error().message;
  VideoFake model(Prediction::velocity, options, 0.5);  // re-denoising would change every frame
  model.follow(*queue);
  Video video;
  ASSERT_TRUE(queue->run(model, cond, 4, video.collect()).ok());
  ASSERT_EQ(video.frames.size(), 4U);
  for (int64_t k = 0; k < 4; ++k) {
    EXPECT_TRUE(torch::equal(video.frames[static_cast<size_t>(k)], clip.narrow(2, k, 1)))
        << "frame " << k;
  }
  // Frame 4, the first new one, is denoised with frames 2 and 3 of the clip as its context.
  const FifoState state = queue->state();
  EXPECT_EQ(state.head_frame, 4);
  EXPECT_TRUE(torch::equal(state.queue.narrow(2, 0, 2), clip.narrow(2, 2, 2)));
  EXPECT_FALSE(state.first_clip.defined());  // no longer needed
}

TEST(FifoQueue, PopsEveryVideoFrameCleanAndInOrderForEverySolver) {
  const Conditioning cond = conditioning(1.0F, 0.0F);
  for (bool lookahead : {false, true}) {
    for (Prediction prediction : {Prediction::velocity, Prediction::sample}) {
      for (SolverKind solver : kAllSolvers) {
        for (int steps : {8, 16}) {
          SCOPED_TRACE(std::string(models::solver_kind_name(solver)) + " " +
                       models::prediction_name(prediction) + (lookahead ? " lookahead" : "") +
                       " steps " + std::to_string(steps));
          FifoOptions options = small_options(lookahead, solver, steps);
          auto queue = FifoQueue::from_clip(first_clip(), options);
          ASSERT_TRUE(queue.ok()) << queue.error().message;
          VideoFake model(prediction, options);
          model.follow(*queue);
          Video video;
          auto stats = queue->run(model, cond, 11, video.collect());
          ASSERT_TRUE(stats.ok()) << stats.error().message;
          EXPECT_EQ(stats->iterations, 11 + 4);  // 4 warm-up frames are dropped
          EXPECT_EQ(stats->frames, 11);
          ASSERT_EQ(video.index.size(), 11U);
          for (int64_t k = 0; k < 11; ++k) {
            EXPECT_EQ(video.index[static_cast<size_t>(k)], k);
            const torch::Tensor& frame = video.frames[static_cast<size_t>(k)];
            ASSERT_EQ(frame.sizes(), torch::IntArrayRef({kB, kC, 1, kH, kW}));
            // The first clip's frames as they are, then what the model makes of each frame.
            const torch::Tensor expect =
                k < 4 ? first_clip().narrow(2, k, 1) : target_frame(k).expand_as(frame);
            EXPECT_TRUE(torch::allclose(frame, expect, 1e-4, 1e-4)) << "frame " << k;
          }
          EXPECT_EQ(queue->head_frame(), 11);
        }
      }
    }
  }
}

TEST(FifoQueue, GivesTheModelEachSlotsSigmaAndWithLookaheadUsesOnlySecondHalves) {
  FifoOptions options = small_options(true, SolverKind::euler, 16);  // m = 2 passes per iteration
  auto queue = FifoQueue::from_clip(first_clip(), options);
  ASSERT_TRUE(queue.ok());
  VideoFake model(Prediction::sample, options);
  model.follow(*queue);
  model.poison_below = 2;  // first halves answer NaN
  Video video;
  auto stats = queue->run(model, conditioning(1.0F, 0.0F), 6, video.collect());
  ASSERT_TRUE(stats.ok()) << stats.error().message;
  ASSERT_EQ(video.frames.size(), 6U);
  for (int64_t k = 4; k < 6; ++k) {  // frames 0 .. 3 are the first clip's
    EXPECT_TRUE(torch::allclose(video.frames[static_cast<size_t>(k)],
                                target_frame(k).expand({kB, kC, 1, kH, kW}), 1e-5, 1e-5));
  }

  // The first iteration's two passes: 4 windows of B rows each; pass u sees slot q at step
  // slot_steps[q] + u (context slots at sigma 0).
  const FifoLayout& layout = queue->layout();
  models::Schedule schedule = models::make_schedule(SolverKind::euler, 16, 3.0);
  ASSERT_GE(model.sigmas.size(), 2U);
  for (int pass = 0; pass < 2; ++pass) {
    const torch::Tensor& sigma = model.sigmas[static_cast<size_t>(pass)];  // [4 * B, f]
    ASSERT_EQ(sigma.sizes(), torch::IntArrayRef({4 * kB, 4}));
    for (int w = 0; w < 4; ++w) {
      for (int j = 0; j < 4; ++j) {
        const int q = layout.windows[static_cast<size_t>(w)].first_slot + j;
        const float expect = q < layout.context_slots
                                 ? 0.0F
                                 : static_cast<float>(schedule.sigmas[static_cast<size_t>(
                                       layout.slot_steps[static_cast<size_t>(q)] + pass)]);
        for (int64_t b = 0; b < kB; ++b) {
          EXPECT_EQ(sigma[w * kB + b][j].item<float>(), expect) << "window " << w << " frame " << j;
        }
      }
    }
  }

  // Without lookahead every window writes its first half: the poison comes through.
  FifoOptions plain = small_options(false, SolverKind::euler, 16);
  auto queue2 = FifoQueue::from_clip(first_clip(), plain);
  ASSERT_TRUE(queue2.ok());
  VideoFake poisoned(Prediction::sample, plain);
  poisoned.follow(*queue2);
  poisoned.poison_below = 2;
  Video bad;
  ASSERT_TRUE(queue2->run(poisoned, conditioning(1.0F, 0.0F), 5, bad.collect()).ok());
  EXPECT_TRUE(torch::isnan(bad.frames.back()).any().item<bool>());  // frame 4, the first new one
}

TEST(FifoQueue, BatchesTheWindowsOfAPassInOneCallOrCallsPerWindowWithEqualResults) {
  const Conditioning cond = conditioning(1.0F, 0.5F);
  FifoOptions options = small_options(true, SolverKind::unipc, 16);
  options.guidance = 3.0;
  Video batched_video, split_video;
  for (bool batched : {true, false}) {
    options.batch_windows = batched;
    auto queue = FifoQueue::from_clip(first_clip(), options);
    ASSERT_TRUE(queue.ok());
    VideoFake model(Prediction::velocity, options, 0.3);
    model.follow(*queue);
    Video& video = batched ? batched_video : split_video;
    auto stats = queue->run(model, cond, 7, video.collect());
    ASSERT_TRUE(stats.ok()) << stats.error().message;
    const int64_t passes = (7 + 4) * 2;
    if (batched) {  // one call of 2 (guidance) x 4 windows x B rows per pass
      EXPECT_EQ(stats->model_calls, passes);
      for (int64_t rows : model.rows) EXPECT_EQ(rows, 2 * 4 * kB);
    } else {  // 4 calls of 2 x B rows per pass
      EXPECT_EQ(stats->model_calls, passes * 4);
      for (int64_t rows : model.rows) EXPECT_EQ(rows, 2 * kB);
    }
    EXPECT_EQ(stats->model_calls, static_cast<int64_t>(model.rows.size()));
    EXPECT_EQ(stats->model_rows, passes * 2 * 4 * kB);
    EXPECT_EQ(stats->windows, passes * 4);
  }
  expect_same_frames(batched_video, split_video);

  // Guidance extrapolates the targets: 0.5 + 3 (1 - 0.5) = 2, when the prediction ignores x.
  Video guided = run_video(options, Prediction::sample, 0.0, cond, 5);
  ASSERT_EQ(guided.frames.size(), 5U);
  EXPECT_TRUE(torch::allclose(guided.frames[4], 2.0 * target_frame(4).expand({kB, kC, 1, kH, kW}),
                              1e-5, 1e-5));
}

TEST(FifoQueue, HoldsTheSameTensorBytesOverThousandsOfFrames) {
  // A model that keeps half of its input, so every frame depends on its noise and history.
  class Keeper : public Denoiser {
   public:
    Expected<torch::Tensor> denoise(const torch::Tensor& x, const torch::Tensor&,
                                    const torch::Tensor&) override {
      return 0.5 * x;
    }
    Prediction prediction() const override { return Prediction::sample; }
  } model;
  FifoOptions options = small_options(true, SolverKind::unipc, 0);
  options.window_frames = 2;  // f = 2, n = 2: 4 denoising slots, 1 context slot
  auto queue = FifoQueue::from_clip(first_clip(2), options);
  ASSERT_TRUE(queue.ok()) << queue.error().message;
  const int64_t frame_bytes = kB * kC * kH * kW * 4;
  std::vector<int64_t> bytes;
  auto stats = queue->run(model, conditioning(1.0F, 0.0F), 2500,
                          [&](int64_t k, const torch::Tensor&) -> Status {
                            if (k == 100 || k == 1000 || k == 1800 || k == 2499) {
                              bytes.push_back(queue->tensor_bytes());
                            }
                            return {};
                          });
  ASSERT_TRUE(stats.ok()) << stats.error().message;
  ASSERT_EQ(bytes.size(), 4U);
  for (int64_t b : bytes) EXPECT_EQ(b, bytes.front());
  // The queue (5 frames) and at most 3 frames of solver history per denoising slot.
  EXPECT_LE(bytes.front(), (5 + 3 * 4) * frame_bytes);
  EXPECT_EQ(queue->state().queue.sizes(), torch::IntArrayRef({kB, kC, 5, kH, kW}));
}

TEST(FifoQueue, SameSeedGivesTheSameVideoAndOtherSeedsDiffer) {
  const Conditioning cond = conditioning(1.0F, 0.0F);
  FifoOptions options = small_options(true, SolverKind::dpmpp);
  Video a = run_video(options, Prediction::velocity, 0.5, cond, 6);
  Video b = run_video(options, Prediction::velocity, 0.5, cond, 6);
  options.seed = 4;
  Video c = run_video(options, Prediction::velocity, 0.5, cond, 6);
  expect_same_frames(a, b);
  ASSERT_EQ(c.frames.size(), 6U);
  EXPECT_FALSE(torch::allclose(a.frames[5], c.frames[5]));

  const std::vector<int64_t> shape = {kB, kC, 1, kH, kW};
  EXPECT_TRUE(torch::equal(fifo_frame_noise(shape, 3, 10), fifo_frame_noise(shape, 3, 10)));
  EXPECT_FALSE(torch::equal(fifo_frame_noise(shape, 3, 10), fifo_frame_noise(shape, 3, 11)));
  EXPECT_FALSE(torch::equal(fifo_frame_noise(shape, 3, 10), fifo_frame_noise(shape, 4, 10)));
}

TEST(FifoQueue, ResumesFromASavedStateToTheVideoOfAnUninterruptedRun) {
  const Conditioning cond = conditioning(1.0F, 0.0F);
  FifoOptions options = small_options(true, SolverKind::unipc, 16);
  const Video whole = run_video(options, Prediction::velocity, 0.5, cond, 12);
  ASSERT_EQ(whole.frames.size(), 12U);

  // After frame 4; inside the first clip; in the warm-up (two iterations in).
  for (int64_t stop : {5, 2, -2}) {
    SCOPED_TRACE("stop at " + std::to_string(stop));
    Video video;
    FifoState saved;
    {
      auto queue = FifoQueue::from_clip(first_clip(), options);
      ASSERT_TRUE(queue.ok());
      VideoFake model(Prediction::velocity, options, 0.5);
      model.follow(*queue);
      DenoiserWindowRunner runner(model, cond, options.guidance, options.batch_windows);
      while (queue->head_frame() < stop) ASSERT_TRUE(queue->step(runner, video.collect()).ok());
      EXPECT_EQ(queue->head_frame(), stop);
      saved = queue->state();
    }  // the first queue is gone; only the saved state is left
    auto resumed = FifoQueue::from_state(std::move(saved));
    ASSERT_TRUE(resumed.ok()) << resumed.error().message;
    VideoFake model(Prediction::velocity, options, 0.5);
    model.follow(*resumed);
    ASSERT_TRUE(resumed->run(model, cond, 12, video.collect()).ok());
    expect_same_frames(video, whole);
  }
}

TEST(FifoQueue, ACallbackErrorLeavesTheQueueBeforeThatFrame) {
  const Conditioning cond = conditioning(1.0F, 0.0F);
  FifoOptions options = small_options(false, SolverKind::unipc, 16);
  const Video whole = run_video(options, Prediction::sample, 0.5, cond, 9);
  auto queue = FifoQueue::from_clip(first_clip(), options);
  ASSERT_TRUE(queue.ok());
  VideoFake model(Prediction::sample, options, 0.5);
  model.follow(*queue);
  Video video;
  auto failed = queue->run(model, cond, 9, [&](int64_t k, const torch::Tensor& latent) -> Status {
    if (k == 6) return make_error(Errc::io_error, "disk full");
    return video.collect()(k, latent);
  });
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.error().code, Errc::io_error);
  EXPECT_EQ(queue->head_frame(), 6);
  ASSERT_TRUE(queue->run(model, cond, 9, video.collect()).ok());
  expect_same_frames(video, whole);
}

TEST(FifoQueue, StartSamplesTheFirstClipWithTheSameOptions) {
  class Keeper : public Denoiser {
   public:
    Expected<torch::Tensor> denoise(const torch::Tensor& x, const torch::Tensor&,
                                    const torch::Tensor&) override {
      return 0.25 * x + 1.0;
    }
    Prediction prediction() const override { return Prediction::sample; }
  } keeper;
  const Conditioning cond = conditioning(1.0F, 0.0F);
  FifoOptions options = small_options(true, SolverKind::dpmpp);
  const std::vector<int64_t> shape = {kB, kC, 4, kH, kW};
  auto started = FifoQueue::start(keeper, cond, shape, options);
  ASSERT_TRUE(started.ok()) << started.error().message;
  auto clip = sample(keeper, cond, shape,
                     {.steps = 8, .shift = 3.0, .solver = SolverKind::dpmpp, .guidance = 1.0,
                      .seed = 3});
  ASSERT_TRUE(clip.ok());
  auto direct = FifoQueue::from_clip(clip->latent, options);
  ASSERT_TRUE(direct.ok());
  EXPECT_TRUE(torch::equal(started->state().queue, direct->state().queue));
}

TEST(FifoQueue, RejectsBadInputWithClearMessages) {
  FifoOptions o = small_options(true);
  o.window_frames = 0;
  expect_invalid(fifo_layout(o), "window_frames (f) must be at least 1");
  o = small_options(true);
  o.partitions = 0;
  expect_invalid(fifo_layout(o), "partitions (n) must be at least 1");
  o = small_options(true);
  o.window_frames = 3;
  expect_invalid(fifo_layout(o), "lookahead needs an even window_frames");
  o = small_options(false, SolverKind::unipc, 12);
  expect_invalid(fifo_layout(o),
                 "steps must be a positive multiple of the queue's window_frames x partitions = "
                 "4 x 2 = 8");
  o = small_options(false, SolverKind::unipc, 4);
  expect_invalid(fifo_layout(o), "got 4");
  o = small_options(false);
  o.shift = 0.0;
  expect_invalid(fifo_layout(o), "shift");

  const FifoOptions good = small_options(true);
  expect_invalid(FifoQueue::from_clip(first_clip(3), good),
                 "the first clip has 3 frames; FIFO starts from a clip of exactly "
                 "window_frames = 4");
  expect_invalid(FifoQueue::from_clip(torch::Tensor(), good), "first clip must be [B, C, F, H, W]");
  expect_invalid(FifoQueue::from_clip(torch::zeros({kB, kC, 4, kH}), good), "first clip must be");
  VideoFake model(Prediction::sample, good);
  expect_invalid(FifoQueue::start(model, conditioning(1.0F, 0.0F), {kB, kC, 2, kH, kW}, good),
                 "would have 2 frames");

  auto queue = FifoQueue::from_clip(first_clip(), good);
  ASSERT_TRUE(queue.ok());
  model.follow(*queue);
  expect_invalid(queue->run(model, conditioning(1.0F, 0.0F), 3, {}),
                 "FIFO needs at least window_frames = 4 frames, got 3");
  expect_invalid(queue->run(model, Conditioning{torch::ones({kB + 1, 5, 6}), {}}, 8, {}),
                 "text embedding must be [B, L, D] with B = 2");

  class WrongRunner : public WindowRunner {
   public:
    Expected<std::vector<torch::Tensor>> run(const std::vector<FifoWindow>& windows) override {
      return std::vector<torch::Tensor>(windows.size() - 1, windows.front().x);
    }
    Prediction prediction() const override { return Prediction::sample; }
  } wrong;
  expect_invalid(queue->run(wrong, 8, {}), "window runner returned 3 outputs for 4 windows");
  EXPECT_EQ(queue->head_frame(), -4);  // nothing moved

  FifoState state = queue->state();
  state.solver_states.pop_back();
  expect_invalid(FifoQueue::from_state(state),
                 "has 7 solver states; the queue has 8 denoising slots");
  state = queue->state();
  state.queue = state.queue.narrow(2, 0, 9);
  expect_invalid(FifoQueue::from_state(state), "FIFO queue must be float32 [B, C, 10, H, W]");
  state = queue->state();
  state.solver_states[3].step += 1;
  expect_invalid(FifoQueue::from_state(state),
                 "solver state of denoising slot 3 is at step 5 but the layout puts it at 4");
  state = queue->state();
  state.solver_states[0].x0_history.push_back(torch::zeros({kB, kC, 2, kH, kW}));
  expect_invalid(FifoQueue::from_state(state), "holds an x0 prediction of");
  state = queue->state();
  state.options.partitions = 3;
  expect_invalid(FifoQueue::from_state(state), "FIFO queue must be float32 [B, C, 14, H, W]");
  state = queue->state();
  state.head_frame = -5;
  expect_invalid(FifoQueue::from_state(state), "before the warm-up");
  state = queue->state();
  state.first_clip = torch::Tensor();
  expect_invalid(FifoQueue::from_state(state), "is inside the first clip, so the state needs the first clip");
  state = queue->state();
  state.first_clip = state.first_clip.narrow(2, 0, 3);
  expect_invalid(FifoQueue::from_state(state), "got [2, 3, 3, 4, 4]");
}

}  // namespace
}  // namespace reel::pipeline
