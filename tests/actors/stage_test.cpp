#include "actors/stage.hpp"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <ATen/Parallel.h>
#include <caf/all.hpp>

#include <chrono>
#include <string>
#include <vector>

#include "actors/pipefusion_actors.hpp"
#include "models/t2v_model.hpp"
#include "tests/models/small_dit.hpp"
#include "pipeline/pipefusion.hpp"

namespace reel::actors {
namespace {

using pipeline::PatchSplit;
using pipeline::PipeFusionPlan;

const std::vector<int64_t> kShape = {1, 3, 4, 8, 8};  // [B, C, F, H, W] -> 4 x 4 x 4 = 64 tokens

pipeline::Conditioning conditioning(int64_t text_dim) {
  torch::manual_seed(5);
  auto text = torch::randn({1, 5, text_dim});
  return {text, torch::randn({1, 5, text_dim}) * 0.1};
}

pipeline::SampleOptions options(int steps) {
  pipeline::SampleOptions o;
  o.steps = steps;
  o.shift = 3.0;
  o.solver = models::SolverKind::unipc;
  o.guidance = 4.0;
  o.seed = 11;
  return o;
}

PipeFusionPlan plan(int stages, int patches, PatchSplit split, int warmup) {
  PipeFusionPlan p;
  p.stages = stages;
  p.patches = patches;
  p.split = split;
  p.warmup_steps = warmup;
  return p;
}

std::string describe(const PipeFusionPlan& p) {
  return "N " + std::to_string(p.stages) + " M " + std::to_string(p.patches) + " W " +
         std::to_string(p.warmup_steps) + " " + pipeline::patch_split_name(p.split);
}

class StageActors : public ::testing::Test {
 protected:
  StageActors() : system(configured(cfg)) {}

  static caf::actor_system_config& configured(caf::actor_system_config& c) {
    configure(c);
    return c;
  }

  void SetUp() override {
    // The simulation in this thread computes with as many threads as each stage: one.
    at::set_num_threads(1);
    dit = models::testing::small_dit();
  }

  // The actor system waits for every actor before it goes: stop the stages first.
  void TearDown() override {
    for (auto& s : spawned) caf::anon_send_exit(s, caf::exit_reason::user_shutdown);
  }

  std::vector<stage_actor> stages_with(const models::VideoDiT& model, int n) {
    std::vector<stage_actor> out;
    for (int i = 0; i < n; ++i) out.push_back(spawn_stage(system, model, models::Prediction::velocity, 1));
    spawned.insert(spawned.end(), out.begin(), out.end());
    return out;
  }

