#include "actors/worker_pool.hpp"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <ATen/Parallel.h>
#include <caf/all.hpp>

#include "actors/node.hpp"
#include "actors/worker.hpp"
#include "pipeline/dit_denoiser.hpp"
#include "pool_support.hpp"

namespace reel::actors {
namespace {

using testing::ActorSystem;

constexpr uint64_t kRequest = 7;

std::vector<PoolMember> local_workers(caf::actor_system& system, int count) {
  auto node = spawn_node(system, "");
  auto members = request_workers(system, node, "local", count);
  EXPECT_TRUE(members.ok());
  return members.ok() ? *members : std::vector<PoolMember>{};
}

pipeline::FifoOptions fifo_options() {
  pipeline::FifoOptions o;
  o.window_frames = 8;
  o.partitions = 1;
  o.lookahead = true;
  o.batch_windows = false;
  o.steps = 8;
  o.guidance = 4.0;
  o.shift = 3.0;
  o.seed = 11;
  return o;
}

// The FIFO frames of the in-process reference: one window per model call, one thread.
std::vector<torch::Tensor> fifo_reference(const models::T2VModel& m, const pipeline::Conditioning& cond,
                                          const torch::Tensor& clip, int64_t frames) {
  at::set_num_threads(1);
  pipeline::DiTDenoiser denoiser(m.dit, m.prediction);
  auto queue = pipeline::FifoQueue::from_clip(clip, fifo_options());
  EXPECT_TRUE(queue.ok());
  std::vector<torch::Tensor> out;
  auto stats = queue->run(denoiser, cond, frames, [&](int64_t, const torch::Tensor& f) -> Status {
    out.push_back(f.clone());
    return {};
  });
  EXPECT_TRUE(stats.ok()) << stats.error().message;
  return out;
}

class WorkerPoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    torch::NoGradGuard no_grad;
    model = testing::tiny_model();
    cond = testing::conditioning(model, "a red circle on a blue background");
    clip = pipeline::make_noise({1, 3, 8, 32, 32}, 5);
  }
  ActorSystem actors;
  models::T2VModel model;
  pipeline::Conditioning cond;
  torch::Tensor clip;
  const ModelSpec spec{"tiny-random", "", 1};
};

TEST_F(WorkerPoolTest, LoadReportsTheSameWeightsOnEveryWorker) {
  WorkerPool pool(actors.system, local_workers(actors.system, 2));
  auto infos = pool.load(spec);
  ASSERT_TRUE(infos.ok()) << infos.error().message;
  ASSERT_EQ(infos->size(), 2u);
  EXPECT_EQ((*infos)[0].weights, (*infos)[1].weights);
  EXPECT_NE((*infos)[0].weights, 0u);
  EXPECT_EQ((*infos)[0].weights, weights_checksum_of("tiny-random", ""));
  EXPECT_EQ((*infos)[0].threads, 1);
}

TEST_F(WorkerPoolTest, AModelANodeDoesNotHaveIsAnErrorNamingTheWorker) {
  WorkerPool pool(actors.system, local_workers(actors.system, 1));
  auto infos = pool.load(ModelSpec{"no-such-model", "", 1});
  ASSERT_FALSE(infos.ok());
  EXPECT_NE(infos.error().message.find("local/worker0"), std::string::npos) << infos.error().message;
  EXPECT_NE(infos.error().message.find("no-such-model"), std::string::npos) << infos.error().message;
}

TEST_F(WorkerPoolTest, FifoOverTwoWorkersEqualsTheInProcessRunBitForBit) {
  torch::NoGradGuard no_grad;
  const auto reference = fifo_reference(model, cond, clip, 12);
  WorkerPool pool(actors.system, local_workers(actors.system, 2));
  ASSERT_TRUE(pool.load(spec).ok());
  ASSERT_TRUE(pool.condition(kRequest, cond, 4.0).ok());
  PoolWindowRunner runner(pool, kRequest, model.prediction);
  auto queue = pipeline::FifoQueue::from_clip(clip, fifo_options());
  ASSERT_TRUE(queue.ok());
  std::vector<torch::Tensor> got;
  auto stats = queue->run(runner, 12, [&](int64_t, const torch::Tensor& f) -> Status {
    got.push_back(f.clone());
    return {};
  });
  ASSERT_TRUE(stats.ok()) << stats.error().message;
  ASSERT_EQ(got.size(), reference.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_TRUE(torch::equal(got[i], reference[i])) << "frame " << i;
  // Both workers took windows (two per pass with lookahead).
  EXPECT_GT(pool.stats().per_worker[0], 0);
  EXPECT_GT(pool.stats().per_worker[1], 0);
  EXPECT_EQ(pool.stats().redispatched, 0);
}

TEST_F(WorkerPoolTest, AWorkerKilledMidRunIsReplacedByTheRestAndTheVideoIsUnchanged) {
  torch::NoGradGuard no_grad;
  const auto reference = fifo_reference(model, cond, clip, 12);
  auto members = local_workers(actors.system, 2);
  const auto victim = members[1].handle;
  WorkerPool pool(actors.system, members);
  ASSERT_TRUE(pool.load(spec).ok());
  ASSERT_TRUE(pool.condition(kRequest, cond, 4.0).ok());
  std::vector<std::string> noticed;
  pool.on_lost([&](const std::string& name, const std::string&) { noticed.push_back(name); });
  PoolWindowRunner runner(pool, kRequest, model.prediction);
  auto queue = pipeline::FifoQueue::from_clip(clip, fifo_options());
  std::vector<torch::Tensor> got;
  auto stats = queue->run(runner, 12, [&](int64_t index, const torch::Tensor& f) -> Status {
    got.push_back(f.clone());
    if (index == 2) caf::anon_send_exit(victim, caf::exit_reason::kill);
    return {};
  });
  ASSERT_TRUE(stats.ok()) << stats.error().message;
  ASSERT_EQ(noticed, std::vector<std::string>{"local/worker1"});
  EXPECT_EQ(pool.alive(), 1u);
  ASSERT_EQ(got.size(), reference.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_TRUE(torch::equal(got[i], reference[i])) << "frame " << i;
}

TEST_F(WorkerPoolTest, EveryWorkerLostIsAnErrorNotAHang) {
  auto members = local_workers(actors.system, 2);
  WorkerPool pool(actors.system, members);
  ASSERT_TRUE(pool.load(spec).ok());
  ASSERT_TRUE(pool.condition(kRequest, cond, 4.0).ok());
  for (auto& m : members) caf::anon_send_exit(m.handle, caf::exit_reason::kill);
  const torch::Tensor x = clip.clone();
  const torch::Tensor sigma = torch::full({1, 8}, 0.5f);
  auto out = pool.run(kRequest, {PoolItem{x, sigma}, PoolItem{x, sigma}});
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.error().message.find("every worker was lost"), std::string::npos) << out.error().message;
}

TEST_F(WorkerPoolTest, AnUnknownRequestIsAWorkerErrorNamingIt) {
  WorkerPool pool(actors.system, local_workers(actors.system, 1));
  ASSERT_TRUE(pool.load(spec).ok());
  auto out = pool.run(99, {PoolItem{clip, torch::full({1, 8}, 0.5f)}});
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.error().message.find("unknown request 99"), std::string::npos) << out.error().message;
}

