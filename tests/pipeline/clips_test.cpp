#include "pipeline/clips.hpp"

#include <gtest/gtest.h>
#include <torch/torch.h>

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
constexpr int64_t kB = 2, kCh = 3, kH = 4, kW = 5;

std::vector<int64_t> video_shape(int64_t frames) { return {kB, kCh, frames, kH, kW}; }

// An attention-like model: every output frame mixes all frames of its window with weights that
// rise with the window position (as RoPE makes attention depend on position), plus a target set
// by the text, so context, its order and guidance all matter; mix = 0 makes it frame by frame.
// Rows are computed independently and with elementwise arithmetic only, so batching rows changes
// no bit. It answers in its prediction type and records every call.
class MixingFake : public Denoiser {
 public:
  explicit MixingFake(Prediction prediction, double mix = 0.3)
      : prediction_(prediction), mix_(mix) {}

  Expected<torch::Tensor> denoise(const torch::Tensor& x, const torch::Tensor& sigma,
                                  const torch::Tensor& text) override {
    inputs.push_back(x.clone());
    sigmas.push_back(sigma.clone());
    rows.push_back(x.size(0));
    const int64_t w = x.size(2);
    const torch::Tensor level = text.select(1, 0).select(1, 0).view({-1, 1, 1, 1, 1});  // [R]
    torch::Tensor context = torch::zeros_like(x.narrow(2, 0, 1));  // [R, Ch, 1, H, W]
    for (int64_t p = 0; p < w; ++p) {
      const double weight = static_cast<double>(p + 1) / static_cast<double>(w * w);
      context = context + x.narrow(2, p, 1) * weight;
    }
    torch::Tensor x0 = x * 0.5 + context * mix_ + level * 0.2;  // [R, Ch, w, H, W]
    if (prediction_ == Prediction::sample) return x0;
    return (x - x0) / sigma.view({x.size(0), 1, w, 1, 1});
  }

  Prediction prediction() const override { return prediction_; }

  std::vector<torch::Tensor> inputs;
  std::vector<torch::Tensor> sigmas;
  std::vector<int64_t> rows;

 private:
  Prediction prediction_;
  double mix_;
};

ClipsOptions small_options(int clips, int context, int global,
                           SolverKind solver = SolverKind::unipc) {
  ClipsOptions o;
  o.clips = clips;
  o.context_frames = context;
  o.global_frames = global;
  o.steps = 6;
  o.shift = 3.0;
  o.solver = solver;
  o.guidance = 1.0;
  o.seed = 5;
  return o;
}

SampleOptions sample_options(const ClipsOptions& o) {
  return {.steps = o.steps, .shift = o.shift, .solver = o.solver, .guidance = o.guidance,
          .seed = o.seed};
}

// Constant text embeddings; a negative level of 0 means "no negative prompt".
Conditioning conditioning(float positive, float negative) {
  return Conditioning{torch::full({kB, 5, 6}, positive),
                      negative == 0.0F ? torch::Tensor() : torch::full({kB, 5, 6}, negative)};
}

struct Clips {
  std::vector<int> index;
  std::vector<int64_t> first_frame;
  std::vector<torch::Tensor> latents;
  ClipCallback collect() {
    return [this](int clip, int64_t first, const torch::Tensor& latent) -> Status {
      index.push_back(clip);
      first_frame.push_back(first);
      latents.push_back(latent);
      return {};
    };
  }
};

// A fresh run of `frames` frames with a MixingFake of `prediction`.
ClipsResult run_video(const ClipsOptions& options, int64_t frames, const Conditioning& cond,
                      Prediction prediction = Prediction::velocity, Clips* clips = nullptr) {
  auto video = VideoClips::start(video_shape(frames), options);
  EXPECT_TRUE(video.ok()) << video.error().message;
  if (!video.ok()) return {};
  MixingFake model(prediction);
  Clips ignored;
  auto result = video->run(model, cond, (clips ? clips : &ignored)->collect());
  EXPECT_TRUE(result.ok()) << result.error().message;
  return result.ok() ? *result : ClipsResult{};
}

