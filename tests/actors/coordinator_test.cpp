#include "actors/coordinator.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <mutex>

#include <ATen/Parallel.h>
#include <caf/all.hpp>
#include <torch/torch.h>

#include "actors/messages.hpp"
#include "actors/node.hpp"
#include "actors/node_process.hpp"
#include "models/zoo.hpp"
#include "pipeline/dit_denoiser.hpp"
#include "pipeline/fifo.hpp"
#include "pipeline/pipefusion.hpp"
#include "pipeline/sampler.hpp"
#include "video/mp4_reader.hpp"

namespace reel::actors {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

const std::string kZoo = std::string(REEL_SOURCE_DIR) + "/models/zoo";
const std::string kPrompt = "a large red circle moving right on a striped navy background";

// Latents the coordinator decoded, by job and first frame (the runner's thread writes them).
struct Observed {
  std::mutex mutex;
  std::map<std::pair<uint64_t, int64_t>, torch::Tensor> latents;

  LatentObserver observer() {
    return [this](uint64_t job, int64_t first, const torch::Tensor& latent) {
      std::lock_guard lock(mutex);
      latents[{job, first}] = latent.clone();
    };
  }
  torch::Tensor get(uint64_t job, int64_t first) {
    std::lock_guard lock(mutex);
    auto it = latents.find({job, first});
    return it == latents.end() ? torch::Tensor() : it->second;
  }
};

class CoordinatorTest : public ::testing::Test {
 protected:
  CoordinatorTest() {
    configure(cfg_);
    sys_ = std::make_unique<caf::actor_system>(cfg_);
  }
  ~CoordinatorTest() override { sys_.reset(); }  // every actor stopped before the folder goes

  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("reel_coordinator_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    at::set_num_threads(1);  // the in-process references compute with what the workers use
  }
  void TearDown() override {
    for (auto& c : coordinators_) caf::anon_send_exit(c, caf::exit_reason::user_shutdown);
    coordinators_.clear();
    sys_->await_all_actors_done();
    fs::remove_all(dir_);
  }

  coordinator_actor start(int workers, std::vector<StageHost> stage_hosts = {}) {
    auto node = spawn_node(*sys_, kZoo);
    auto members = request_workers(*sys_, node, "local", workers);
    EXPECT_TRUE(members.ok());
    return start_on(std::move(*members), std::move(stage_hosts));
  }

  coordinator_actor start_on(std::vector<PoolMember> members, std::vector<StageHost> stage_hosts = {}) {
    auto store = spawn_job_store(*sys_, (dir_ / "jobs").string());
    EXPECT_TRUE(store.ok()) << store.error().message;
    CoordinatorOptions options;
    options.zoo = kZoo;
    options.worker_threads = 1;
    options.runner_threads = 1;
    options.on_latent = observed_.observer();
    options.stage_hosts = std::move(stage_hosts);
    options.warn = [](const std::string&) {};
    auto c = spawn_coordinator(*sys_, *store, std::move(members), options);
    EXPECT_TRUE(c.ok()) << c.error().message;
    coordinators_.push_back(*c);
    return *c;
  }

  JobSpec spec(const std::string& name) const {
    JobSpec s;
    s.prompt = kPrompt;
    s.model = "tiny-random";
    s.frames = 8;
    s.steps = 4;
    s.seed = 11;
    s.out = (dir_ / name).string();
    return s;
  }

  static uint64_t submit(caf::scoped_actor& self, const coordinator_actor& c, const JobSpec& s) {
    uint64_t id = 0;
    self->request(c, caf::infinite, submit_atom::value, s)
        .receive([&](uint64_t job) { id = job; }, [&](caf::error& e) { ADD_FAILURE() << to_string(e); });
    return id;
  }