TEST_F(WorkerPoolTest, StandardSamplingOnOneWorkerEqualsTheDirectCall) {
  torch::NoGradGuard no_grad;
  pipeline::SampleOptions o;
  o.steps = 4;
  o.guidance = 4.0;
  o.shift = 3.0;
  o.seed = 3;
  at::set_num_threads(1);
  pipeline::DiTDenoiser denoiser(model.dit, model.prediction);
  auto direct = pipeline::sample(denoiser, cond, {1, 3, 8, 32, 32}, o);
  ASSERT_TRUE(direct.ok());
  WorkerPool pool(actors.system, local_workers(actors.system, 1));
  ASSERT_TRUE(pool.load(spec).ok());
  auto pooled = sample_on_pool(pool, kRequest, model.prediction, cond, {1, 3, 8, 32, 32}, o, false);
  ASSERT_TRUE(pooled.ok()) << pooled.error().message;
  EXPECT_TRUE(torch::equal(pooled->latent, direct->latent));
  EXPECT_EQ(pool.stats().calls, 4);
}

TEST_F(WorkerPoolTest, CfgParallelSplitsTheTwoPassesOverTwoWorkersAndAgreesToRounding) {
  torch::NoGradGuard no_grad;
  pipeline::SampleOptions o;
  o.steps = 4;
  o.guidance = 4.0;
  o.shift = 3.0;
  o.seed = 3;
  at::set_num_threads(1);
  pipeline::DiTDenoiser denoiser(model.dit, model.prediction);
  auto direct = pipeline::sample(denoiser, cond, {1, 3, 8, 32, 32}, o);
  ASSERT_TRUE(direct.ok());
  WorkerPool pool(actors.system, local_workers(actors.system, 2));
  ASSERT_TRUE(pool.load(spec).ok());
  auto pooled = sample_on_pool(pool, kRequest, model.prediction, cond, {1, 3, 8, 32, 32}, o, true);
  ASSERT_TRUE(pooled.ok()) << pooled.error().message;
  // Two calls of batch 1 instead of one of batch 2: the same math, rounded per batch.
  const double diff = (pooled->latent - direct->latent).abs().max().item<double>();
  EXPECT_LT(diff, 1e-4);
  EXPECT_EQ(pool.stats().per_worker[0], 4);
  EXPECT_EQ(pool.stats().per_worker[1], 4);
}

TEST_F(WorkerPoolTest, ClipsOverTwoWorkersEqualTheInProcessRun) {
  torch::NoGradGuard no_grad;
  pipeline::ClipsOptions o;
  o.clips = 2;
  o.context_frames = 2;
  o.global_frames = 1;
  o.batch_clips = false;
  o.steps = 4;
  o.guidance = 4.0;
  o.shift = 3.0;
  o.seed = 9;
  at::set_num_threads(1);
  pipeline::DiTDenoiser denoiser(model.dit, model.prediction);
  auto a = pipeline::VideoClips::start({1, 3, 16, 32, 32}, o);
  auto direct = a->run(denoiser, cond, {});
  ASSERT_TRUE(direct.ok()) << direct.error().message;
  WorkerPool pool(actors.system, local_workers(actors.system, 2));
  ASSERT_TRUE(pool.load(spec).ok());
  ASSERT_TRUE(pool.condition(kRequest, cond, 4.0).ok());
  PoolClipRunner runner(pool, kRequest, model.prediction);
  auto b = pipeline::VideoClips::start({1, 3, 16, 32, 32}, o);
  auto pooled = b->run(runner, {});
  ASSERT_TRUE(pooled.ok()) << pooled.error().message;
  EXPECT_TRUE(torch::equal(pooled->latent, direct->latent));
}

}  // namespace
}  // namespace reel::actors
