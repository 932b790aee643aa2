// `reel generate` through the coordinator (--workers, --nodes, --mode pipefusion) and `reel node`,
// end to end: outputs, equal videos, exit codes and messages.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>

#include "actors/node_process.hpp"
#include "video/mp4_reader.hpp"

namespace {

namespace fs = std::filesystem;

const std::string kReel = std::string(REEL_BINARY_DIR) + "/cli/reel";
const std::string kZoo = std::string(REEL_SOURCE_DIR) + "/models/zoo";
const std::string kPrompt = "\"a large red circle moving right on a striped navy background\"";

struct Run {
  int code = -1;
  std::string output;  // stdout and stderr together
};

Run reel(const std::string& args) {
  const std::string cmd = "OMP_WAIT_POLICY=passive " + kReel + " " + args + " 2>&1";
  Run run;
  FILE* pipe = popen(cmd.c_str(), "r");
  if (pipe == nullptr) return run;
  std::array<char, 4096> buf{};
  size_t n = 0;
  while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) run.output.append(buf.data(), n);
  const int status = pclose(pipe);
  run.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return run;
}

class ClusterCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("reel_cluster_cli_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  // Exit 2, one line starting "reel: error:" that mentions `mentions`, no file left.
  void expect_usage_error(const std::string& args, const std::string& mentions) {
    auto run = reel(args);
    EXPECT_EQ(run.code, 2) << args << "\n" << run.output;
    EXPECT_EQ(run.output.rfind("reel: error:", 0), 0u) << run.output;
    EXPECT_NE(run.output.find(mentions), std::string::npos) << run.output;
    EXPECT_TRUE(fs::is_empty(dir_)) << "left files behind for: " << args;
  }

  static std::vector<reel::video::Frame> frames_of(const std::string& file) {
    auto v = reel::video::read_video(file);
    EXPECT_TRUE(v.ok()) << file << ": " << v.error().message;
    return v.ok() ? std::move(*v) : std::vector<reel::video::Frame>{};
  }

  fs::path dir_;
};

// Equal decoded frames: the same latent, encoded losslessly.
void expect_same_video(const std::vector<reel::video::Frame>& a, const std::vector<reel::video::Frame>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i].rgb, b[i].rgb) << "frame " << i;
}

TEST_F(ClusterCli, FifoOnTwoLocalWorkersWritesTheVideoInProcessFifoWrites) {
  const std::string common = "generate " + kPrompt + " --mode fifo --frames 12 --steps 8 --upscale 1 --crf 0 -q ";
  auto pooled = reel(common + "--workers 2 --threads 2 -o " + path("workers.mp4"));
  ASSERT_EQ(pooled.code, 0) << pooled.output;
  EXPECT_NE(pooled.output.find("on 2 workers"), std::string::npos) << pooled.output;
  auto info = reel::video::probe(path("workers.mp4"));
  ASSERT_TRUE(info.ok()) << info.error().message;
  EXPECT_EQ(info->frames, 12);
  EXPECT_FALSE(fs::exists(path("workers.mp4.part")));
}

TEST_F(ClusterCli, JobsOnWorkersShareTheCacheWithInProcessRuns) {
  const std::string common = "generate " + kPrompt + " --steps 10 --upscale 1 -q --cache " + path("cache") + " ";
  // In-process first: a miss that stores; then the same prompt through the coordinator hits it.
  auto first = reel(common + "-o " + path("a.mp4"));
  ASSERT_EQ(first.code, 0) << first.output;
  EXPECT_NE(first.output.find("cache miss"), std::string::npos) << first.output;
  auto second = reel(common + "--workers 2 --threads 2 -o " + path("b.mp4"));
  ASSERT_EQ(second.code, 0) << second.output;
  EXPECT_NE(second.output.find("cache hit (whole"), std::string::npos) << second.output;
  EXPECT_NE(second.output.find("started at step"), std::string::npos) << second.output;
  // A different prompt through the coordinator misses and stores; in-process then hits it.
  const std::string other = "generate \"a small green square moving up on a checkered background\" --steps 10 "
                            "--upscale 1 -q --cache " + path("cache") + " ";
  auto third = reel(other + "--workers 1 -o " + path("c.mp4"));
  ASSERT_EQ(third.code, 0) << third.output;
  EXPECT_NE(third.output.find("cache miss"), std::string::npos) << third.output;
  auto fourth = reel(other + "-o " + path("d.mp4"));
  ASSERT_EQ(fourth.code, 0) << fourth.output;
  EXPECT_NE(fourth.output.find("cache hit (whole"), std::string::npos) << fourth.output;
}

TEST_F(ClusterCli, TheCacheActorUsesTheChosenEmbedder) {
  // The text encoder's entries made in process are hits through the coordinator's cache actor
  // only if the actor embeds prompts with the same text encoder.
  const std::string common = "generate " + kPrompt + " --steps 10 --upscale 1 -q --cache " + path("cache") +
                             " --cache-embedder text-encoder ";
  auto first = reel(common + "-o " + path("a.mp4"));
  ASSERT_EQ(first.code, 0) << first.output;
  EXPECT_NE(first.output.find("cache miss"), std::string::npos) << first.output;
  auto second = reel(common + "--workers 1 -o " + path("b.mp4"));
  ASSERT_EQ(second.code, 0) << second.output;
  EXPECT_NE(second.output.find("cache hit (whole"), std::string::npos) << second.output;
  auto bad = reel("generate " + kPrompt + " --steps 10 -q --cache " + path("cache") +
                  " --cache-embedder text-encoder:no-such-model --workers 1 -o " + path("c.mp4"));
  EXPECT_NE(bad.code, 0) << bad.output;
  EXPECT_NE(bad.output.find("no-such-model"), std::string::npos) << bad.output;
  EXPECT_FALSE(fs::exists(path("c.mp4")));
}