  // Subscribes to job `id` and returns its events up to the final one. `on_event` sees each.
  static std::vector<JobEvent> follow(caf::scoped_actor& self, const coordinator_actor& c, uint64_t id,
                                      const std::function<void(const JobEvent&)>& on_event = {}) {
    std::vector<JobEvent> events;
    self->request(c, caf::infinite, subscribe_atom::value, id)
        .receive([](JobRecord&) {}, [&](caf::error& e) { ADD_FAILURE() << to_string(e); });
    bool ended = false;
    while (!ended) {
      self->receive(
          [&](job_event_atom, JobEvent& e) {
            if (e.id != id) return;
            events.push_back(e);
            if (on_event) on_event(e);
            ended = is_final(e.state);
          },
          caf::after(60s) >> [&] {
            ADD_FAILURE() << "job " << id << " did not end within 60 s";
            ended = true;
          });
    }
    return events;
  }

  static JobRecord status(caf::scoped_actor& self, const coordinator_actor& c, uint64_t id) {
    JobRecord r;
    self->request(c, caf::infinite, status_atom::value, id)
        .receive([&](JobRecord& rec) { r = std::move(rec); }, [&](caf::error& e) { ADD_FAILURE() << to_string(e); });
    return r;
  }

  static Expected<bool> cancel(caf::scoped_actor& self, const coordinator_actor& c, uint64_t id) {
    Expected<bool> out = false;
    self->request(c, caf::infinite, cancel_atom::value, id)
        .receive([&](bool b) { out = b; }, [&](caf::error& e) { out = from_caf_error(e); });
    return out;
  }

  static models::T2VModel tiny() {
    auto m = models::open_model("tiny-random", kZoo);
    EXPECT_TRUE(m.ok());
    return std::move(*m);
  }

  static pipeline::Conditioning conditioning(const models::T2VModel& m) {
    auto text = m.text_encoder->encode({kPrompt});
    EXPECT_TRUE(text.ok());
    return {*text, m.defaults.guidance != 1.0 ? torch::zeros_like(*text) : torch::Tensor()};
  }

  // Starts `count` `reel node` processes (into `nodes`) and connects to them, named by address.
  std::vector<StageHost> start_nodes(std::vector<NodeProcess>& nodes, int count) {
    const std::string reel = std::string(REEL_BINARY_DIR) + "/cli/reel";
    std::vector<StageHost> hosts;
    for (int i = 0; i < count; ++i) {
      auto node = NodeProcess::start(reel, "");
      EXPECT_TRUE(node.ok()) << node.error().message;
      if (!node.ok()) return {};
      nodes.push_back(std::move(*node));
      auto handle = connect_node(*sys_, nodes.back().address());
      EXPECT_TRUE(handle.ok()) << handle.error().message;
      if (!handle.ok()) return {};
      hosts.push_back(StageHost{*handle, nodes.back().address()});
    }
    return hosts;
  }

  // What a FIFO job of `frames` frames makes in process: FifoQueue over the DiT, one window per
  // call (as the coordinator sends them), one partition with lookahead, steps = the window.
  static std::vector<torch::Tensor> fifo_reference(models::T2VModel& m, int frames, uint64_t seed) {
    torch::NoGradGuard no_grad;
    const int window = m.defaults.frames;
    pipeline::DiTDenoiser denoiser(m.dit, m.prediction);
    pipeline::FifoOptions fo;
    fo.window_frames = window;
    fo.partitions = 1;
    fo.lookahead = true;
    fo.batch_windows = false;
    fo.steps = window;
    fo.shift = m.defaults.shift;
    fo.solver = m.defaults.solver;
    fo.guidance = m.defaults.guidance;
    fo.seed = seed;
    const auto cond = conditioning(m);
    std::vector<torch::Tensor> expected;
    auto queue = pipeline::FifoQueue::start(denoiser, cond, {1, m.dit->config().in_channels, window, 32, 32}, fo);
    EXPECT_TRUE(queue.ok()) << queue.error().message;
    if (!queue.ok()) return expected;
    auto stats = queue->run(denoiser, cond, frames, [&](int64_t, const torch::Tensor& latent) -> Status {
      expected.push_back(latent.clone());
      return {};
    });
    EXPECT_TRUE(stats.ok()) << stats.error().message;
    return expected;
  }