template <class T>
void expect_invalid(const Expected<T>& result, const std::string& words) {
  ASSERT_FALSE(result.ok()) << "expected an error mentioning '" << words << "'";
  EXPECT_EQ(result.error().code, Errc::invalid_argument) << result.error().message;
  EXPECT_NE(result.error().message.find(words), std::string::npos) << result.error().message;
}

std::vector<int64_t> range(int64_t from, int64_t to) {
  std::vector<int64_t> out;
  for (int64_t f = from; f < to; ++f) out.push_back(f);
  return out;
}

std::vector<int64_t> join(std::vector<std::vector<int64_t>> parts) {
  std::vector<int64_t> out;
  for (const auto& part : parts) out.insert(out.end(), part.begin(), part.end());
  return out;
}

TEST(ClipsLayout, PutsGlobalThenLeftThenOwnThenRightFramesInEachWindow) {
  // N = 12, C = 3 (n = 4), k = 2, g = 2: global positions 1 and 3 of every clip.
  auto three = clips_layout(12, small_options(3, 2, 2));
  ASSERT_TRUE(three.ok()) << three.error().message;
  EXPECT_EQ(three->clip_frames, 4);
  EXPECT_EQ(three->global_positions, (std::vector<int64_t>{1, 3}));
  ASSERT_EQ(three->windows.size(), 3U);
  const std::vector<int64_t> global = {1, 3, 5, 7, 9, 11};
  const ClipWindowSpan& first = three->windows[0];
  const ClipWindowSpan& middle = three->windows[1];
  const ClipWindowSpan& last = three->windows[2];
  EXPECT_EQ(first.frames, join({global, range(0, 4), {4, 5}}));  // no left neighbour
  EXPECT_EQ(middle.frames, join({global, {2, 3}, range(4, 8), {8, 9}}));
  EXPECT_EQ(last.frames, join({global, {6, 7}, range(8, 12)}));  // no right neighbour
  EXPECT_EQ(first.left_count, 0);
  EXPECT_EQ(first.right_count, 2);
  EXPECT_EQ(first.own_offset, 6);
  EXPECT_EQ(middle.left_count, 2);
  EXPECT_EQ(middle.right_count, 2);
  EXPECT_EQ(middle.own_offset, 8);
  EXPECT_EQ(last.right_count, 0);
  EXPECT_EQ(last.own_offset, 8);
  for (const auto& span : three->windows) {
    EXPECT_EQ(span.global_count, 6);
    EXPECT_EQ(span.first_frame, 4 * span.clip);
  }

  // N = 8, C = 2, k = 1, g = 1: the centre frame 2 of each clip; both clips are edge clips.
  auto two = clips_layout(8, small_options(2, 1, 1));
  ASSERT_TRUE(two.ok()) << two.error().message;
  EXPECT_EQ(two->windows[0].frames, (std::vector<int64_t>{2, 6, 0, 1, 2, 3, 4}));
  EXPECT_EQ(two->windows[1].frames, (std::vector<int64_t>{2, 6, 3, 4, 5, 6, 7}));

  // One clip has no neighbours: the context setting shows nothing.
  auto one = clips_layout(6, small_options(1, 2, 0));
  ASSERT_TRUE(one.ok()) << one.error().message;
  ASSERT_EQ(one->windows.size(), 1U);
  EXPECT_EQ(one->windows[0].frames, range(0, 6));
  EXPECT_EQ(one->windows[0].own_offset, 0);

  // No context at all: every window is its clip.
  auto bare = clips_layout(8, small_options(4, 0, 0));
  ASSERT_TRUE(bare.ok()) << bare.error().message;
  for (const auto& span : bare->windows) {
    EXPECT_EQ(span.frames, range(2 * span.clip, 2 * span.clip + 2));
  }

  // Context as long as a clip, and g up to n: the strata centres floor((2j + 1) n / 2g).
  auto full = clips_layout(8, small_options(2, 4, 4));
  ASSERT_TRUE(full.ok()) << full.error().message;
  EXPECT_EQ(full->global_positions, (std::vector<int64_t>{0, 1, 2, 3}));
  EXPECT_EQ(full->windows[1].frames, join({range(0, 8), range(0, 8)}));
  EXPECT_EQ(clips_layout(10, small_options(2, 1, 2))->global_positions,
            (std::vector<int64_t>{1, 3}));
  EXPECT_EQ(clips_layout(14, small_options(2, 1, 3))->global_positions,
            (std::vector<int64_t>{1, 3, 5}));
}

