// Several processes: `reel node` children on loopback serving workers to this process.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <ATen/Parallel.h>
#include <caf/all.hpp>

#include "actors/node.hpp"
#include "actors/node_process.hpp"
#include "actors/pipefusion_actors.hpp"
#include "actors/worker_pool.hpp"
#include "pipeline/dit_denoiser.hpp"
#include "pool_support.hpp"

namespace reel::actors {
namespace {

const std::string kReel = std::string(REEL_BINARY_DIR) + "/cli/reel";

pipeline::FifoOptions fifo_options() {
  pipeline::FifoOptions o;
  o.window_frames = 8;
  o.lookahead = true;
  o.batch_windows = false;
  o.steps = 8;
  o.guidance = 4.0;
  o.shift = 3.0;
  o.seed = 21;
  return o;
}

class NodesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    torch::NoGradGuard no_grad;
    model = testing::tiny_model();
    cond = testing::conditioning(model, "a green square");
    clip = pipeline::make_noise({1, 3, 8, 32, 32}, 4);
    // The in-process reference: one window per call, one thread, as every worker runs.
    at::set_num_threads(1);
    pipeline::DiTDenoiser denoiser(model.dit, model.prediction);
    auto queue = pipeline::FifoQueue::from_clip(clip, fifo_options());
    ASSERT_TRUE(queue.ok());
    ASSERT_TRUE(queue->run(denoiser, cond, kFrames, [&](int64_t, const torch::Tensor& f) -> Status {
      reference.push_back(f.clone());
      return {};
    }).ok());
  }

  // Two node processes, one worker from each.
  std::vector<PoolMember> remote_workers(std::vector<NodeProcess>& nodes) {
    std::vector<PoolMember> members;
    for (int i = 0; i < 2; ++i) {
      auto node = NodeProcess::start(kReel, "");
      EXPECT_TRUE(node.ok()) << node.error().message;
      if (!node.ok()) return {};
      nodes.push_back(std::move(*node));
      auto handle = connect_node(actors.system, nodes.back().address());
      EXPECT_TRUE(handle.ok()) << handle.error().message;
      if (!handle.ok()) return {};
      auto w = request_workers(actors.system, *handle, nodes.back().address(), 1);
      EXPECT_TRUE(w.ok());
      if (!w.ok()) return {};
      members.push_back((*w)[0]);
    }
    return members;
  }

  static constexpr int64_t kFrames = 12;
  testing::ActorSystem actors;
  models::T2VModel model;
  pipeline::Conditioning cond;
  torch::Tensor clip;
  std::vector<torch::Tensor> reference;
};