  caf::actor_system_config cfg_;
  std::unique_ptr<caf::actor_system> sys_;
  fs::path dir_;
  Observed observed_;
  std::vector<coordinator_actor> coordinators_;
};

TEST_F(CoordinatorTest, SubmitThenSubscribeEndsDoneWithAnMp4EqualToTheInProcessRun) {
  auto c = start(1);
  caf::scoped_actor self{*sys_};
  const JobSpec s = spec("standard.mp4");
  const uint64_t id = submit(self, c, s);
  ASSERT_GT(id, 0u);
  auto events = follow(self, c, id);
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().state, JobState::done);
  EXPECT_EQ(events.back().message, s.out);
  int64_t last_done = 0;
  for (const auto& e : events) {
    EXPECT_GE(e.done, last_done) << "progress never goes back";
    last_done = e.done;
  }
  EXPECT_EQ(last_done, 4);

  auto info = video::probe(s.out);
  ASSERT_TRUE(info.ok()) << info.error().message;
  EXPECT_EQ(info->frames, 8);
  EXPECT_FALSE(fs::exists(s.out + ".part"));

  const JobRecord r = status(self, c, id);
  EXPECT_EQ(r.state, JobState::done);
  EXPECT_EQ(r.result, s.out);
  EXPECT_EQ(r.attempts, 1);
  EXPECT_EQ(r.stats.model_calls, 4);
  EXPECT_EQ(r.stats.frames, 8);
  EXPECT_GT(r.finished_ms, 0);
  EXPECT_EQ(r.spec.width, 32) << "the recorded spec is the resolved one";

  // The same job in this thread, the pipeline called directly, gives the same latent.
  auto m = tiny();
  torch::NoGradGuard no_grad;
  pipeline::DiTDenoiser denoiser(m.dit, m.prediction);
  const pipeline::SampleOptions opts{.steps = 4, .shift = m.defaults.shift, .solver = m.defaults.solver,
                                     .guidance = m.defaults.guidance, .seed = 11};
  auto direct = pipeline::sample(denoiser, conditioning(m), {1, m.dit->config().in_channels, 8, 32, 32}, opts);
  ASSERT_TRUE(direct.ok()) << direct.error().message;
  auto through = observed_.get(id, 0);
  ASSERT_TRUE(through.defined());
  EXPECT_TRUE(torch::equal(direct->latent, through));
}

TEST_F(CoordinatorTest, CancelStopsRunningAndQueuedJobsAndLeavesNoFile) {
  auto c = start(1);
  caf::scoped_actor self{*sys_};
  JobSpec long_job = spec("long.mp4");
  long_job.steps = 2000;
  JobSpec queued_job = spec("queued.mp4");
  const uint64_t a = submit(self, c, long_job);
  const uint64_t b = submit(self, c, queued_job);

  // b waits behind a: cancelling it ends it at once.
  auto cb = cancel(self, c, b);
  ASSERT_TRUE(cb.ok());
  EXPECT_TRUE(*cb);
  EXPECT_EQ(status(self, c, b).state, JobState::cancelled);

  bool asked = false;
  auto events = follow(self, c, a, [&](const JobEvent& e) {
    if (!asked && e.state == JobState::running && e.done >= 1) {
      asked = true;
      auto ca = cancel(self, c, a);
      ASSERT_TRUE(ca.ok());
      EXPECT_TRUE(*ca);
    }
  });
  ASSERT_TRUE(asked);
  EXPECT_EQ(events.back().state, JobState::cancelled);
  EXPECT_LT(events.back().done, 2000);
  EXPECT_FALSE(fs::exists(long_job.out));
  EXPECT_FALSE(fs::exists(long_job.out + ".part"));
  EXPECT_FALSE(fs::exists(queued_job.out));

  auto again = cancel(self, c, a);
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(*again) << "an ended job cannot be cancelled";
  // Subscribing to an ended job gives its final event at once.
  auto late = follow(self, c, b);
  ASSERT_EQ(late.size(), 1u);
  EXPECT_EQ(late[0].state, JobState::cancelled);
}

