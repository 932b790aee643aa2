// The job directory of resumable FIFO and clips runs (cli/long_job.hpp): job.json for both modes
// and the old FIFO-only form, and the clips checkpoint: a run stopped after a random step, saved,
// loaded and continued equals the uninterrupted run bit for bit; damaged files are refused.
#include "cli/long_job.hpp"

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "pipeline/clips.hpp"

namespace reel::cli {
namespace {

namespace fs = std::filesystem;
using models::Prediction;
using models::SolverKind;
using pipeline::ClipsOptions;
using pipeline::ClipsState;
using pipeline::VideoClips;

constexpr int64_t kB = 1, kCh = 3, kN = 12, kH = 4, kW = 5;

// An attention-like model: each output frame mixes all frames of its window with weights that
// rise with the position, plus a target set by the text; it predicts the velocity.
class MixingFake : public pipeline::Denoiser {
 public:
  Expected<torch::Tensor> denoise(const torch::Tensor& x, const torch::Tensor& sigma,
                                  const torch::Tensor& text) override {
    const int64_t w = x.size(2);
    const torch::Tensor level = text.select(1, 0).select(1, 0).view({-1, 1, 1, 1, 1});
    torch::Tensor context = torch::zeros_like(x.narrow(2, 0, 1));
    for (int64_t p = 0; p < w; ++p) context = context + x.narrow(2, p, 1) * (static_cast<double>(p + 1) / (w * w));
    const torch::Tensor x0 = x * 0.5 + context * 0.3 + level * 0.2;
    return (x - x0) / sigma.view({x.size(0), 1, w, 1, 1});
  }
  Prediction prediction() const override { return Prediction::velocity; }
};

class JobDir : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = (fs::temp_directory_path() /
            ("reel_job_" + std::to_string(::getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name()))
               .string();
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string state_path() const { return dir_ + "/state.safetensors"; }
  std::string dir_;
};

ClipsOptions options(SolverKind solver) {
  ClipsOptions o;
  o.clips = 3;
  o.context_frames = 1;
  o.global_frames = 1;
  o.steps = 8;
  o.shift = 3.0;
  o.solver = solver;
  o.guidance = 2.0;  // with a negative prompt: guidance doubles the rows
  o.seed = 11;
  return o;
}

const pipeline::Conditioning kCond{torch::full({kB, 5, 6}, 1.0F), torch::full({kB, 5, 6}, 0.25F)};
const std::vector<int64_t> kClipShape{kB, kCh, kN / 3, kH, kW};

torch::Tensor uninterrupted(const ClipsOptions& o) {
  auto clips = VideoClips::start({kB, kCh, kN, kH, kW}, o);
  EXPECT_TRUE(clips.ok());
  MixingFake model;
  auto result = clips->run(model, kCond, {});
  EXPECT_TRUE(result.ok()) << result.error().message;
  return result->latent;
}

// Runs `stop` steps and saves the state into `dir` (the run is gone afterwards).
void run_and_save(const std::string& dir, const ClipsOptions& o, int stop) {
  auto clips = VideoClips::start({kB, kCh, kN, kH, kW}, o);
  ASSERT_TRUE(clips.ok());
  MixingFake model;
  pipeline::DenoiserClipRunner runner(model, kCond, o.guidance, o.batch_clips);
  for (int s = 0; s < stop; ++s) ASSERT_TRUE(clips->step(runner).ok());
  ASSERT_TRUE(save_clips_state(dir, clips->state()).ok());
}

TEST_F(JobDir, AClipsRunStoppedAfterARandomStepSavedAndLoadedEqualsTheUninterruptedRun) {
  const auto seed = static_cast<unsigned>(std::chrono::steady_clock::now().time_since_epoch().count());
  std::mt19937 rng(seed);
  for (SolverKind solver : {SolverKind::euler, SolverKind::unipc, SolverKind::dpmpp}) {
    const ClipsOptions o = options(solver);
    const torch::Tensor whole = uninterrupted(o);
    const int random_stop = std::uniform_int_distribution<int>(1, o.steps - 1)(rng);
    for (int stop : {random_stop, o.steps}) {  // o.steps: every step done, no clip written yet
      SCOPED_TRACE(std::string(models::solver_kind_name(solver)) + ": stopped after step " + std::to_string(stop) +
                   " (rng seed " + std::to_string(seed) + ")");
      run_and_save(dir_, o, stop);
      auto loaded = load_clips_state(dir_, o, kClipShape);
      ASSERT_TRUE(loaded.ok()) << loaded.error().message;
      EXPECT_EQ(loaded->step, stop);
      auto resumed = VideoClips::from_state(std::move(*loaded));
      ASSERT_TRUE(resumed.ok()) << resumed.error().message;
      MixingFake model;
      int offered = 0;
      auto result = resumed->run(model, kCond, [&](int, int64_t, const torch::Tensor&) {
        ++offered;
        return Status{};
      });
      ASSERT_TRUE(result.ok()) << result.error().message;
      EXPECT_EQ(result->stats.steps, o.steps - stop);
      EXPECT_EQ(offered, o.clips);
      EXPECT_TRUE(torch::equal(result->latent, whole));  // bit for bit
    }
  }
}

TEST_F(JobDir, ADamagedOrForeignClipsCheckpointIsRefused) {
  const ClipsOptions o = options(SolverKind::unipc);
  auto none = load_clips_state(dir_, o, kClipShape);
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().code, Errc::not_found);