TEST_F(NodesTest, FifoOverWorkersInTwoNodeProcessesEqualsTheSingleProcessRun) {
  torch::NoGradGuard no_grad;
  std::vector<NodeProcess> nodes;
  auto members = remote_workers(nodes);
  ASSERT_EQ(members.size(), 2u);
  WorkerPool pool(actors.system, members);
  auto infos = pool.load(ModelSpec{"tiny-random", "", 1});
  ASSERT_TRUE(infos.ok()) << infos.error().message;
  EXPECT_NE((*infos)[0].pid, (*infos)[1].pid);  // really two processes
  EXPECT_NE((*infos)[0].pid, getpid());
  ASSERT_TRUE(pool.condition(1, cond, 4.0).ok());
  PoolWindowRunner runner(pool, 1, model.prediction);
  auto queue = pipeline::FifoQueue::from_clip(clip, fifo_options());
  std::vector<torch::Tensor> got;
  auto stats = queue->run(runner, kFrames, [&](int64_t, const torch::Tensor& f) -> Status {
    got.push_back(f.clone());
    return {};
  });
  ASSERT_TRUE(stats.ok()) << stats.error().message;
  ASSERT_EQ(got.size(), reference.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_TRUE(torch::equal(got[i], reference[i])) << "frame " << i;
  EXPECT_GT(pool.stats().per_worker[0], 0);
  EXPECT_GT(pool.stats().per_worker[1], 0);
}

TEST_F(NodesTest, ANodeKilledWithSigkillMidJobIsNoticedAndTheJobCompletesUnchanged) {
  torch::NoGradGuard no_grad;
  std::vector<NodeProcess> nodes;
  auto members = remote_workers(nodes);
  ASSERT_EQ(members.size(), 2u);
  WorkerPool pool(actors.system, members);
  ASSERT_TRUE(pool.load(ModelSpec{"tiny-random", "", 1}).ok());
  ASSERT_TRUE(pool.condition(1, cond, 4.0).ok());
  PoolWindowRunner runner(pool, 1, model.prediction);
  auto queue = pipeline::FifoQueue::from_clip(clip, fifo_options());
  std::vector<torch::Tensor> got;
  auto stats = queue->run(runner, kFrames, [&](int64_t index, const torch::Tensor& f) -> Status {
    got.push_back(f.clone());
    if (index == 3) nodes[1].kill_hard();
    return {};
  });
  ASSERT_TRUE(stats.ok()) << stats.error().message;
  ASSERT_EQ(pool.lost().size(), 1u);
  EXPECT_NE(pool.lost()[0].find(members[1].name), std::string::npos) << pool.lost()[0];
  ASSERT_EQ(got.size(), reference.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_TRUE(torch::equal(got[i], reference[i])) << "frame " << i;
}

TEST_F(NodesTest, PipeFusionWithOneStageInEachOfTwoNodeProcessesEqualsTheSimulation) {
  torch::NoGradGuard no_grad;
  std::vector<NodeProcess> nodes;
  std::vector<stage_actor> stages;
  for (int i = 0; i < 2; ++i) {
    auto node = NodeProcess::start(kReel, "");
    ASSERT_TRUE(node.ok()) << node.error().message;
    nodes.push_back(std::move(*node));
    auto handle = connect_node(actors.system, nodes.back().address());
    ASSERT_TRUE(handle.ok()) << handle.error().message;
    auto st = request_stages(actors.system, *handle, nodes.back().address(), 1);
    ASSERT_TRUE(st.ok()) << st.error().message;
    stages.push_back((*st)[0]);
  }
  auto infos = load_stages(actors.system, stages, ModelSpec{"tiny-random", "", 1});
  ASSERT_TRUE(infos.ok()) << infos.error().message;
  pipeline::SampleOptions o;
  o.steps = 4;
  o.guidance = 4.0;
  o.shift = 3.0;
  o.seed = 5;
  pipeline::PipeFusionPlan plan;
  plan.stages = 2;
  plan.patches = 2;
  plan.warmup_steps = 1;
  const std::vector<int64_t> shape{1, 3, 8, 32, 32};
  at::set_num_threads(1);
  pipeline::PipeFusionStats expected_stats, got_stats;
  auto reference = pipeline::sample_pipefusion(model.dit, model.prediction, cond, shape, o, plan, &expected_stats);
  ASSERT_TRUE(reference.ok()) << reference.error().message;
  auto got = sample_pipefusion_actors(actors.system, stages, model.prediction, cond, shape, o, plan, &got_stats);
  ASSERT_TRUE(got.ok()) << got.error().message;
  EXPECT_TRUE(torch::equal(got->latent, reference->latent));
  // What crossed between the processes is what the simulation counts.
  EXPECT_EQ(got_stats.boundary_bytes, expected_stats.boundary_bytes);
  for (auto& s : stages) caf::anon_send_exit(s, caf::exit_reason::user_shutdown);
}

TEST(Nodes, AnUnreachableNodeIsAnErrorThatNamesIt) {
  testing::ActorSystem actors;
  auto node = connect_node(actors.system, "127.0.0.1:1");
  ASSERT_FALSE(node.ok());
  EXPECT_EQ(node.error().code, Errc::io_error);
  EXPECT_NE(node.error().message.find("127.0.0.1:1"), std::string::npos) << node.error().message;
  EXPECT_NE(node.error().message.find("unreachable"), std::string::npos) << node.error().message;
}

TEST(Nodes, MalformedAddressesAreUsageErrors) {
  for (const char* bad : {"localhost", ":80", "host:", "host:http", "host:70000", "host:-1"}) {
    auto parsed = parse_address(bad);
    ASSERT_FALSE(parsed.ok()) << bad;
    EXPECT_EQ(parsed.error().code, Errc::invalid_argument) << bad;
    EXPECT_NE(parsed.error().message.find(bad), std::string::npos) << parsed.error().message;
  }
  auto ok = parse_address("10.0.0.2:7700");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->first, "10.0.0.2");
  EXPECT_EQ(ok->second, 7700);
}

TEST(Nodes, ASinkChecksTheTensorItReceives) {
  testing::ActorSystem actors;
  auto node = spawn_node(actors.system, "");
  caf::scoped_actor self{actors.system};
  WireTensor t{std::string(64, 'x')};
  bool failed = false;
  self->request(node, caf::infinite, sink_atom::value, t)
      .receive([&](uint64_t) {}, [&](caf::error&) { failed = true; });
  EXPECT_TRUE(failed);
}

}  // namespace
}  // namespace reel::actors