TEST_F(ClusterCli, PipeFusionModeWritesTheSameVideoTwiceAndCloseToSequential) {
  const std::string common = "generate " + kPrompt + " --steps 8 --upscale 1 --crf 0 -q ";
  auto a = reel(common + "--threads 2 --mode pipefusion --stages 2 --patches 2 -o " + path("a.mp4"));
  ASSERT_EQ(a.code, 0) << a.output;
  EXPECT_NE(a.output.find("pipefusion 2 stages"), std::string::npos) << a.output;
  auto b = reel(common + "--threads 2 --mode pipefusion --stages 2 --patches 2 -o " + path("b.mp4"));
  ASSERT_EQ(b.code, 0) << b.output;
  expect_same_video(frames_of(path("a.mp4")), frames_of(path("b.mp4")));
  // One patch is sequential sampling: the pipeline then changes nothing but where blocks run.
  auto one = reel(common + "--threads 2 --mode pipefusion --stages 2 --patches 1 -o " + path("one.mp4"));
  ASSERT_EQ(one.code, 0) << one.output;
  auto seq = reel(common + "--threads 1 -o " + path("seq.mp4"));
  ASSERT_EQ(seq.code, 0) << seq.output;
  // Stages of one thread each against one thread: bit for bit.
  expect_same_video(frames_of(path("one.mp4")), frames_of(path("seq.mp4")));
}

TEST_F(ClusterCli, PipeFusionOverTwoNodeProcessesEqualsTheLocalRun) {
  auto node_a = reel::actors::NodeProcess::start(kReel, kZoo);
  ASSERT_TRUE(node_a.ok()) << node_a.error().message;
  auto node_b = reel::actors::NodeProcess::start(kReel, kZoo);
  ASSERT_TRUE(node_b.ok()) << node_b.error().message;
  const std::string common = "generate " + kPrompt + " --steps 8 --upscale 1 --crf 0 -q "
                             "--mode pipefusion --stages 2 --patches 4 ";
  // The same threads per stage on both sides (2: one stage on each node's 2 threads, two stages
  // sharing 4 here): BLAS splits a matrix product by its thread count, and the last bits of a
  // product move with it (the model's text rows differ by 2e-7 between 1 and 2 threads).
  auto remote = reel(common + "--threads 2 --nodes " + node_a->address() + "," + node_b->address() + " -o " +
                     path("r.mp4"));
  ASSERT_EQ(remote.code, 0) << remote.output;
  EXPECT_NE(remote.output.find("on 2 hosts"), std::string::npos) << remote.output;
  auto local = reel(common + "--threads 4 -o " + path("l.mp4"));
  ASSERT_EQ(local.code, 0) << local.output;
  expect_same_video(frames_of(path("r.mp4")), frames_of(path("l.mp4")));
}

TEST_F(ClusterCli, BadClusterAndPipeFusionOptionsAreUsageErrors) {
  const std::string g = "generate " + kPrompt + " -q -o " + path("v.mp4") + " ";
  expect_usage_error(g + "--nodes localhost", "localhost");
  expect_usage_error(g + "--nodes 127.0.0.1:99999", "99999");
  expect_usage_error(g + "--nodes a:1,,b:2", "empty entry");
  expect_usage_error(g + "--nodes ''", "--nodes: empty");  // not silently run in-process
  expect_usage_error(g + "--workers -1", "--workers");
  expect_usage_error(g + "--workers 2 --workers-per-node 0", "--workers-per-node");
  expect_usage_error(g + "--cfg-parallel --mode fifo --frames 16", "--cfg-parallel");
  expect_usage_error(g + "--mode pipefusion --stages 0", "--stages");
  expect_usage_error(g + "--mode pipefusion --patches 0", "--patches");
  expect_usage_error(g + "--mode pipefusion --warmup -1", "--warmup");
  expect_usage_error(g + "--mode pipefusion --steps 4 --warmup 5", "--warmup 5 is more than the steps (4)");
  expect_usage_error(g + "--mode pipefusion --split diagonal", "--split");
  expect_usage_error(g + "--mode pipefusion --stages 9", "9 stages");
}

TEST_F(ClusterCli, AnUnreachableNodeIsAnErrorThatNamesIt) {
  // Port 1: nothing listens there.
  auto run = reel("generate " + kPrompt + " -q --nodes 127.0.0.1:1 -o " + path("v.mp4"));
  EXPECT_EQ(run.code, 1) << run.output;
  EXPECT_NE(run.output.find("127.0.0.1:1"), std::string::npos) << run.output;
  EXPECT_FALSE(fs::exists(path("v.mp4")));
}

}  // namespace