TEST_F(CoordinatorTest, UnknownJobsAndEmptyPromptsAreErrors) {
  auto c = start(1);
  caf::scoped_actor self{*sys_};
  auto unknown = cancel(self, c, 12345);
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().code, Errc::not_found);
  self->request(c, caf::infinite, status_atom::value, uint64_t{12345})
      .receive([](JobRecord&) { FAIL() << "status of an unknown job"; },
               [](caf::error& e) { EXPECT_EQ(from_caf_error(e).code, Errc::not_found); });
  JobSpec s = spec("x.mp4");
  s.prompt = "  ";
  self->request(c, caf::infinite, submit_atom::value, s)
      .receive([](uint64_t) { FAIL() << "an empty prompt was accepted"; },
               [](caf::error& e) { EXPECT_EQ(from_caf_error(e).code, Errc::invalid_argument); });
}

TEST_F(CoordinatorTest, AJobWithASizeTheModelCannotTakeFailsWithTheReason) {
  auto c = start(1);
  caf::scoped_actor self{*sys_};
  JobSpec s = spec("odd.mp4");
  s.width = 30;
  s.height = 30;
  const uint64_t id = submit(self, c, s);
  auto events = follow(self, c, id);
  EXPECT_EQ(events.back().state, JobState::failed);
  EXPECT_NE(events.back().message.find("multiple"), std::string::npos) << events.back().message;
  EXPECT_FALSE(fs::exists(s.out));
  EXPECT_FALSE(fs::exists(s.out + ".part"));
}

TEST_F(CoordinatorTest, PicksUpQueuedAndInterruptedJobsAfterARestart) {
  // What a coordinator that crashed leaves behind: one job accepted but not started, one
  // interrupted while running, one finished.
  uint64_t queued = 0, interrupted = 0, finished = 0;
  {
    auto store = JobStore::open((dir_ / "jobs").string());
    ASSERT_TRUE(store.ok()) << store.error().message;
    auto q = (*store)->create(spec("queued.mp4"));
    auto i = (*store)->create(spec("interrupted.mp4"));
    auto f = (*store)->create(spec("finished.mp4"));
    ASSERT_TRUE(q.ok() && i.ok() && f.ok());
    i->state = JobState::running;
    i->attempts = 1;
    i->done = 2;
    f->state = JobState::done;
    f->attempts = 1;
    f->result = "finished.mp4";
    ASSERT_TRUE((*store)->put(*i).ok());
    ASSERT_TRUE((*store)->put(*f).ok());
    queued = q->id;
    interrupted = i->id;
    finished = f->id;
  }
  auto c = start(1);
  caf::scoped_actor self{*sys_};
  EXPECT_EQ(follow(self, c, queued).back().state, JobState::done);
  EXPECT_EQ(follow(self, c, interrupted).back().state, JobState::done);
  EXPECT_TRUE(fs::exists(spec("queued.mp4").out));
  EXPECT_TRUE(fs::exists(spec("interrupted.mp4").out));
  EXPECT_FALSE(fs::exists(spec("finished.mp4").out)) << "a finished job is not run again";
  EXPECT_EQ(status(self, c, queued).attempts, 1);
  EXPECT_EQ(status(self, c, interrupted).attempts, 2);
  EXPECT_EQ(status(self, c, finished).attempts, 1);
  // New jobs get ids after the store's.
  EXPECT_GT(submit(self, c, spec("new.mp4")), finished);
}