  caf::actor_system_config cfg;
  caf::actor_system system;
  models::VideoDiT dit{nullptr};
  std::vector<stage_actor> spawned;
};

TEST_F(StageActors, EqualTheSimulationBitForBit) {
  const auto cond = conditioning(models::testing::small_dit_config().text_dim);
  const auto opts = options(3);
  for (int n : {2, 3}) {
    auto stages = stages_with(dit, n);
    for (int m : {2, 4}) {
      for (int w : {0, 1}) {
        for (auto split : {PatchSplit::frames, PatchSplit::rows}) {
          const auto p = plan(n, m, split, w);
          auto reference = pipeline::sample_pipefusion(dit, models::Prediction::velocity, cond, kShape, opts, p);
          ASSERT_TRUE(reference.ok()) << reference.error().message;
          auto got = sample_pipefusion_actors(system, stages, models::Prediction::velocity, cond, kShape, opts, p);
          ASSERT_TRUE(got.ok()) << describe(p) << ": " << got.error().message;
          EXPECT_TRUE(torch::equal(got->latent, reference->latent)) << describe(p);
        }
      }
    }
  }
}

TEST_F(StageActors, EqualTheSimulationWithoutGuidanceAndWithFullWarmUp) {
  auto cond = conditioning(models::testing::small_dit_config().text_dim);
  cond.negative = torch::Tensor();
  auto stages = stages_with(dit, 2);
  for (int w : {1, 3}) {
    const auto p = plan(2, 4, PatchSplit::rows, w);
    const auto opts = options(3);
    auto reference = pipeline::sample_pipefusion(dit, models::Prediction::velocity, cond, kShape, opts, p);
    ASSERT_TRUE(reference.ok()) << reference.error().message;
    auto got = sample_pipefusion_actors(system, stages, models::Prediction::velocity, cond, kShape, opts, p);
    ASSERT_TRUE(got.ok()) << got.error().message;
    EXPECT_TRUE(torch::equal(got->latent, reference->latent)) << describe(p);
  }
}

TEST_F(StageActors, MeasureTheBytesTheSimulationPredicts) {
  const auto cond = conditioning(models::testing::small_dit_config().text_dim);
  const auto opts = options(3);
  const auto p = plan(3, 4, PatchSplit::frames, 1);
  auto stages = stages_with(dit, 3);
  pipeline::PipeFusionStats sim, actors;
  PipeFusionTiming timing;
  PipeFusionActorOptions run;
  run.timing = &timing;
  std::vector<int> steps_seen;
  run.on_step = [&](int done, int total) {
    EXPECT_EQ(total, 3);
    steps_seen.push_back(done);
  };
  ASSERT_TRUE(pipeline::sample_pipefusion(dit, models::Prediction::velocity, cond, kShape, opts, p, &sim).ok());
  auto got =
      sample_pipefusion_actors(system, stages, models::Prediction::velocity, cond, kShape, opts, p, &actors, run);
  ASSERT_TRUE(got.ok()) << got.error().message;

  EXPECT_EQ(steps_seen, (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(actors.analytic_patch_bytes, sim.analytic_patch_bytes);
  EXPECT_EQ(actors.analytic_step_bytes, sim.analytic_step_bytes);
  ASSERT_EQ(actors.boundary_bytes.size(), 3u);
  for (const auto& step : actors.boundary_bytes) {
    ASSERT_EQ(step.size(), 2u);
    for (int64_t b : step) EXPECT_EQ(b, actors.analytic_step_bytes);
  }
  EXPECT_EQ(actors.boundary_bytes, sim.boundary_bytes);
  EXPECT_EQ(actors.ring_bytes, sim.ring_bytes);
  EXPECT_EQ(actors.stage_runs, sim.stage_runs);
  EXPECT_EQ(actors.patch_passes, sim.patch_passes);
  EXPECT_EQ(actors.request_bytes, sim.request_bytes);
  EXPECT_EQ(actors.stale_kv_bytes, sim.stale_kv_bytes);
  EXPECT_EQ(actors.model_calls, sim.model_calls);
  EXPECT_EQ(actors.model_rows, sim.model_rows);
  // Whole messages carry a header beside the payload.
  ASSERT_EQ(timing.wire_bytes.size(), 3u);
  for (size_t s = 0; s + 1 < 3; ++s) {
    for (size_t step = 0; step < 3; ++step) EXPECT_GT(timing.wire_bytes[s][step], actors.boundary_bytes[step][s]);
  }
  EXPECT_EQ(timing.stages[1].first_block, 2);
  EXPECT_EQ(timing.stages[1].last_block, 3);
}

TEST_F(StageActors, LoadTheirSliceFromTheZoo) {
  auto stages = std::vector<stage_actor>{spawn_stage(system, ""), spawn_stage(system, "")};
  spawned.insert(spawned.end(), stages.begin(), stages.end());
  auto infos = load_stages(system, stages, ModelSpec{"tiny-random", "", 1});
  ASSERT_TRUE(infos.ok()) << infos.error().message;
  EXPECT_EQ((*infos)[1].model, "tiny-random");

  auto model = models::make_tiny_random();
  ASSERT_TRUE(model.ok());
  const auto cond = conditioning(models::tiny_dit_config().text_dim);
  const std::vector<int64_t> shape = {1, 3, 2, 32, 32};
  const auto opts = options(2);
  const auto p = plan(2, 2, PatchSplit::rows, 1);
  auto reference = pipeline::sample_pipefusion(model->dit, model->prediction, cond, shape, opts, p);
  ASSERT_TRUE(reference.ok()) << reference.error().message;
  auto got = sample_pipefusion_actors(system, stages, model->prediction, cond, shape, opts, p);
  ASSERT_TRUE(got.ok()) << got.error().message;
  EXPECT_TRUE(torch::equal(got->latent, reference->latent));

  auto missing = load_stages(system, stages, ModelSpec{"no-such-model", "", 1});
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("stage 0"), std::string::npos) << missing.error().message;
}

TEST_F(StageActors, RejectABadPlanWithAnError) {
  const auto cond = conditioning(models::testing::small_dit_config().text_dim);
  const auto opts = options(2);
  auto stages = stages_with(dit, 2);
  auto run = [&](const PipeFusionPlan& p, const pipeline::Conditioning& c) {
    return sample_pipefusion_actors(system, stages, models::Prediction::velocity, c, kShape, opts, p);
  };
  // More patches than frames: only the stages know the model's patch size.
  auto too_many_patches = run(plan(2, 5, PatchSplit::frames, 1), cond);
  ASSERT_FALSE(too_many_patches.ok());
  EXPECT_EQ(too_many_patches.error().code, Errc::invalid_argument);
  EXPECT_NE(too_many_patches.error().message.find("patches"), std::string::npos) << too_many_patches.error().message;
  // A plan for more stages than actors.
  auto wrong_stages = run(plan(3, 2, PatchSplit::frames, 1), cond);
  ASSERT_FALSE(wrong_stages.ok());
  EXPECT_EQ(wrong_stages.error().code, Errc::invalid_argument);
  // A negative warm-up.
  EXPECT_FALSE(run(plan(2, 2, PatchSplit::frames, -1), cond).ok());
  // Text the model cannot read: the stage says so.
  auto bad_text = pipeline::Conditioning{torch::randn({1, 5, 7}), torch::randn({1, 5, 7})};
  auto wrong_text = run(plan(2, 2, PatchSplit::frames, 1), bad_text);
  ASSERT_FALSE(wrong_text.ok());
  EXPECT_NE(wrong_text.error().message.find("stage 0"), std::string::npos) << wrong_text.error().message;
  // A prediction the model does not make.
  EXPECT_FALSE(sample_pipefusion_actors(system, stages, models::Prediction::sample, cond, kShape, opts,
                                        plan(2, 2, PatchSplit::frames, 1))
                   .ok());
  // The stages are still fine.
  EXPECT_TRUE(run(plan(2, 2, PatchSplit::frames, 1), cond).ok());
}

TEST_F(StageActors, NameAStageKilledMidRunInsteadOfHanging) {
  const auto cond = conditioning(models::testing::small_dit_config().text_dim);
  const auto opts = options(4);
  auto stages = stages_with(dit, 3);
  PipeFusionActorOptions run;
  run.timeout = std::chrono::seconds(20);  // only so that a regression fails instead of hanging
  run.on_step = [&](int done, int) {
    if (done == 1) caf::anon_send_exit(stages[1], caf::exit_reason::kill);
  };
  const auto t0 = std::chrono::steady_clock::now();
  auto got = sample_pipefusion_actors(system, stages, models::Prediction::velocity, cond, kShape, opts,
                                      plan(3, 4, PatchSplit::frames, 1), nullptr, run);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.error().code, Errc::internal);
  EXPECT_NE(got.error().message.find("stage 1"), std::string::npos) << got.error().message;
  EXPECT_NE(got.error().message.find("down"), std::string::npos) << got.error().message;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10));

  // A run on a ring with a dead stage fails at once, naming it.
  auto again = sample_pipefusion_actors(system, stages, models::Prediction::velocity, cond, kShape, opts,
                                        plan(3, 4, PatchSplit::frames, 1), nullptr, run);
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.error().message.find("stage 1"), std::string::npos) << again.error().message;
}

}  // namespace
}  // namespace reel::actors