  run_and_save(dir_, o, 3);
  ASSERT_TRUE(load_clips_state(dir_, o, kClipShape).ok());
  auto wrong_shape = load_clips_state(dir_, o, {kB, kCh, 5, kH, kW});
  ASSERT_FALSE(wrong_shape.ok());
  EXPECT_EQ(wrong_shape.error().code, Errc::corrupt_data);
  ClipsOptions other = o;
  other.clips = 4;
  EXPECT_FALSE(load_clips_state(dir_, other, kClipShape).ok());

  // One byte of tensor data flipped: the header is fine, the checksum is not.
  const auto size = fs::file_size(state_path());
  {
    std::fstream f(state_path(), std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(static_cast<std::streamoff>(size - 7));
    char c = 0;
    f.get(c);
    f.seekp(static_cast<std::streamoff>(size - 7));
    f.put(static_cast<char>(c ^ 0x10));
  }
  auto flipped = load_clips_state(dir_, o, kClipShape);
  ASSERT_FALSE(flipped.ok());
  EXPECT_EQ(flipped.error().code, Errc::corrupt_data);
  EXPECT_NE(flipped.error().message.find("checksum"), std::string::npos) << flipped.error().message;

  fs::resize_file(state_path(), size / 2);  // cut short
  auto cut = load_clips_state(dir_, o, kClipShape);
  ASSERT_FALSE(cut.ok());
  EXPECT_EQ(cut.error().code, Errc::corrupt_data);
  EXPECT_NE(cut.error().message.find("damaged"), std::string::npos) << cut.error().message;

  // A FIFO checkpoint is not a clips one, and the other way round.
  pipeline::FifoState fifo;
  fifo.queue = torch::randn({1, 3, 4, 2, 2});
  ASSERT_TRUE(save_fifo_state(dir_, fifo).ok());
  auto not_clips = load_clips_state(dir_, o, kClipShape);
  ASSERT_FALSE(not_clips.ok());
  EXPECT_EQ(not_clips.error().code, Errc::corrupt_data);
  run_and_save(dir_, o, 1);
  EXPECT_FALSE(load_fifo_state(dir_, {}).ok());
}

TEST_F(JobDir, AFifoCheckpointRoundTrips) {
  pipeline::FifoState fifo;
  fifo.queue = torch::randn({1, 3, 6, 2, 2});
  fifo.head_frame = -2;
  models::SolverState s;
  s.step = 3;
  s.x0_history = {torch::randn({1, 3, 1, 2, 2}), torch::randn({1, 3, 1, 2, 2})};
  s.last_sample = torch::randn({1, 3, 1, 2, 2});
  s.last_order = 2;
  fifo.solver_states = {s, models::SolverState{.step = 1}};
  fifo.first_clip = torch::randn({1, 3, 4, 2, 2});
  ASSERT_TRUE(save_fifo_state(dir_, fifo).ok());
  auto back = load_fifo_state(dir_, {});
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_TRUE(torch::equal(back->queue, fifo.queue));
  ASSERT_TRUE(back->first_clip.defined());  // a checkpoint inside the first clip keeps it
  EXPECT_TRUE(torch::equal(back->first_clip, fifo.first_clip));
  EXPECT_EQ(back->head_frame, -2);
  ASSERT_EQ(back->solver_states.size(), 2u);
  EXPECT_EQ(back->solver_states[0].step, 3);
  EXPECT_EQ(back->solver_states[0].last_order, 2);
  ASSERT_EQ(back->solver_states[0].x0_history.size(), 2u);
  EXPECT_TRUE(torch::equal(back->solver_states[0].x0_history[1], s.x0_history[1]));
  EXPECT_TRUE(torch::equal(back->solver_states[0].last_sample, s.last_sample));
  EXPECT_EQ(back->solver_states[1].step, 1);
  EXPECT_FALSE(back->solver_states[1].last_sample.defined());
}

TEST_F(JobDir, JobJsonKeepsTheModeAndItsSettingsAndReadsOldFifoJobs) {
  LongJob job;
  job.prompt = "a small red circle moving right on a sand background";
  job.model = "tiny-random";
  job.model_source = "builtin:tiny-random";
  job.model_checksum = "builtin";
  job.frames = 24;
  job.width = job.height = 32;
  job.steps = job.fps = 8;
  job.guidance = 1;
  job.shift = 3;
  job.solver = "unipc";
  job.seed = 4;
  job.out = "v.mp4";
  job.checkpoint_every = 2;
  job.mode = "clips";
  job.clips = 3;
  job.context_frames = 1;
  job.global_frames = 0;
  ASSERT_TRUE(create_job(dir_ + "/clips", job).ok());
  EXPECT_FALSE(fs::exists(dir_ + "/clips/frames.rgb"));  // clips write frames at the end only
  auto back = read_job(dir_ + "/clips");
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->mode, "clips");
  EXPECT_EQ(back->clips, 3);
  EXPECT_EQ(back->context_frames, 1);
  EXPECT_EQ(back->global_frames, 0);
  EXPECT_EQ(back->checkpoint_every, 2);
  EXPECT_EQ(back->prompt, job.prompt);
  EXPECT_FALSE(create_job(dir_ + "/clips", job).ok());  // a job is there already