TEST(VideoClips, ShowsEachClipItsNeighboursEdgeFramesOfTheSameStep) {
  ClipsOptions options = small_options(3, 2, 1);
  auto clips = VideoClips::start(video_shape(12), options);
  ASSERT_TRUE(clips.ok()) << clips.error().message;
  MixingFake model(Prediction::sample);
  DenoiserClipRunner runner(model, conditioning(1.0F, 0.0F), options.guidance, /*batched=*/false);
  const models::Schedule schedule =
      models::make_schedule(options.solver, options.steps, options.shift);
  torch::Tensor previous;  // the video one step earlier
  for (int s = 0; s < options.steps; ++s) {
    SCOPED_TRACE("step " + std::to_string(s));
    const ClipsState now = clips->state();
    const torch::Tensor video = clips->latent();  // [B, Ch, 12, H, W] at step s
    ASSERT_TRUE(clips->step(runner).ok());
    ASSERT_EQ(model.inputs.size(), static_cast<size_t>(3 * (s + 1)));
    for (int c = 0; c < 3; ++c) {
      const ClipWindowSpan& span = clips->layout().windows[static_cast<size_t>(c)];
      const torch::Tensor& input = model.inputs[static_cast<size_t>(3 * s + c)];
      const torch::Tensor frames = torch::tensor(span.frames, torch::kLong);
      EXPECT_TRUE(torch::equal(input, video.index_select(2, frames))) << "clip " << c;
      if (previous.defined()) {
        EXPECT_FALSE(torch::equal(input, previous.index_select(2, frames))) << "clip " << c;
      }
      const auto sigma = static_cast<float>(schedule.sigmas[static_cast<size_t>(s)]);
      EXPECT_TRUE(torch::equal(model.sigmas[static_cast<size_t>(3 * s + c)],
                               torch::full({kB, static_cast<int64_t>(span.frames.size())}, sigma,
                                           torch::kFloat32)));
    }
    // Spelled out for the middle clip (window: 3 global frames, then its left context): its
    // left context is clip 0's last two frames, its right context clip 2's first two, as they
    // are at this step.
    const torch::Tensor& middle = model.inputs[static_cast<size_t>(3 * s + 1)];
    EXPECT_TRUE(torch::equal(middle.narrow(2, 3, 2), now.latents[0].narrow(2, 2, 2)));
    EXPECT_TRUE(torch::equal(middle.narrow(2, 9, 2), now.latents[2].narrow(2, 0, 2)));
    EXPECT_TRUE(torch::equal(middle.narrow(2, 0, 1), now.latents[0].narrow(2, 2, 1)));
    previous = video;
  }
  EXPECT_TRUE(clips->done());
  expect_invalid(clips->windows(), "the clips are done");
  expect_invalid(clips->step(runner), "the clips are done");
}

