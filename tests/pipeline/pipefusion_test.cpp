#include "pipeline/pipefusion.hpp"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>
#include <vector>

#include "pipeline/dit_denoiser.hpp"
#include "pipeline/pipefusion_stage.hpp"
#include "pipeline/stale_kv.hpp"
#include "tests/models/small_dit.hpp"

namespace reel::pipeline {
namespace {

using models::Prediction;
using models::SolverKind;

const std::vector<int64_t> kShape = {1, 3, 4, 8, 8};  // [B, C, F, H, W] -> 4 x 4 x 4 = 64 tokens

Conditioning make_conditioning(int64_t batch) {
  torch::manual_seed(5);
  auto text = torch::randn({batch, 5, models::testing::small_dit_config().text_dim});
  return {text, torch::zeros_like(text)};
}

SampleOptions options(int steps, SolverKind solver = SolverKind::unipc) {
  SampleOptions o;
  o.steps = steps;
  o.shift = 3.0;
  o.solver = solver;
  o.guidance = 4.0;
  o.seed = 11;
  return o;
}

torch::Tensor sequential(models::VideoDiT& dit, Prediction prediction, const Conditioning& cond,
                         const std::vector<int64_t>& shape, const SampleOptions& opts) {
  DiTDenoiser denoiser(dit, prediction);
  auto r = sample(denoiser, cond, shape, opts);
  EXPECT_TRUE(r.ok()) << r.error().message;
  return r.ok() ? r->latent : torch::Tensor();
}

torch::Tensor pipefusion(models::VideoDiT& dit, Prediction prediction, const Conditioning& cond,
                         const std::vector<int64_t>& shape, const SampleOptions& opts, const PipeFusionPlan& plan,
                         PipeFusionStats* stats = nullptr) {
  auto r = sample_pipefusion(dit, prediction, cond, shape, opts, plan, stats);
  EXPECT_TRUE(r.ok()) << r.error().message;
  return r.ok() ? r->latent : torch::Tensor();
}

double relative_l2(const torch::Tensor& a, const torch::Tensor& reference) {
  return ((a - reference).norm() / reference.norm()).item<double>();
}

PipeFusionPlan plan(int stages, int patches, PatchSplit split, int warmup) {
  PipeFusionPlan p;
  p.stages = stages;
  p.patches = patches;
  p.split = split;
  p.warmup_steps = warmup;
  return p;
}

TEST(PipeFusion, OneStageAndOnePatchEqualsSequentialSampling) {
  auto dit = models::testing::small_dit();
  for (auto prediction : {Prediction::velocity, Prediction::sample}) {
    for (auto solver : {SolverKind::euler, SolverKind::unipc, SolverKind::dpmpp}) {
      auto opts = options(4, solver);
      for (bool guided : {true, false}) {
        auto cond = make_conditioning(2);
        if (!guided) cond.negative = torch::Tensor();
        const std::vector<int64_t> shape = {2, 3, 4, 8, 8};
        auto reference = sequential(dit, prediction, cond, shape, opts);
        auto got = pipefusion(dit, prediction, cond, shape, opts, plan(1, 1, PatchSplit::frames, 1));
        EXPECT_TRUE(torch::equal(got, reference))
            << models::solver_kind_name(solver) << " " << models::prediction_name(prediction) << " guided " << guided;
      }
    }
  }
}

TEST(PipeFusion, OnePatchEqualsSequentialSamplingForAnyStagesAndWarmUp) {
  auto dit = models::testing::small_dit();
  auto cond = make_conditioning(1);
  auto opts = options(4);
  auto reference = sequential(dit, Prediction::velocity, cond, kShape, opts);
  for (int stages : {1, 2, 4}) {
    for (int warmup : {0, 1, 4}) {
      for (auto split : {PatchSplit::frames, PatchSplit::rows}) {
        auto got = pipefusion(dit, Prediction::velocity, cond, kShape, opts, plan(stages, 1, split, warmup));
        EXPECT_TRUE(torch::equal(got, reference)) << stages << " stages, W " << warmup;
      }
    }
  }
}

TEST(PipeFusion, FullWarmUpEqualsSequentialSampling) {
  auto dit = models::testing::small_dit();
  auto cond = make_conditioning(1);
  for (auto solver : {SolverKind::euler, SolverKind::unipc, SolverKind::dpmpp}) {
    auto opts = options(5, solver);
    auto reference = sequential(dit, Prediction::sample, cond, kShape, opts);
    for (auto split : {PatchSplit::frames, PatchSplit::rows}) {
      for (int warmup : {5, 9}) {
        auto got = pipefusion(dit, Prediction::sample, cond, kShape, opts, plan(2, 4, split, warmup));
        EXPECT_TRUE(torch::equal(got, reference)) << models::solver_kind_name(solver) << " " << patch_split_name(split);
      }
    }
  }
}

// Absolute positions are added to whatever tokens a patch holds (a run of frames, or the same
// rows of every frame): with full warm-up PipeFusion still equals sequential sampling, and the
// embedding does change the result.
TEST(PipeFusion, FullWarmUpEqualsSequentialSamplingWithAbsolutePositions) {
  auto dit = models::testing::small_dit(7, /*abs_pos=*/true);
  auto plain = models::testing::small_dit(7, /*abs_pos=*/false);
  auto cond = make_conditioning(1);
  auto opts = options(4);
  auto reference = sequential(dit, Prediction::velocity, cond, kShape, opts);
  EXPECT_FALSE(torch::allclose(reference, sequential(plain, Prediction::velocity, cond, kShape, opts)));
  for (auto split : {PatchSplit::frames, PatchSplit::rows}) {
    auto got = pipefusion(dit, Prediction::velocity, cond, kShape, opts, plan(2, 4, split, 4));
    EXPECT_TRUE(torch::equal(got, reference)) << patch_split_name(split);
  }
}

// A text_time model's stages embed the time (with the prompt and frame index) for the whole
// window once per step, as the sequential model does: still equal with full warm-up.
TEST(PipeFusion, FullWarmUpEqualsSequentialSamplingWithPromptAndFrameInTheModulation) {
  auto dit = models::testing::small_dit(7, /*abs_pos=*/true, /*text_time=*/true);
  auto cond = make_conditioning(1);
  auto opts = options(4);
  auto reference = sequential(dit, Prediction::velocity, cond, kShape, opts);
  for (auto split : {PatchSplit::frames, PatchSplit::rows}) {
    auto got = pipefusion(dit, Prediction::velocity, cond, kShape, opts, plan(2, 4, split, 4));
    EXPECT_TRUE(torch::equal(got, reference)) << patch_split_name(split);
  }
}

// Stale K/V perturbs each asynchronous step a little; the last steps weigh most (the final
// step returns the x0 prediction itself), so more warm-up means fewer perturbed steps and a
// smaller error. Measured on this model (8 steps): frames 0.45% at W=1, 0.42% at W=3, 0.37% at
// W=6; rows 1.05%, 1.02%, 0.78%. Without warm-up it is no worse than W=1: the first step's
// error (attention over the patches visited so far) is damped by every later step.
TEST(PipeFusion, ErrorAfterWarmUpIsSmallAndShrinksAsWarmUpGrows) {
  auto dit = models::testing::small_dit();
  auto cond = make_conditioning(1);
  auto opts = options(8);
  auto reference = sequential(dit, Prediction::velocity, cond, kShape, opts);
  for (auto split : {PatchSplit::frames, PatchSplit::rows}) {
    SCOPED_TRACE(patch_split_name(split));
    std::vector<double> errors;
    for (int warmup : {1, 3, 6}) {
      auto got = pipefusion(dit, Prediction::velocity, cond, kShape, opts, plan(2, 4, split, warmup));
      errors.push_back(relative_l2(got, reference));
    }
    EXPECT_GT(errors[0], 1e-4);  // stale K/V changes the numbers...
    EXPECT_LT(errors[0], 0.03);  // ...a little
    for (size_t i = 1; i < errors.size(); ++i) EXPECT_LT(errors[i], errors[i - 1]) << "warm-up index " << i;
    auto no_warmup = pipefusion(dit, Prediction::velocity, cond, kShape, opts, plan(2, 4, split, 0));
    EXPECT_LT(relative_l2(no_warmup, reference), 0.03);
  }
}

TEST(PipeFusion, RowPatchesOfASingleFrameAndUnevenPatchesWork) {
  auto dit = models::testing::small_dit();
  auto cond = make_conditioning(1);
  auto opts = options(4);
  for (const auto& [shape, split] : {std::pair{std::vector<int64_t>{1, 3, 1, 8, 8}, PatchSplit::rows},
                                     std::pair{std::vector<int64_t>{1, 3, 3, 8, 8}, PatchSplit::rows},
                                     std::pair{std::vector<int64_t>{1, 3, 5, 8, 8}, PatchSplit::frames}}) {
    SCOPED_TRACE(patch_split_name(split) + std::string(" over ") + std::to_string(shape[2]) + " frames");
    auto reference = sequential(dit, Prediction::velocity, cond, shape, opts);
    auto exact = pipefusion(dit, Prediction::velocity, cond, shape, opts, plan(3, 3, split, 4));
    EXPECT_TRUE(torch::equal(exact, reference));
    auto stale = pipefusion(dit, Prediction::velocity, cond, shape, opts, plan(3, 3, split, 1));
    const double error = relative_l2(stale, reference);
    EXPECT_GT(error, 0.0);
    EXPECT_LT(error, 0.03);
  }
}

TEST(PipeFusion, BlockRangesCoverEveryBlockExactlyOnceAndAreBalanced) {
  for (int64_t blocks : {1, 4, 7, 30}) {
    for (int stages = 1; stages <= blocks; ++stages) {
      auto ranges = stage_block_ranges(blocks, stages);
      ASSERT_TRUE(ranges.ok()) << ranges.error().message;
      ASSERT_EQ(static_cast<int>(ranges->size()), stages);
      int64_t next = 0, smallest = blocks, largest = 0;
      for (const auto& r : *ranges) {
        EXPECT_EQ(r.first, next);
        EXPECT_GE(r.size(), 1);
        smallest = std::min(smallest, r.size());
        largest = std::max(largest, r.size());
        next = r.last;
      }
      EXPECT_EQ(next, blocks);
      EXPECT_LE(largest - smallest, 1);
    }
  }
}

TEST(PipeFusion, PatchRangesCoverEveryTokenExactlyOnce) {
  for (auto split : {PatchSplit::frames, PatchSplit::rows}) {
    for (models::TokenGrid grid : {models::TokenGrid{5, 4, 3}, models::TokenGrid{1, 7, 2}, models::TokenGrid{8, 8, 8}}) {
      const int64_t extent = split == PatchSplit::frames ? grid.f : grid.h;
      for (int patches = 1; patches <= extent; ++patches) {
        auto ranges = patch_ranges(grid, {1, 2, 2}, split, patches);
        ASSERT_TRUE(ranges.ok()) << ranges.error().message;
        ASSERT_EQ(static_cast<int>(ranges->size()), patches);
        auto seen = torch::zeros({grid.tokens()}, torch::kLong);
        int64_t latent_next = 0;
        for (const auto& p : *ranges) {
          ASSERT_EQ(p.token_index.numel(), p.tokens);
          EXPECT_EQ(p.tokens, p.box.tokens());
          seen.index_add_(0, p.token_index, torch::ones({p.tokens}, torch::kLong));
          if (p.contiguous) {
            EXPECT_TRUE(torch::equal(p.token_index, torch::arange(p.token_begin, p.token_begin + p.tokens)));
          }
          EXPECT_EQ(p.latent_begin, latent_next);
          latent_next = p.latent_end;
          // Sizes differ by at most one frame or row.
          EXPECT_LE(p.end - p.begin, extent / patches + 1);
          EXPECT_GE(p.end - p.begin, extent / patches);
        }
        EXPECT_EQ(latent_next, extent * (split == PatchSplit::frames ? 1 : 2));
        EXPECT_TRUE(torch::equal(seen, torch::ones_like(seen)))
            << patch_split_name(split) << " " << patches << " patches";
        // Frame patches are one run each; row patches are when there is one frame.
        for (const auto& p : *ranges)
          EXPECT_EQ(p.contiguous, split == PatchSplit::frames || grid.f == 1 || patches == 1);
      }
    }
  }
}

TEST(PipeFusion, StaleKVHoldsStaleValuesForPatchesNotYetVisited) {
  // One layer, six tokens, two patches of three; k = 10 * step + patch, v = -k.
  StaleKV kv(2, 3, 6);
  auto kv_of = [](double value, int64_t tokens) {
    return std::make_pair(torch::full({1, tokens, 2, 4}, value), torch::full({1, tokens, 2, 4}, -value));
  };
  // Step 0 without warm-up: the first patch sees only itself.
  auto [k, v] = kv_of(0.0, 3);
  kv.self_attention_kv(2, 0, k, v);
  EXPECT_EQ(k.size(1), 3);
  EXPECT_EQ(kv.visited_tokens(2), 3);
  EXPECT_FALSE(kv.visited(2, 4));
  std::tie(k, v) = kv_of(1.0, 3);
  kv.self_attention_kv(2, 3, k, v);
  ASSERT_EQ(k.size(1), 6);
  EXPECT_EQ(kv.visited_tokens(2), 6);

  // Step 1, patch 0: fresh for tokens 0-2, stale (step 0's patch 1) for 3-5.
  std::tie(k, v) = kv_of(10.0, 3);
  kv.self_attention_kv(2, 0, k, v);
  ASSERT_EQ(k.sizes(), (std::vector<int64_t>{1, 6, 2, 4}));
  EXPECT_TRUE(torch::equal(k.slice(1, 0, 3), torch::full({1, 3, 2, 4}, 10.0)));
  EXPECT_TRUE(torch::equal(k.slice(1, 3, 6), torch::full({1, 3, 2, 4}, 1.0)));
  EXPECT_TRUE(torch::equal(v.slice(1, 3, 6), torch::full({1, 3, 2, 4}, -1.0)));
  EXPECT_TRUE(torch::equal(kv.keys(2), k));

  // A patch given as an index list (rows of every frame) updates only its tokens.
  std::tie(k, v) = kv_of(11.0, 2);
  kv.self_attention_kv_at(2, torch::tensor({1, 4}, torch::kLong), k, v);
  auto expected = torch::tensor({10.0, 11.0, 10.0, 1.0, 11.0, 1.0}).view({1, 6, 1, 1}).expand({1, 6, 2, 4});
  EXPECT_TRUE(torch::equal(k, expected));
  EXPECT_TRUE(torch::equal(kv.values(2), -expected));
  EXPECT_EQ(kv.bytes(), 2 * 6 * 2 * 4 * 4);

  // Other layers are not this stage's; a reset forgets everything.
  EXPECT_THROW(kv.self_attention_kv(1, 0, k, v), c10::Error);
  kv.reset(6);
  EXPECT_EQ(kv.visited_tokens(2), 0);
  EXPECT_FALSE(kv.keys(2).defined());
}

// With buffers that hold the exact K/V of this step, patch-by-patch computation is the full
// pass: checks the patch embedding (stem halo), RoPE positions, modulation, head and
// refinement (halo) of both splits.
TEST(PipeFusion, PatchesOverFreshBuffersReproduceTheFullPass) {
  torch::NoGradGuard no_grad;
  auto dit = models::testing::small_dit();
  auto cond = make_conditioning(1);
  const auto text = torch::cat({cond.text, cond.negative}, 0);
  torch::manual_seed(9);
  const auto x = torch::randn({2, kShape[1], kShape[2], kShape[3], kShape[4]});
  for (auto split : {PatchSplit::frames, PatchSplit::rows}) {
    auto layout = make_layout(plan(2, 4, split, 1), dit->config(), kShape);
    ASSERT_TRUE(layout.ok()) << layout.error().message;
    std::vector<PipeFusionStage> stages;
    for (int s = 0; s < 2; ++s) {
      stages.emplace_back(dit, *layout, s);
      stages.back().begin_request(text);
      stages.back().begin_step(0.6);
    }
    stages[0].set_latent(x);
    auto tokens = stages[1].run(kFullSequence, stages[0].run(kFullSequence, stages[0].embed(kFullSequence, x)));
    const auto full = stages[1].output(kFullSequence, tokens);
    EXPECT_TRUE(torch::equal(full, dit->forward(x, torch::full({2, kShape[2]}, 0.6, torch::kFloat32).to(torch::kFloat64) * 1000.0, text)));
    for (int p = 0; p < 4; ++p) {
      const auto& patch = layout->patches[static_cast<size_t>(p)];
      tokens = stages[1].run(p, stages[0].run(p, stages[0].embed(p, patch.of(x))));
      EXPECT_TRUE(torch::allclose(stages[1].output(p, tokens), patch.of(full), 1e-4, 1e-5))
          << patch_split_name(split) << " patch " << p;
    }
  }
}

TEST(PipeFusion, BytesCountedEqualTheAnalyticValue) {
  auto dit = models::testing::small_dit();
  auto cond = make_conditioning(1);
  auto opts = options(4);
  for (auto split : {PatchSplit::frames, PatchSplit::rows}) {
    PipeFusionStats stats;
    pipefusion(dit, Prediction::velocity, cond, kShape, opts, plan(3, 4, split, 1), &stats);
    const int64_t rows = 2, tokens = 64, dim = 48;  // guided: conditional and unconditional rows
    EXPECT_EQ(stats.analytic_step_bytes, tokens * dim * rows * 4);
    ASSERT_EQ(stats.analytic_patch_bytes.size(), 4u);
    for (int64_t b : stats.analytic_patch_bytes) EXPECT_EQ(b, tokens / 4 * dim * rows * 4);
    ASSERT_EQ(stats.boundary_bytes.size(), 4u);
    for (const auto& step : stats.boundary_bytes) {
      ASSERT_EQ(step.size(), 2u);  // three stages, two boundaries
      for (int64_t b : step) EXPECT_EQ(b, stats.analytic_step_bytes);
    }
    EXPECT_DOUBLE_EQ(stats.boundary_bytes_per_step(1), static_cast<double>(stats.analytic_step_bytes));
    for (int64_t b : stats.ring_bytes) EXPECT_EQ(b, 1 * 3 * 4 * 8 * 8 * 4);  // the latent, once per step
    EXPECT_EQ(stats.model_calls, 4);
    EXPECT_EQ(stats.warmup_steps, 1);
    EXPECT_EQ(stats.patch_passes, 3 * 4);
    EXPECT_EQ(stats.stage_runs, 3 + 3 * 3 * 4);
    // Every stage holds K and V of the full sequence for each of its blocks.
    EXPECT_EQ(stats.stale_kv_bytes, 4 * 2 * rows * tokens * dim * 4);
  }
}

TEST(PipeFusion, RejectsBadPlansWithClearMessages) {
  auto dit = models::testing::small_dit();
  auto cond = make_conditioning(1);
  auto opts = options(2);
  struct BadPlan {
    PipeFusionPlan plan;
    std::vector<int64_t> shape;
    std::string says;
  };
  const std::vector<BadPlan> bad = {
      {plan(0, 2, PatchSplit::frames, 1), kShape, "stages must be at least 1"},
      {plan(5, 2, PatchSplit::frames, 1), kShape, "5 stages for a model of 4 blocks"},
      {plan(2, 0, PatchSplit::frames, 1), kShape, "patches must be at least 1"},
      {plan(2, 5, PatchSplit::frames, 1), kShape, "5 patches of whole frames, but the latent has only 4 token frames"},
      {plan(2, 5, PatchSplit::rows, 1), kShape, "5 patches of rows, but a frame has only 4 token rows"},
      {plan(2, 2, PatchSplit::frames, -1), kShape, "warm-up steps must be at least 0"},
      {plan(2, 2, PatchSplit::frames, 1), {1, 3, 4, 7, 8}, "is not divisible by the model's patch"},
      {plan(2, 2, PatchSplit::frames, 1), {1, 4, 4, 8, 8}, "4 channels, the model takes 3"},
  };
  for (const auto& b : bad) {
    auto r = sample_pipefusion(dit, Prediction::velocity, cond, b.shape, opts, b.plan);
    ASSERT_FALSE(r.ok()) << b.says;
    EXPECT_EQ(r.error().code, Errc::invalid_argument);
    EXPECT_NE(r.error().message.find(b.says), std::string::npos) << r.error().message;
    EXPECT_EQ(r.error().message.rfind("PipeFusion plan: ", 0), 0u) << r.error().message;
  }
  auto wrong_text = cond;
  wrong_text.text = torch::randn({2, 5, 16});
  auto r = sample_pipefusion(dit, Prediction::velocity, wrong_text, kShape, opts, plan(2, 2, PatchSplit::frames, 1));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("text embedding must be"), std::string::npos) << r.error().message;
  EXPECT_FALSE(parse_patch_split("columns").ok());
  EXPECT_EQ(*parse_patch_split("rows"), PatchSplit::rows);
}

}  // namespace
}  // namespace reel::pipeline