  // What reel wrote before clips jobs existed: kind reel-fifo-job, no mode.
  fs::create_directories(dir_ + "/old");
  std::ofstream(dir_ + "/old/job.json")
      << R"({"kind": "reel-fifo-job", "version": 1, "prompt": "a small red circle moving right on a sand background",
 "model": "tiny-random", "model_source": "builtin:tiny-random", "model_checksum": "builtin", "frames": 160,
 "width": 32, "height": 32, "steps": 8, "fps": 8, "partitions": 1, "lookahead": true, "guidance": 1.0,
 "shift": 3.0, "solver": "unipc", "seed": 0, "crf": 18, "upscale": 1, "upscale_filter": "nearest",
 "out": "b.mp4", "checkpoint_every": 7})";
  auto old = read_job(dir_ + "/old");
  ASSERT_TRUE(old.ok()) << old.error().message;
  EXPECT_EQ(old->mode, "fifo");
  EXPECT_EQ(old->frames, 160);
  EXPECT_EQ(old->checkpoint_every, 7);

  fs::create_directories(dir_ + "/odd");
  std::ofstream(dir_ + "/odd/job.json") << R"({"kind": "reel-job", "version": 2, "mode": "sideways"})";
  auto odd = read_job(dir_ + "/odd");
  ASSERT_FALSE(odd.ok());
  EXPECT_EQ(odd.error().code, Errc::corrupt_data);
  EXPECT_NE(odd.error().message.find("sideways"), std::string::npos);
}

}  // namespace
}  // namespace reel::cli