TEST(VideoClips, BatchedAndPerClipCallsGiveIdenticalLatents) {
  const Conditioning cond = conditioning(1.0F, 0.5F);
  for (SolverKind solver : kAllSolvers) {
    SCOPED_TRACE(models::solver_kind_name(solver));
    ClipsOptions options = small_options(4, 1, 1, solver);  // windows of 9, 10, 10, 9 frames
    options.guidance = 3.0;
    ClipsResult per_clip, batched;
    for (bool batch : {false, true}) {
      options.batch_clips = batch;
      auto clips = VideoClips::start(video_shape(16), options);
      ASSERT_TRUE(clips.ok()) << clips.error().message;
      MixingFake model(Prediction::velocity);
      auto result = clips->run(model, cond, {});
      ASSERT_TRUE(result.ok()) << result.error().message;
      if (batch) {  // the edge clips in one call, the middle ones in another: 2 x 2 x B rows
        EXPECT_EQ(result->stats.model_calls, 2 * options.steps);
        for (int64_t rows : model.rows) EXPECT_EQ(rows, 2 * 2 * kB);
        EXPECT_EQ(model.inputs.front().size(2), 9);
        EXPECT_EQ(model.inputs[1].size(2), 10);
      } else {  // one call of 2 x B rows per clip
        EXPECT_EQ(result->stats.model_calls, 4 * options.steps);
        for (int64_t rows : model.rows) EXPECT_EQ(rows, 2 * kB);
      }
      EXPECT_EQ(result->stats.model_rows, options.steps * 2 * 4 * kB);
      EXPECT_EQ(result->stats.windows, 4 * options.steps);
      (batch ? batched : per_clip) = *result;
    }
    EXPECT_TRUE(torch::equal(batched.latent, per_clip.latent));
  }

  // Without local context every window has the same length: one call per step.
  ClipsOptions options = small_options(3, 0, 2);
  auto clips = VideoClips::start(video_shape(12), options);
  ASSERT_TRUE(clips.ok());
  MixingFake model(Prediction::sample);
  auto result = clips->run(model, conditioning(1.0F, 0.0F), {});
  ASSERT_TRUE(result.ok()) << result.error().message;
  EXPECT_EQ(result->stats.model_calls, options.steps);
  for (int64_t rows : model.rows) EXPECT_EQ(rows, 3 * kB);
}

TEST(VideoClips, WithOneClipAndNoContextEqualsStandardSampling) {
  const Conditioning cond = conditioning(1.0F, 0.5F);
  for (Prediction prediction : {Prediction::velocity, Prediction::sample}) {
    for (SolverKind solver : kAllSolvers) {
      SCOPED_TRACE(std::string(models::solver_kind_name(solver)) + " " +
                   models::prediction_name(prediction));
      ClipsOptions options = small_options(1, 0, 0, solver);
      options.guidance = 2.5;
      MixingFake reference_model(prediction);
      auto reference = sample(reference_model, cond, video_shape(6), sample_options(options));
      ASSERT_TRUE(reference.ok()) << reference.error().message;
      EXPECT_TRUE(torch::equal(run_video(options, 6, cond, prediction).latent, reference->latent));
      options.context_frames = 3;  // no neighbour to take it from
      EXPECT_TRUE(torch::equal(run_video(options, 6, cond, prediction).latent, reference->latent));
    }
  }

  // For a model that looks at one frame at a time, splitting without context changes nothing;
  // with context and a model that mixes frames, it does.
  const ClipsOptions split = small_options(3, 0, 0);
  MixingFake framewise(Prediction::velocity, /*mix=*/0.0);
  auto reference = sample(framewise, cond, video_shape(12), sample_options(split));
  ASSERT_TRUE(reference.ok());
  auto clips = VideoClips::start(video_shape(12), split);
  ASSERT_TRUE(clips.ok());
  MixingFake framewise_clips(Prediction::velocity, 0.0);
  auto result = clips->run(framewise_clips, cond, {});
  ASSERT_TRUE(result.ok()) << result.error().message;
  EXPECT_TRUE(torch::equal(result->latent, reference->latent));
  MixingFake mixing(Prediction::velocity);
  auto whole = sample(mixing, cond, video_shape(12), sample_options(split));
  ASSERT_TRUE(whole.ok());
  EXPECT_FALSE(torch::allclose(run_video(small_options(3, 1, 1), 12, cond).latent, whole->latent));
}