TEST_F(CoordinatorTest, FifoOnTwoWorkersEqualsTheInProcessUnbatchedRunBitForBit) {
  auto m = tiny();
  const int window = m.defaults.frames;
  const int frames = window + 4;
  const int steps = window;  // one partition with lookahead: the queue is `window` frames long

  const auto expected = fifo_reference(m, frames, 5);

  auto c = start(2);
  caf::scoped_actor self{*sys_};
  JobSpec s = spec("fifo.mp4");
  s.mode = JobMode::fifo;
  s.frames = frames;
  s.steps = steps;
  s.seed = 5;
  const uint64_t id = submit(self, c, s);
  auto events = follow(self, c, id);
  ASSERT_EQ(events.back().state, JobState::done) << events.back().message;
  EXPECT_EQ(events.back().total, frames);

  ASSERT_EQ(expected.size(), static_cast<size_t>(frames));
  for (int f = 0; f < frames; ++f) {
    auto got = observed_.get(id, f);
    ASSERT_TRUE(got.defined()) << "frame " << f;
    EXPECT_TRUE(torch::equal(expected[static_cast<size_t>(f)], got)) << "frame " << f;
  }
  auto info = video::probe(s.out);
  ASSERT_TRUE(info.ok()) << info.error().message;
  EXPECT_EQ(info->frames, frames);
}

TEST_F(CoordinatorTest, ClipsJobOnTwoWorkersWritesEveryFrame) {
  auto c = start(2);
  caf::scoped_actor self{*sys_};
  JobSpec s = spec("clips.mp4");
  s.mode = JobMode::clips;
  s.frames = 16;
  s.steps = 3;
  s.clips = 2;
  s.context_frames = 2;
  s.global_frames = 1;
  const uint64_t id = submit(self, c, s);
  auto events = follow(self, c, id);
  ASSERT_EQ(events.back().state, JobState::done) << events.back().message;
  EXPECT_EQ(events.back().done, 3);
  auto info = video::probe(s.out);
  ASSERT_TRUE(info.ok()) << info.error().message;
  EXPECT_EQ(info->frames, 16);
  EXPECT_TRUE(observed_.get(id, 0).defined());
  EXPECT_TRUE(observed_.get(id, 8).defined());
}

TEST_F(CoordinatorTest, CfgParallelOnTwoWorkersMatchesTheGuidedRun) {
  auto c = start(2);
  caf::scoped_actor self{*sys_};
  JobSpec s = spec("cfg.mp4");
  s.cfg_parallel = true;
  const uint64_t id = submit(self, c, s);
  auto events = follow(self, c, id);
  ASSERT_EQ(events.back().state, JobState::done) << events.back().message;
  EXPECT_EQ(status(self, c, id).stats.model_calls, 8) << "two half calls per step";

  auto m = tiny();
  torch::NoGradGuard no_grad;
  pipeline::DiTDenoiser denoiser(m.dit, m.prediction);
  const pipeline::SampleOptions opts{.steps = 4, .shift = m.defaults.shift, .solver = m.defaults.solver,
                                     .guidance = m.defaults.guidance, .seed = 11};
  auto direct = pipeline::sample(denoiser, conditioning(m), {1, m.dit->config().in_channels, 8, 32, 32}, opts);
  ASSERT_TRUE(direct.ok());
  auto through = observed_.get(id, 0);
  ASSERT_TRUE(through.defined());
  // Not bit for bit: the halves run as two batch-1 calls instead of one batch-2 call.
  EXPECT_TRUE(torch::allclose(direct->latent, through, 1e-4, 1e-5));
}

}  // namespace
}  // namespace reel::actors

namespace reel::actors {
namespace {

// The PipeFusion job of the tests below and what the one-thread simulation makes of it.
struct PipeFusionCase {
  JobSpec spec;
  torch::Tensor expected;
};

PipeFusionCase pipefusion_case(models::T2VModel& m, const pipeline::Conditioning& cond, JobSpec s) {
  s.mode = JobMode::pipefusion;
  s.frames = 8;
  s.steps = 8;
  s.stages = 2;
  s.patches = 2;
  s.warmup_steps = 1;
  s.seed = 17;
  pipeline::PipeFusionPlan plan;
  plan.stages = s.stages;
  plan.patches = s.patches;
  plan.warmup_steps = s.warmup_steps;
  pipeline::SampleOptions o;
  o.steps = s.steps;
  o.shift = m.defaults.shift;
  o.solver = m.defaults.solver;
  o.guidance = m.defaults.guidance;
  o.seed = s.seed;
  torch::NoGradGuard no_grad;
  auto reference = pipeline::sample_pipefusion(m.dit, m.prediction, cond,
                                               {1, m.dit->config().in_channels, s.frames, 32, 32}, o, plan);
  EXPECT_TRUE(reference.ok()) << reference.error().message;
  return {s, reference.ok() ? reference->latent : torch::Tensor()};
}

TEST_F(CoordinatorTest, PipeFusionJobOnStagesInThisProcessEqualsTheSimulation) {
  auto m = tiny();
  auto pf = pipefusion_case(m, conditioning(m), spec("pipefusion.mp4"));
  auto c = start(1);  // no stage hosts: a node of this process
  caf::scoped_actor self{*sys_};
  const uint64_t id = submit(self, c, pf.spec);
  auto events = follow(self, c, id);
  ASSERT_EQ(events.back().state, JobState::done) << events.back().message;
  EXPECT_EQ(events.back().total, pf.spec.steps);
  auto got = observed_.get(id, 0);
  ASSERT_TRUE(got.defined());
  EXPECT_TRUE(torch::equal(got, pf.expected));
  const JobRecord r = status(self, c, id);
  EXPECT_EQ(r.stats.replans, 0);
  EXPECT_EQ(r.stats.model_calls, 0);  // nothing ran on the pool's worker
  auto info = video::probe(pf.spec.out);
  ASSERT_TRUE(info.ok()) << info.error().message;
  EXPECT_EQ(info->frames, pf.spec.frames);
}

TEST_F(CoordinatorTest, PipeFusionJobsWithPlansTheModelCannotRunFailWithTheReason) {
  auto c = start(1);
  caf::scoped_actor self{*sys_};
  JobSpec s = spec("bad.mp4");
  s.mode = JobMode::pipefusion;
  s.stages = 64;  // more stages than the model has blocks
  auto events = follow(self, c, submit(self, c, s));
  ASSERT_EQ(events.back().state, JobState::failed);
  EXPECT_NE(events.back().message.find("stage"), std::string::npos) << events.back().message;
  s.stages = 2;
  s.split = "diagonal";
  s.out = (dir_ / "bad2.mp4").string();
  events = follow(self, c, submit(self, c, s));
  ASSERT_EQ(events.back().state, JobState::failed);
  EXPECT_NE(events.back().message.find("diagonal"), std::string::npos) << events.back().message;
  EXPECT_FALSE(fs::exists(s.out));
  EXPECT_FALSE(fs::exists(s.out + ".part"));
  s.split = "frames";
  s.steps = 4;
  s.warmup_steps = 5;  // more synchronous steps than the job has
  s.out = (dir_ / "bad3.mp4").string();
  events = follow(self, c, submit(self, c, s));
  ASSERT_EQ(events.back().state, JobState::failed);
  EXPECT_NE(events.back().message.find("warm-up steps (5)"), std::string::npos) << events.back().message;
  EXPECT_FALSE(fs::exists(s.out));
}

TEST_F(CoordinatorTest, PipeFusionJobIsPlannedAgainOnTheNodeLeftWhenOneIsKilled) {
  auto m = tiny();
  auto pf = pipefusion_case(m, conditioning(m), spec("replanned.mp4"));
  std::vector<NodeProcess> nodes;
  const auto hosts = start_nodes(nodes, 2);
  ASSERT_EQ(hosts.size(), 2u);
  auto c = start(1, hosts);
  caf::scoped_actor self{*sys_};
  const uint64_t id = submit(self, c, pf.spec);
  bool killed = false;
  auto events = follow(self, c, id, [&](const JobEvent& e) {
    if (!killed && e.state == JobState::running && e.done >= 2) {  // mid-job, one stage on each node
      nodes[1].kill_hard();
      killed = true;
    }
  });
  ASSERT_TRUE(killed);
  ASSERT_EQ(events.back().state, JobState::done) << events.back().message;
  const JobRecord r = status(self, c, id);
  EXPECT_EQ(r.stats.replans, 1);
  // Both stages on the node left, same N, M, W and threads: the simulation's latent.
  auto got = observed_.get(id, 0);
  ASSERT_TRUE(got.defined());
  EXPECT_TRUE(torch::equal(got, pf.expected));
  auto info = video::probe(pf.spec.out);
  ASSERT_TRUE(info.ok()) << info.error().message;
  EXPECT_EQ(info->frames, pf.spec.frames);
}

TEST_F(CoordinatorTest, PipeFusionJobFailsClearlyWhenEveryStageHostIsGone) {
  std::vector<NodeProcess> nodes;
  const auto hosts = start_nodes(nodes, 1);
  ASSERT_EQ(hosts.size(), 1u);
  auto c = start(1, hosts);
  nodes[0].kill_hard();
  caf::scoped_actor self{*sys_};
  JobSpec s = spec("gone.mp4");
  s.mode = JobMode::pipefusion;
  auto events = follow(self, c, submit(self, c, s));
  ASSERT_EQ(events.back().state, JobState::failed);
  EXPECT_NE(events.back().message.find("no stage host answers"), std::string::npos) << events.back().message;
  EXPECT_FALSE(fs::exists(s.out));
}

TEST_F(CoordinatorTest, FifoJobOnTwoNodeProcessesCompletesUnchangedWhenOneIsKilledMidJob) {
  auto m = tiny();
  const int window = m.defaults.frames;
  const int frames = window + 8;
  const auto expected = fifo_reference(m, frames, 9);
  ASSERT_EQ(expected.size(), static_cast<size_t>(frames));
  std::vector<NodeProcess> nodes;
  const auto hosts = start_nodes(nodes, 2);
  ASSERT_EQ(hosts.size(), 2u);
  std::vector<PoolMember> members;
  for (const auto& host : hosts) {
    auto w = request_workers(*sys_, host.node, host.name, 1);
    ASSERT_TRUE(w.ok()) << w.error().message;
    members.push_back((*w)[0]);
  }
  auto c = start_on(members);
  caf::scoped_actor self{*sys_};
  JobSpec s = spec("fifo_killed.mp4");
  s.mode = JobMode::fifo;
  s.frames = frames;
  s.steps = window;
  s.seed = 9;
  const uint64_t id = submit(self, c, s);
  bool killed = false;
  auto events = follow(self, c, id, [&](const JobEvent& e) {
    if (!killed && e.state == JobState::running && e.done >= 3) {  // frames out, both workers busy
      nodes[1].kill_hard();
      killed = true;
    }
  });
  ASSERT_TRUE(killed);
  ASSERT_EQ(events.back().state, JobState::done) << events.back().message;
  const JobRecord r = status(self, c, id);
  EXPECT_EQ(r.stats.workers, 1);  // the killed node's worker was noticed lost
  for (int f = 0; f < frames; ++f) {
    auto got = observed_.get(id, f);
    ASSERT_TRUE(got.defined()) << "frame " << f;
    EXPECT_TRUE(torch::equal(expected[static_cast<size_t>(f)], got)) << "frame " << f;
  }
  auto info = video::probe(s.out);
  ASSERT_TRUE(info.ok()) << info.error().message;
  EXPECT_EQ(info->frames, frames);
}

}  // namespace
}  // namespace reel::actors