TEST(VideoClips, StartsFromTheWholeVideosNoiseWhateverTheSplit) {
  for (int c : {1, 2, 4}) {
    auto clips = VideoClips::start(video_shape(8), small_options(c, 1, 1));
    ASSERT_TRUE(clips.ok()) << clips.error().message;
    EXPECT_TRUE(torch::equal(clips->latent(), make_noise(video_shape(8), 5))) << c << " clips";
    ASSERT_EQ(clips->state().latents.size(), static_cast<size_t>(c));
  }
}

TEST(VideoClips, SameSeedGivesTheSameVideoAndOtherSeedsDiffer) {
  const Conditioning cond = conditioning(1.0F, 0.0F);
  ClipsOptions options = small_options(3, 1, 1, SolverKind::dpmpp);
  Clips a_clips, b_clips;
  const ClipsResult a = run_video(options, 12, cond, Prediction::velocity, &a_clips);
  const ClipsResult b = run_video(options, 12, cond, Prediction::velocity, &b_clips);
  EXPECT_TRUE(torch::equal(a.latent, b.latent));
  options.seed = 6;
  EXPECT_FALSE(torch::allclose(a.latent, run_video(options, 12, cond).latent));

  // The callback gets each clip once, in order, with its first frame: together, the latent.
  EXPECT_EQ(a_clips.index, (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(a_clips.first_frame, (std::vector<int64_t>{0, 4, 8}));
  EXPECT_TRUE(torch::equal(torch::cat(a_clips.latents, 2), a.latent));
  EXPECT_EQ(a.stats.clips, 3);
  EXPECT_EQ(a.stats.steps, options.steps);
}

TEST(VideoClips, ResumesFromASavedStateToTheVideoOfAnUninterruptedRun) {
  const Conditioning cond = conditioning(1.0F, 0.0F);
  for (SolverKind solver : kAllSolvers) {
    const ClipsOptions options = small_options(3, 2, 1, solver);
    Clips whole_clips;
    const ClipsResult whole = run_video(options, 12, cond, Prediction::velocity, &whole_clips);
    for (int stop : {1, 3, 6}) {  // 6: every step done, no clip given out yet
      SCOPED_TRACE(std::string(models::solver_kind_name(solver)) + " stop after step " +
                   std::to_string(stop));
      ClipsState saved;
      {
        auto clips = VideoClips::start(video_shape(12), options);
        ASSERT_TRUE(clips.ok());
        MixingFake model(Prediction::velocity);
        DenoiserClipRunner runner(model, cond, options.guidance, options.batch_clips);
        for (int s = 0; s < stop; ++s) ASSERT_TRUE(clips->step(runner).ok());
        saved = clips->state();
      }  // the first run is gone; only the saved state is left
      EXPECT_EQ(saved.step, stop);
      auto resumed = VideoClips::from_state(std::move(saved));
      ASSERT_TRUE(resumed.ok()) << resumed.error().message;
      EXPECT_EQ(resumed->step_index(), stop);
      MixingFake model(Prediction::velocity);
      Clips got;
      auto result = resumed->run(model, cond, got.collect());
      ASSERT_TRUE(result.ok()) << result.error().message;
      EXPECT_EQ(result->stats.steps, options.steps - stop);
      EXPECT_TRUE(torch::equal(result->latent, whole.latent));
      ASSERT_EQ(got.index, whole_clips.index);
      for (size_t c = 0; c < got.latents.size(); ++c) {
        EXPECT_TRUE(torch::equal(got.latents[c], whole_clips.latents[c])) << "clip " << c;
      }
    }
  }
}

TEST(VideoClips, ACallbackErrorLeavesTheRemainingClipsToBeOfferedAgain) {
  const Conditioning cond = conditioning(1.0F, 0.0F);
  const ClipsOptions options = small_options(3, 1, 1);
  Clips whole_clips;
  const ClipsResult whole = run_video(options, 12, cond, Prediction::sample, &whole_clips);
  auto clips = VideoClips::start(video_shape(12), options);
  ASSERT_TRUE(clips.ok());
  MixingFake model(Prediction::sample);
  Clips got;
  auto failed = clips->run(model, cond, [&](int c, int64_t first, const torch::Tensor& latent) {
    if (c == 1) return Status(make_error(Errc::io_error, "disk full"));
    return got.collect()(c, first, latent);
  });
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.error().code, Errc::io_error);
  EXPECT_TRUE(clips->done());
  EXPECT_EQ(clips->state().emitted_clips, 1);
  const size_t calls = model.inputs.size();
  auto result = clips->run(model, cond, got.collect());  // survives a save and restore too
  ASSERT_TRUE(result.ok()) << result.error().message;
  EXPECT_EQ(model.inputs.size(), calls);  // no model call: only the clips are offered
  EXPECT_EQ(got.index, (std::vector<int>{0, 1, 2}));
  for (size_t c = 0; c < 3; ++c) {
    EXPECT_TRUE(torch::equal(got.latents[c], whole_clips.latents[c])) << "clip " << c;
  }
  EXPECT_TRUE(torch::equal(result->latent, whole.latent));
}

TEST(ClipsExchange, MatchesAHandComputationAndTheFramesTheWindowsTake) {
  // C = 4, k = 2, g = 1 over [2, 16, 20, 6, 8]: local 2 * 2 * 3 = 12 frames, global
  // 1 * 4 * 3 = 12 frames; a frame is 2 * 16 * 6 * 8 * 4 = 6144 bytes.
  ClipsOptions options = small_options(4, 2, 1);
  options.steps = 30;
  auto exchange = clips_exchange({2, 16, 20, 6, 8}, options);
  ASSERT_TRUE(exchange.ok()) << exchange.error().message;
  EXPECT_EQ(exchange->local_frames, 12);
  EXPECT_EQ(exchange->global_frames, 12);
  EXPECT_EQ(exchange->frame_bytes, 6144);
  EXPECT_EQ(exchange->bytes_per_step, 147456);
  EXPECT_EQ(exchange->bytes_per_run, 4423680);

  // The header's example: Wan 2.1 at 480x832, C = 4, k = 2, g = 2: 36 frames of 399,360 bytes.
  options.global_frames = 2;
  auto wan = clips_exchange({1, 16, 20, 60, 104}, options);
  ASSERT_TRUE(wan.ok());
  EXPECT_EQ(wan->local_frames + wan->global_frames, 36);
  EXPECT_EQ(wan->bytes_per_step, 14376960);

  // One clip exchanges nothing.
  auto alone = clips_exchange({1, 16, 20, 60, 104}, small_options(1, 2, 2));
  ASSERT_TRUE(alone.ok());
  EXPECT_EQ(alone->bytes_per_step, 0);

  // A run counts what its windows took from other clips: the same bytes.
  const ClipsOptions run_options = small_options(4, 1, 2);
  const ClipsResult run = run_video(run_options, 16, conditioning(1.0F, 0.0F));
  auto expected = clips_exchange(video_shape(16), run_options);
  ASSERT_TRUE(expected.ok());
  EXPECT_EQ(expected->local_frames, 2 * 1 * 3);
  EXPECT_EQ(expected->global_frames, 2 * 4 * 3);
  EXPECT_EQ(expected->frame_bytes, kB * kCh * kH * kW * 4);
  EXPECT_EQ(run.stats.exchanged_bytes, expected->bytes_per_run);
}

TEST(VideoClips, RejectsBadInputWithClearMessages) {
  expect_invalid(clips_layout(10, small_options(3, 1, 1)),
                 "frames N = 10 do not split into clips C = 3 of equal length; use a multiple "
                 "of 3 (9 or 12)");
  expect_invalid(clips_layout(2, small_options(3, 0, 0)), "use a multiple of 3 (3)");
  expect_invalid(clips_layout(12, small_options(3, 5, 1)),
                 "context_frames (k) must be in [0, 4] (a clip's 4 frames");
  expect_invalid(clips_layout(12, small_options(3, -1, 1)), "context_frames (k) must be in");
  expect_invalid(clips_layout(12, small_options(3, 1, 5)), "global_frames (g) must be in [0, 4]");
  expect_invalid(clips_layout(12, small_options(0, 1, 1)), "clips (C) must be at least 1, got 0");
  expect_invalid(clips_layout(0, small_options(1, 0, 0)), "at least 1 frame");
  ClipsOptions o = small_options(2, 1, 1);
  o.steps = 0;
  expect_invalid(clips_layout(8, o), "steps must be at least 1");
  o = small_options(2, 1, 1);
  o.shift = 0.0;
  expect_invalid(clips_layout(8, o), "shift");
  o = small_options(2, 1, 1);
  o.guidance = NAN;
  expect_invalid(clips_layout(8, o), "guidance must be a finite number");
  expect_invalid(clips_exchange({2, 3, 8, 4}, small_options(2, 1, 1)),
                 "latent shape must be [B, Ch, N, H, W]");

  const ClipsOptions good = small_options(3, 1, 1);
  expect_invalid(VideoClips::start({kB, kCh, 12, kH}, good), "latent shape must be");
  expect_invalid(VideoClips::start(video_shape(13), good), "frames N = 13 do not split");
  expect_invalid(VideoClips::from_latent(torch::Tensor(), 0, good), "no latent");
  expect_invalid(VideoClips::from_latent(make_noise(video_shape(12), 1), 7, good),
                 "start step 7 outside [0, 6]");

  auto clips = VideoClips::start(video_shape(12), good);
  ASSERT_TRUE(clips.ok());
  MixingFake model(Prediction::sample);
  expect_invalid(clips->run(model, Conditioning{torch::ones({kB + 1, 5, 6}), {}}, {}),
                 "text embedding must be [B, L, D] with B = 2");

  class WrongRunner : public ClipRunner {
   public:
    Expected<std::vector<torch::Tensor>> run(const std::vector<ClipWindow>& windows) override {
      return std::vector<torch::Tensor>(windows.size() - 1, windows.front().x);
    }
    Prediction prediction() const override { return Prediction::sample; }
  } wrong;
  expect_invalid(clips->run(wrong, {}), "clip runner returned 2 outputs for 3 windows");
  EXPECT_EQ(clips->step_index(), 0);  // nothing moved

  ClipsState state = clips->state();
  state.latents.pop_back();
  expect_invalid(VideoClips::from_state(state), "has 2 clip latents for 3 clips");
  state = clips->state();
  state.latents[1] = state.latents[1].narrow(2, 0, 3);
  expect_invalid(VideoClips::from_state(state), "clip latent 1 must be float32 [2, 3, 4, 4, 5]");
  state = clips->state();
  state.latents[2] = state.latents[2].to(torch::kFloat64);
  expect_invalid(VideoClips::from_state(state), "clip latent 2 must be float32");
  state = clips->state();
  state.options.context_frames = 5;
  expect_invalid(VideoClips::from_state(state), "context_frames (k) must be in [0, 4]");
  state = clips->state();
  state.solver_states.pop_back();
  expect_invalid(VideoClips::from_state(state), "has 2 solver states for 3 clips");
  state = clips->state();
  state.step = 2;
  expect_invalid(VideoClips::from_state(state),
                 "solver state of clip 0 is at step 0 but the clips are at step 2");
  state = clips->state();
  state.step = 9;
  expect_invalid(VideoClips::from_state(state), "clips state is at step 9, outside [0, 6]");
  state = clips->state();
  state.solver_states[1].x0_history.push_back(torch::zeros({kB, kCh, 12, kH, kW}));
  expect_invalid(VideoClips::from_state(state), "solver state of clip 1 holds an x0 prediction");
  state = clips->state();
  state.emitted_clips = 1;
  expect_invalid(VideoClips::from_state(state), "clips leave only after the last step");
}

}  // namespace
}  // namespace reel::pipeline
