// The reel program end to end: exit codes, messages, outputs, determinism.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <csignal>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "video/image.hpp"
#include "video/mp4_reader.hpp"

namespace {

namespace fs = std::filesystem;

struct Run {
  int code = -1;
  std::string output;  // stdout and stderr together
};

Run reel(const std::string& args) {
  const std::string cmd = std::string(REEL_BINARY_DIR) + "/cli/reel " + args + " 2>&1";
  Run run;
  FILE* pipe = popen(cmd.c_str(), "r");
  if (pipe == nullptr) return run;
  std::array<char, 4096> buf{};
  size_t n = 0;
  while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) run.output.append(buf.data(), n);
  int status = pclose(pipe);
  run.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return run;
}

int lines(const std::string& s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

class ReelCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("reel_cli_" + std::to_string(::getpid()) + "_" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  bool folder_is_empty() const { return fs::is_empty(dir_); }

  // A usage error: exit 2, one line on stderr beginning "reel: error:", nothing written.
  void expect_usage_error(const std::string& args, const std::string& mentions) {
    auto run = reel(args);
    EXPECT_EQ(run.code, 2) << args << "\n" << run.output;
    EXPECT_EQ(lines(run.output), 1) << run.output;
    EXPECT_EQ(run.output.rfind("reel: error:", 0), 0u) << run.output;
    EXPECT_NE(run.output.find(mentions), std::string::npos) << run.output;
    EXPECT_TRUE(folder_is_empty()) << "left files behind for: " << args;
  }

  fs::path dir_;
};

const char* kPrompt = "\"a small red circle moving right on a sand background\"";

TEST_F(ReelCli, GeneratesAnMp4ThatTheDemuxerReadsAndASheet) {
  auto run = reel(std::string("generate ") + kPrompt + " --frames 4 --steps 3 --upscale 2 --fps 6 --out " +
                  path("v.mp4") + " --sheet " + path("v.png"));
  ASSERT_EQ(run.code, 0) << run.output;
  EXPECT_NE(run.output.find("3 model calls"), std::string::npos) << run.output;
  auto info = reel::video::probe(path("v.mp4"));
  ASSERT_TRUE(info.ok()) << info.error().message;
  EXPECT_EQ(info->frames, 4);
  EXPECT_EQ(info->width, 64);
  EXPECT_EQ(info->height, 64);
  EXPECT_DOUBLE_EQ(info->fps, 6.0);
  EXPECT_TRUE(fs::exists(path("v.png")));
  EXPECT_FALSE(fs::exists(path("v.mp4.part")));
}

TEST_F(ReelCli, TheSameSeedGivesTheSameVideoAndAnotherSeedDoesNot) {
  const std::string common = std::string("generate ") + kPrompt + " --frames 2 --steps 2 --upscale 1 --crf 0 ";
  ASSERT_EQ(reel(common + "--seed 7 --out " + path("a.mp4")).code, 0);
  ASSERT_EQ(reel(common + "--seed 7 --out " + path("b.mp4")).code, 0);
  ASSERT_EQ(reel(common + "--seed 8 --out " + path("c.mp4")).code, 0);
  auto a = reel::video::read_video(path("a.mp4"));
  auto b = reel::video::read_video(path("b.mp4"));
  auto c = reel::video::read_video(path("c.mp4"));
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  ASSERT_EQ(a->size(), 2u);
  for (size_t i = 0; i < a->size(); ++i) {
    EXPECT_EQ((*a)[i].rgb, (*b)[i].rgb) << "frame " << i;
    EXPECT_NE((*a)[i].rgb, (*c)[i].rgb) << "frame " << i;
  }
}

TEST_F(ReelCli, AnEmptyPromptIsAUsageError) {
  expect_usage_error("generate '  ' --out " + path("v.mp4"), "prompt is empty");
}

TEST_F(ReelCli, NonPositiveFramesAreAUsageError) {
  expect_usage_error(std::string("generate ") + kPrompt + " --frames 0 --out " + path("v.mp4"), "--frames");
  expect_usage_error(std::string("generate ") + kPrompt + " --frames -3 --out " + path("v.mp4"), "--frames");
}

TEST_F(ReelCli, AnUnknownFlagIsAUsageError) {
  expect_usage_error(std::string("generate ") + kPrompt + " --colour red --out " + path("v.mp4"), "--colour");
}

TEST_F(ReelCli, UnknownWordsAreListed) {
  expect_usage_error("generate 'a purple hexagon dancing' --out " + path("v.mp4"), "\"hexagon\", \"dancing\"");
}

TEST_F(ReelCli, UnreadableOrCorruptWeightsAreAUsageError) {
  expect_usage_error(std::string("generate ") + kPrompt + " --model /nonexistent/w.safetensors --out " + path("v.mp4"),
                     "w.safetensors");
  fs::path weights = dir_.parent_path() / ("reel_cli_garbage_" + std::to_string(::getpid()) + ".safetensors");
  { std::ofstream(weights) << "this is not a safetensors file"; }
  expect_usage_error(std::string("generate ") + kPrompt + " --model " + weights.string() + " --out " + path("v.mp4"),
                     weights.filename().string());
  fs::remove(weights);
}

TEST_F(ReelCli, ABadDefaultInAModelFileIsNamedAsTheModelsNotAsAFlag) {
  // shapes-s with its default width edited from 32 to 30, which the 4x4 patches do not fit.
  std::ifstream in(std::string(REEL_SOURCE_DIR) + "/models/zoo/shapes-s.safetensors", std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  const std::string width = "\"reel.default.width\":\"32\"";
  const size_t at = bytes.find(width);
  ASSERT_NE(at, std::string::npos);
  bytes.replace(at, width.size(), "\"reel.default.width\":\"30\"");
  const fs::path model = dir_.parent_path() / ("reel_cli_width_" + std::to_string(::getpid()) + ".safetensors");
  { std::ofstream(model, std::ios::binary) << bytes; }
  const std::string gen = std::string("generate ") + kPrompt + " -q --model " + model.string() + " --out " + path("v.mp4");
  expect_usage_error(gen, "its default for --size 30x32 must be a multiple of 4x4");
  auto run = reel(gen);
  EXPECT_NE(run.output.find(model.string()), std::string::npos) << run.output;
  expect_usage_error(gen + " --size 30x30", "--size 30x30 must be a multiple of 4x4");  // the user's own value
  auto fine = reel(gen + " --size 32x32 --frames 2 --steps 2");
  EXPECT_EQ(fine.code, 0) << fine.output;
  fs::remove(model);
}

TEST_F(ReelCli, AnUnwritableOutputIsAUsageError) {
  expect_usage_error(std::string("generate ") + kPrompt + " --out " + path("missing/deeper/v.mp4"), "missing/deeper");
  expect_usage_error(std::string("generate ") + kPrompt + " --out " + path("v.avi"), ".mp4");
}

TEST_F(ReelCli, ASizeThatDoesNotFitThePatchIsAUsageError) {
  expect_usage_error(std::string("generate ") + kPrompt + " --size 30x32 --out " + path("v.mp4"), "multiple of");
  expect_usage_error(std::string("generate ") + kPrompt + " --size big --out " + path("v.mp4"), "WxH");
}

TEST_F(ReelCli, EverySubcommandHasHelp) {
  for (const char* cmd : {"--help", "generate --help", "models --help", "bench --help", "bench model --help",
                          "train --help", "eval --help", "eval adherence --help", "warm --help", "bench cache --help",
                          "bench pipefusion --help", "world trace --help"}) {
    auto run = reel(cmd);
    EXPECT_EQ(run.code, 0) << cmd;
    EXPECT_NE(run.output.find("Usage"), std::string::npos) << cmd << "\n" << run.output;
  }
  EXPECT_NE(reel("generate --help").output.find("REEL_STEPS"), std::string::npos);
}

TEST_F(ReelCli, WorldTraceWritesZipfRequestsOneALine) {
  auto out = reel("world trace --n 50 --seed 2 --zipf-object 1.2 --zipf-background 0.5 --out " + path("t.txt"));
  ASSERT_EQ(out.code, 0) << out.output;
  std::ifstream f(path("t.txt"));
  std::string line;
  int n = 0;
  while (std::getline(f, line)) {
    EXPECT_NE(line.find(" background"), std::string::npos) << line;
    ++n;
  }
  EXPECT_EQ(n, 50);
  EXPECT_EQ(reel("world trace --n 50 --seed 2 --zipf-object 1.2 --zipf-background 0.5").output.size(),
            std::filesystem::file_size(path("t.txt")));
  fs::remove(path("t.txt"));
  expect_usage_error("world trace --zipf-object -1 --out " + path("t.txt"), "Zipf");
}

TEST_F(ReelCli, ModelsListsTheBuiltInModel) {
  auto run = reel("models");
  EXPECT_EQ(run.code, 0);
  EXPECT_NE(run.output.find("tiny-random"), std::string::npos) << run.output;
}

TEST_F(ReelCli, TrainRejectsBadConfigsWithOneLineAndNoFiles) {
  expect_usage_error("train --config " + path("missing.yaml") + " --out " + path("m.safetensors"), "cannot open");
  {
    std::ofstream(path("typo.yaml")) << "train:\n  stepz: 3\n";
  }
  auto run = reel("train --config " + path("typo.yaml") + " --out " + path("m.safetensors"));
  EXPECT_EQ(run.code, 2) << run.output;
  EXPECT_NE(run.output.find("unknown key 'train.stepz'"), std::string::npos) << run.output;
  EXPECT_FALSE(fs::exists(path("m.safetensors")));
  fs::remove(path("typo.yaml"));
  expect_usage_error("train --config x.yaml", "--out");
}

TEST_F(ReelCli, TrainWritesAModelThatGenerateAndEvalUse) {
  {
    std::ofstream(path("tiny.yaml")) << "name: tiny-test\n"
                                        "model:\n  dim: 32\n  ffn_dim: 64\n  freq_dim: 16\n  heads: 2\n  layers: 1\n"
                                        "text_encoder:\n  dim: 16\n  layers: 1\n  heads: 2\n  ffn_dim: 32\n"
                                        "data:\n  frames: 4\n"
                                        "train:\n  steps: 3\n  batch: 2\n  log_every: 1\n"
                                        "sample:\n  steps: 2\n  frames: 4\n";
  }
  auto train = reel("train --threads 1 --config " + path("tiny.yaml") + " --out " + path("m.safetensors"));
  ASSERT_EQ(train.code, 0) << train.output;
  EXPECT_NE(train.output.find("step 3/3"), std::string::npos) << train.output;
  EXPECT_NE(train.output.find("clips/s"), std::string::npos) << train.output;
  ASSERT_TRUE(fs::exists(path("m.safetensors")));

  auto gen = reel("generate " + std::string(kPrompt) + " -q --threads 1 --model " + path("m.safetensors") +
                  " --out " + path("v.mp4"));
  EXPECT_EQ(gen.code, 0) << gen.output;
  EXPECT_NE(gen.output.find("tiny-test"), std::string::npos) << gen.output;

  auto eval = reel("eval adherence -q --threads 1 --prompts 3 --batch 2 --model " + path("m.safetensors") +
                   " --json " + path("e.json"));
  EXPECT_EQ(eval.code, 0) << eval.output;
  EXPECT_NE(eval.output.find("motion direction"), std::string::npos) << eval.output;
  std::ifstream json(path("e.json"));
  std::string text((std::istreambuf_iterator<char>(json)), {});
  EXPECT_NE(text.find("\"per_prompt\""), std::string::npos);
  EXPECT_NE(text.find("\"ground_truth\""), std::string::npos);
}

TEST_F(ReelCli, EvalRejectsBadArguments) {
  expect_usage_error("eval adherence --prompts 0", "--prompts");
  expect_usage_error("eval adherence --objects 3", "--objects");
  expect_usage_error("eval adherence --frames 1", "--frames");
  expect_usage_error("eval adherence --model " + path("none.safetensors"), "none.safetensors");
}

TEST_F(ReelCli, FifoModeStreamsAVideoLongerThanTheWindow) {
  auto run = reel(std::string("generate ") + kPrompt + " -q --threads 1 --model tiny-random --mode fifo --frames 12" +
                  " --steps 8 --guidance 1 --upscale 1 --out " + path("v.mp4"));
  ASSERT_EQ(run.code, 0) << run.output;
  EXPECT_NE(run.output.find("fifo"), std::string::npos) << run.output;
  auto info = reel::video::probe(path("v.mp4"));
  ASSERT_TRUE(info.ok()) << info.error().message;
  EXPECT_EQ(info->frames, 12);
  EXPECT_EQ(info->width, 32);
  EXPECT_FALSE(fs::exists(path("v.mp4.part")));
}

TEST_F(ReelCli, FifoModeRejectsWhatTheQueueCannotDo) {
  const std::string base = std::string("generate ") + kPrompt + " --model tiny-random --mode fifo --out " + path("v.mp4");
  expect_usage_error(base + " --frames 4", "smaller than the model's window");
  expect_usage_error(base + " --frames 16 --steps 20", "multiple of the FIFO queue length");
  expect_usage_error(base + " --frames 16 --partitions 0", "--partitions");
  expect_usage_error(base + " --mode sideways", "--mode");
}

// Starts reel in the background and sends it `signal` once `ready()` says so (polled every
// millisecond); its wait status, or nothing when it ended first (or never got ready).
std::optional<int> signal_when_ready(const std::string& args, int signal, const std::function<bool()>& ready) {
  const pid_t pid = fork();
  if (pid == 0) {
    const std::string cmd = std::string(REEL_BINARY_DIR) + "/cli/reel " + args + " >/dev/null 2>&1";
    execl("/bin/sh", "sh", "-c", ("exec " + cmd).c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  for (int i = 0; i < 60000; ++i) {
    int status = 0;
    if (ready()) {
      kill(pid, signal);
      waitpid(pid, &status, 0);
      return status;
    }
    if (waitpid(pid, &status, WNOHANG) == pid) return std::nullopt;  // finished first
    usleep(1000);
  }
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  return std::nullopt;
}

// SIGKILL once ready; false when the run ended first.
bool kill_when(const std::string& args, const std::function<bool()>& ready) {
  auto status = signal_when_ready(args, SIGKILL, ready);
  return status && WIFSIGNALED(*status);
}

// `signal` once ready; the exit code of a run that stopped by itself, else -1.
int signal_when(const std::string& args, int signal, const std::function<bool()>& ready) {
  auto status = signal_when_ready(args, signal, ready);
  return status && WIFEXITED(*status) ? WEXITSTATUS(*status) : -1;
}

// ... once its job holds at least `frames` frames.
bool kill_when_frames(const std::string& args, const std::string& frames_file, size_t frame_bytes, size_t frames) {
  return kill_when(args, [&] {
    std::error_code ec;
    return fs::exists(frames_file) && fs::file_size(frames_file, ec) >= frame_bytes * frames;
  });
}

// The "step" of a clips checkpoint, from its safetensors header (-1 when there is none yet).
int checkpoint_step(const std::string& state_file) {
  std::ifstream in(state_file, std::ios::binary);
  unsigned char len[8] = {};
  if (!in.read(reinterpret_cast<char*>(len), 8)) return -1;
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = n << 8 | len[i];
  if (n > (1u << 24)) return -1;
  std::string header(n, '\0');
  if (!in.read(header.data(), static_cast<std::streamsize>(n))) return -1;
  const auto at = header.find("\"step\":\"");
  return at == std::string::npos ? -1 : std::atoi(header.c_str() + at + 8);
}

TEST_F(ReelCli, AFifoJobKilledAndResumedWritesTheUninterruptedVideo) {
  const std::string common = std::string("generate ") + kPrompt +
                             " -q --threads 1 --model tiny-random --mode fifo --frames 160 --steps 8 --guidance 1 --upscale 1";
  auto straight = reel(common + " --out " + path("a.mp4"));
  ASSERT_EQ(straight.code, 0) << straight.output;

  const std::string job = path("job");
  ASSERT_TRUE(kill_when_frames(common + " --out " + path("b.mp4") + " --job-dir " + job + " --checkpoint-every 7",
                               job + "/frames.rgb", 32 * 32 * 3, 37))
      << "the run ended before it could be killed";
  EXPECT_FALSE(fs::exists(path("b.mp4")));  // only the .part of a killed run

  auto other = reel("generate \"a large blue square moving left on a gray background\" --resume " + job);
  EXPECT_EQ(other.code, 2) << other.output;
  EXPECT_NE(other.output.find("was started for the prompt"), std::string::npos) << other.output;
  // A job setting given again must be the job's, not silently replaced by it.
  auto longer = reel("generate --resume " + job + " --frames 320");
  EXPECT_EQ(longer.code, 2) << longer.output;
  EXPECT_NE(longer.output.find("--frames 160, not 320"), std::string::npos) << longer.output;
  auto plain = reel("generate --resume " + job + " --no-lookahead");
  EXPECT_EQ(plain.code, 2) << plain.output;
  EXPECT_NE(plain.output.find("--lookahead on, not off"), std::string::npos) << plain.output;

  auto resumed = reel("generate -q --threads 1 --frames 160 --steps 8 --resume " + job);  // the job's own values
  ASSERT_EQ(resumed.code, 0) << resumed.output;
  auto a = reel::video::read_video(path("a.mp4"));
  auto b = reel::video::read_video(path("b.mp4"));
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_EQ(a->size(), 160u);
  ASSERT_EQ(b->size(), a->size());
  for (size_t i = 0; i < a->size(); ++i) EXPECT_EQ((*a)[i].rgb, (*b)[i].rgb) << "frame " << i;
}

TEST_F(ReelCli, CtrlCStopsALongJobWithACheckpointAndLeavesNoPartialVideo) {
  const std::string common = std::string("generate ") + kPrompt +
                             " -q --threads 1 --model tiny-random --mode fifo --frames 160 --steps 8 --guidance 1 --upscale 1";
  auto straight = reel(common + " --out " + path("a.mp4"));
  ASSERT_EQ(straight.code, 0) << straight.output;

  // With a job directory: the interrupted job saves where it stopped (no periodic checkpoint was
  // due) and exits 130; the resumed job writes the uninterrupted video.
  const std::string job = path("job");
  const int code = signal_when(common + " --out " + path("b.mp4") + " --job-dir " + job + " --checkpoint-every 1000",
                               SIGINT, [&] {
                                 std::error_code ec;
                                 return fs::file_size(job + "/frames.rgb", ec) >= 32 * 32 * 3 * 37 && !ec;
                               });
  ASSERT_EQ(code, 130) << "the run ended before the signal, or did not stop by itself";
  EXPECT_FALSE(fs::exists(path("b.mp4")));
  EXPECT_FALSE(fs::exists(path("b.mp4.part")));
  EXPECT_TRUE(fs::exists(job + "/state.safetensors"));
  auto resumed = reel("generate -q --threads 1 --resume " + job);
  ASSERT_EQ(resumed.code, 0) << resumed.output;
  auto a = reel::video::read_video(path("a.mp4"));
  auto b = reel::video::read_video(path("b.mp4"));
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_EQ(b->size(), a->size());
  for (size_t i = 0; i < a->size(); ++i) EXPECT_EQ((*a)[i].rgb, (*b)[i].rgb) << "frame " << i;

  // Without one: SIGTERM stops it and the growing .part goes with it.
  const int term = signal_when(common + " --out " + path("c.mp4"), SIGTERM, [&] {
    std::error_code ec;
    return fs::file_size(path("c.mp4.part"), ec) > 0 && !ec;
  });
  ASSERT_EQ(term, 143);
  EXPECT_FALSE(fs::exists(path("c.mp4")));
  EXPECT_FALSE(fs::exists(path("c.mp4.part")));
}

TEST_F(ReelCli, BadInputAcrossCommandsIsOneLineAndExit2) {
  expect_usage_error("bogus", "unknown command 'bogus'");
  expect_usage_error("--nope", "unknown option '--nope'");
  expect_usage_error("--config " + dir_.string() + " models", "not a regular file");
  expect_usage_error(std::string("generate ") + kPrompt + " --threads 1000000 --out " + path("a.mp4"), "--threads");
  expect_usage_error(std::string("generate ") + kPrompt + " --workers 1000 --out " + path("a.mp4"), "--workers");
  expect_usage_error("world sample --n 2 --seed -1", "--seed");
  expect_usage_error("bench long --frames abc", "'abc'");
  expect_usage_error("bench long --partitions 0", "--partitions must be 1 to 64");
  expect_usage_error("bench workers --parts foo", "unknown part 'foo'");
  const std::string train = "train --config " + std::string(REEL_SOURCE_DIR) + "/configs/models/shapes-s.yaml";
  expect_usage_error(train + " --out " + path("missing/deeper/x.safetensors"), "does not exist");
  expect_usage_error(train + " --out " + path("x.safetensors") + " --minutes nan", "--minutes");
  expect_usage_error("train --config " + dir_.string() + " --out " + path("x.safetensors"), "not a regular file");
  expect_usage_error("warm --log " + dir_.string() + " --cache " + path("c"), "not a regular file");
  expect_usage_error("eval adherence --sheet " + path("s.png") + " --sheet-videos 0", "--sheet-videos");
  // A video whose latent cannot fit in memory is refused before anything is allocated.
  expect_usage_error(std::string("generate ") + kPrompt + " -q --threads 1 --model tiny-random --steps 2 --frames 2147483640 --out " +
                         path("h.mp4"),
                     "--mode fifo makes any length");
}

// A folder where a file belongs, or a file where a folder belongs, is the user's mistake: exit 2.
TEST_F(ReelCli, AFolderOrAFileInTheWrongPlaceIsAUsageError) {
  fs::create_directories(path("w.safetensors"));
  std::ofstream(path("file")) << "x";
  const std::string gen = std::string("generate ") + kPrompt + " -q --threads 1 --steps 2 --frames 8 --out " + path("a.mp4");
  const std::vector<std::pair<std::string, std::string>> cases = {
      {gen + " --model " + path("w.safetensors"), "not a regular file"},
      {gen + " --model tiny-random --workers 1 --jobs " + path("file"), "is not a folder"},
      {gen + " --model tiny-random --cache " + path("file"), "is not a folder"},
      {"node --listen 127.0.0.1:0 --port-file " + path("w.safetensors"), "is a folder"},
      {"node --listen 127.0.0.1:0 --zoo " + path("file"), "is not a folder"},
      {"node --listen 127.0.0.1:0 --zoo " + path("nowhere"), "is not a folder"},
  };
  for (const auto& [args, mentions] : cases) {
    auto run = reel(args);
    EXPECT_EQ(run.code, 2) << args << "\n" << run.output;
    EXPECT_EQ(lines(run.output), 1) << run.output;
    EXPECT_NE(run.output.find(mentions), std::string::npos) << run.output;
    EXPECT_FALSE(fs::exists(path("a.mp4")));
  }
}

// A typo in the configuration is refused, not silently run with the default it meant to change.
TEST_F(ReelCli, AConfigWithAnUnknownKeyIsRefused) {
  std::ofstream(path("typo.yaml")) << "generate:\n  frmes: 64\n";
  std::ofstream(path("section.yaml")) << "generat:\n  frames: 64\n";
  std::ofstream(path("good.yaml")) << "generate:\n  frames: 16\ncache:\n  budget_mb: 8\nmodels:\n";
  auto typo = reel("--config " + path("typo.yaml") + " models");
  EXPECT_EQ(typo.code, 2) << typo.output;
  EXPECT_EQ(lines(typo.output), 1) << typo.output;
  EXPECT_NE(typo.output.find("unknown key 'generate.frmes'"), std::string::npos) << typo.output;
  auto section = reel("--config " + path("section.yaml") + " models");
  EXPECT_EQ(section.code, 2) << section.output;
  EXPECT_NE(section.output.find("unknown section 'generat'"), std::string::npos) << section.output;
  auto good = reel("--config " + path("good.yaml") + " models");
  EXPECT_EQ(good.code, 0) << good.output;
}

TEST_F(ReelCli, OutputThatCannotBeWrittenIsAFailure) {
  if (!fs::exists("/dev/full")) GTEST_SKIP() << "no /dev/full here";
  const std::string cmd = std::string(REEL_BINARY_DIR) + "/cli/reel world sample --n 5 >/dev/full 2>" + path("err.txt");
  const int status = std::system(cmd.c_str());
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 1);
  std::ifstream err(path("err.txt"));
  std::string text((std::istreambuf_iterator<char>(err)), {});
  EXPECT_NE(text.find("writing standard output"), std::string::npos) << text;
  EXPECT_EQ(lines(text), 1) << text;
}

TEST_F(ReelCli, AClipsJobKilledAndResumedWritesTheUninterruptedVideo) {
  const std::string common = std::string("generate ") + kPrompt +
                             " -q --threads 1 --model tiny-random --mode clips --frames 24 --clips 3 --context-frames 1"
                             " --global-frames 1 --steps 60 --guidance 1 --upscale 1";
  auto straight = reel(common + " --out " + path("a.mp4"));
  ASSERT_EQ(straight.code, 0) << straight.output;

  const std::string job = path("job");
  const std::string state = job + "/state.safetensors";
  ASSERT_TRUE(kill_when(common + " --out " + path("b.mp4") + " --job-dir " + job + " --checkpoint-every 1",
                        [&] { return checkpoint_step(state) >= 3; }))
      << "the run ended before it could be killed";
  const int stopped = checkpoint_step(state);
  EXPECT_GE(stopped, 3);
  EXPECT_LT(stopped, 60);  // killed between steps: the resume continues the denoising
  EXPECT_FALSE(fs::exists(path("b.mp4")));
  EXPECT_FALSE(fs::exists(job + "/frames.rgb"));  // clips write frames only at the end

  auto other = reel("generate \"a large blue square moving left on a gray background\" --resume " + job);
  EXPECT_EQ(other.code, 2) << other.output;
  EXPECT_NE(other.output.find("was started for the prompt"), std::string::npos) << other.output;
  auto model = reel("generate --model shapes-s --resume " + job);
  EXPECT_EQ(model.code, 2) << model.output;
  EXPECT_NE(model.output.find("was started with the model"), std::string::npos) << model.output;

  // A damaged checkpoint (in a copy of the job): one line, exit 2, no video.
  const std::string copy = path("copy");
  fs::copy(job, copy);
  {
    std::fstream f(copy + "/state.safetensors", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(fs::file_size(copy + "/state.safetensors") - 5));
    f.write("\x7f\x7f\x7f", 3);
  }
  auto damaged = reel("generate -q --threads 1 --resume " + copy);
  EXPECT_EQ(damaged.code, 2) << damaged.output;
  EXPECT_EQ(lines(damaged.output), 1) << damaged.output;
  EXPECT_NE(damaged.output.find("damaged"), std::string::npos) << damaged.output;
  EXPECT_FALSE(fs::exists(path("b.mp4")));

  auto resumed = reel("generate -q --threads 1 --resume " + job);
  ASSERT_EQ(resumed.code, 0) << resumed.output;
  auto a = reel::video::read_video(path("a.mp4"));
  auto b = reel::video::read_video(path("b.mp4"));
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_EQ(a->size(), 24u);
  ASSERT_EQ(b->size(), a->size());
  for (size_t i = 0; i < a->size(); ++i) EXPECT_EQ((*a)[i].rgb, (*b)[i].rgb) << "frame " << i;
  EXPECT_EQ(checkpoint_step(state), 60);  // the last checkpoint: after the last step
}

TEST_F(ReelCli, ASheetEveryNthFrameOfALongVideo) {
  auto run = reel(std::string("generate ") + kPrompt + " -q --threads 1 --model tiny-random --mode fifo --frames 40" +
                  " --steps 8 --guidance 1 --upscale 1 --sheet-every 2 --out " + path("v.mp4") + " --sheet " +
                  path("v.png"));
  ASSERT_EQ(run.code, 0) << run.output;
  auto sheet = reel::video::read_png(path("v.png"));
  ASSERT_TRUE(sheet.ok()) << sheet.error().message;
  EXPECT_EQ(sheet->width, 16 * 32 + 15 * 2);  // 20 frames: rows of 16 cells of 32 pixels, 2-pixel gaps
  EXPECT_EQ(sheet->height, 2 * 32 + 2);
  fs::remove(path("v.mp4"));
  fs::remove(path("v.png"));
  expect_usage_error(std::string("generate ") + kPrompt + " --sheet-every 2 --out " + path("w.mp4"),
                     "--sheet-every needs --sheet");
  expect_usage_error(std::string("generate ") + kPrompt + " --frames 600 --sheet-every 2 --out " + path("w.mp4") +
                         " --sheet " + path("w.png"),
                     "at most 256");
}

TEST_F(ReelCli, ResumeNeedsAJobAndJobsNeedFifo) {
  expect_usage_error("generate --resume " + path("nowhere"), "not a reel job directory");
  expect_usage_error(std::string("generate ") + kPrompt + " --job-dir " + path("j") + " --out " + path("v.mp4"),
                     "--job-dir needs --mode fifo");
  expect_usage_error(std::string("generate ") + kPrompt + " --mode fifo --checkpoint-every 4 --out " + path("v.mp4"),
                     "--checkpoint-every needs --job-dir");
  expect_usage_error(std::string("generate ") + kPrompt + " --mode clips --frames 16 --checkpoint-every 4 --out " +
                         path("v.mp4"),
                     "--checkpoint-every needs --job-dir");
  // A clips job of a length the clips cannot split: refused before the job directory is made.
  expect_usage_error(std::string("generate ") + kPrompt + " --model tiny-random --mode clips --frames 13 --clips 3" +
                         " --job-dir " + path("j") + " --out " + path("v.mp4"),
                     "multiple of 3");
}

TEST_F(ReelCli, ASecondRequestThroughTheCacheStartsFromTheFirst) {
  const std::string common = " --steps 5 --cache " + path("cache") + " -q -o ";
  auto first = reel(std::string("generate ") + kPrompt + common + path("a.mp4"));
  ASSERT_EQ(first.code, 0) << first.output;
  EXPECT_NE(first.output.find("cache miss"), std::string::npos) << first.output;
  auto second = reel(std::string("generate ") + kPrompt + common + path("b.mp4"));
  ASSERT_EQ(second.code, 0) << second.output;
  EXPECT_NE(second.output.find("cache hit (whole, similarity 1.000)"), std::string::npos) << second.output;
  EXPECT_NE(second.output.find("2 model calls"), std::string::npos) << second.output;  // from step 3 of 5
  // Another tenant shares nothing; --no-cache ignores the cache.
  auto other = reel(std::string("generate ") + kPrompt + common + path("c.mp4") + " --tenant acme");
  EXPECT_NE(other.output.find("cache miss"), std::string::npos) << other.output;
  auto off = reel(std::string("generate ") + kPrompt + common + path("d.mp4") + " --no-cache");
  EXPECT_EQ(off.output.find("cache"), std::string::npos) << off.output;
  EXPECT_NE(off.output.find("5 model calls"), std::string::npos) << off.output;
}

TEST_F(ReelCli, CacheOptionsAreCheckedBeforeAnythingRuns) {
  expect_usage_error(std::string("generate ") + kPrompt + " --cache " + path("c") + " --cache-policy mru -o " +
                         path("a.mp4"),
                     "mru");
  expect_usage_error(std::string("generate ") + kPrompt + " --cache " + path("c") + " --cache-table 0.9:2 -o " +
                         path("a.mp4"),
                     "cache-table");
  expect_usage_error(std::string("generate ") + kPrompt + " --mode fifo --frames 64 --cache " + path("c") + " -o " +
                         path("a.mp4"),
                     "--cache");
  expect_usage_error(std::string("generate ") + kPrompt + " --cache " + path("c") + " --cache-embedder bert -o " +
                         path("a.mp4"),
                     "'bert'");
  expect_usage_error(std::string("generate ") + kPrompt + " --cache " + path("c") +
                         " --cache-embedder text-encoder:no-such-model -o " + path("a.mp4"),
                     "no-such-model");
  EXPECT_FALSE(fs::exists(path("a.mp4")));
}

TEST_F(ReelCli, TheCacheEmbedderIsChosenAndItsEntriesServeOnlyIt) {
  const std::string common = " --steps 5 --cache " + path("cache") + " -q -o " + path("v.mp4");
  auto run = [&](const std::string& extra) {
    auto r = reel(std::string("generate ") + kPrompt + common + extra);
    EXPECT_EQ(r.code, 0) << r.output;
    return r.output;
  };
  auto first = run(" --cache-embedder text-encoder");
  EXPECT_NE(first.find("cache miss"), std::string::npos) << first;
  auto second = run(" --cache-embedder text-encoder");
  EXPECT_NE(second.find("cache hit (whole, similarity 1.000)"), std::string::npos) << second;
  // Naming the model is the same embedder when it is the model that runs.
  auto named = run(" --cache-embedder text-encoder:shapes-m");  // the default model
  EXPECT_NE(named.find("cache hit (whole, similarity 1.000)"), std::string::npos) << named;
  // The n-gram embedder (the default) never sees the text encoder's entries, nor they its.
  auto ngram = run("");
  EXPECT_NE(ngram.find("cache miss"), std::string::npos) << ngram;
  auto ngram_again = run("");
  EXPECT_NE(ngram_again.find("cache hit (whole, similarity 1.000)"), std::string::npos) << ngram_again;

  // warm with a text encoder: nothing to fit, and what it stores is a hit for generate.
  {
    std::ofstream log(path("log.txt"));
    log << "a large blue square standing still on a navy background\n";
  }
  auto warm = reel("warm --log " + path("log.txt") + " --cache " + path("warm") +
                   " --steps 5 -q --cache-embedder text-encoder");
  ASSERT_EQ(warm.code, 0) << warm.output;
  EXPECT_NE(warm.output.find("1 generated"), std::string::npos) << warm.output;
  auto hit = reel("generate \"a large blue square standing still on a navy background\" --steps 5 -q --cache " +
                  path("warm") + " --cache-embedder text-encoder -o " + path("w.mp4"));
  EXPECT_NE(hit.output.find("cache hit (whole, similarity 1.000)"), std::string::npos) << hit.output;
}

TEST_F(ReelCli, WarmFillsTheCacheOnceAndSkipsWhatIsCachedOnTheNextRun) {
  {
    std::ofstream log(path("log.txt"));
    log << "a small red circle moving right on a sand background\n"
        << "# a comment\n"
        << "{\"prompt\": \"a large blue square standing still on a navy background\", \"seed\": 3}\n"
        << "a small red circle moving right on a sand background\n";
  }
  const std::string args = "warm --log " + path("log.txt") + " --cache " + path("cache") + " --steps 5 -q";
  auto first = reel(args);
  ASSERT_EQ(first.code, 0) << first.output;
  EXPECT_NE(first.output.find("3 requests, 2 distinct"), std::string::npos) << first.output;
  EXPECT_NE(first.output.find("2 generated, 0 already cached"), std::string::npos) << first.output;
  auto second = reel(args);
  ASSERT_EQ(second.code, 0) << second.output;
  EXPECT_NE(second.output.find("0 generated, 2 already cached"), std::string::npos) << second.output;
  // A warmed prompt is a hit for generate with the same settings.
  auto hit = reel("generate \"a small red circle moving right on a sand background\" --steps 5 -q --cache " +
                  path("cache") + " -o " + path("a.mp4"));
  EXPECT_NE(hit.output.find("cache hit"), std::string::npos) << hit.output;
}

TEST_F(ReelCli, WarmRejectsBadLogsWithTheLine) {
  {
    std::ofstream log(path("bad.jsonl"));
    log << "{\"prompt\": \"a small red circle moving right on a sand background\"}\n{\"seed\": 1}\n";
  }
  auto run = reel("warm --log " + path("bad.jsonl") + " --cache " + path("cache"));
  EXPECT_EQ(run.code, 2) << run.output;
  EXPECT_NE(run.output.find("bad.jsonl:2"), std::string::npos) << run.output;
  EXPECT_FALSE(fs::exists(path("cache")));
  auto missing = reel("warm --log " + path("none.txt") + " --cache " + path("cache"));
  EXPECT_EQ(missing.code, 2) << missing.output;
  auto format = reel("warm --log " + path("bad.jsonl") + " --format xml --cache " + path("cache"));
  EXPECT_EQ(format.code, 2) << format.output;
}

TEST_F(ReelCli, BenchCacheReplaysATraceForEachConfiguration) {
  ASSERT_EQ(reel("world trace --n 4 --seed 5 --zipf-object 3 --zipf-background 3 --out " + path("p.txt")).code, 0);
  {
    // The same requests with generation options, as JSON lines: 5 steps keep the test short.
    std::ifstream prompts(path("p.txt"));
    std::ofstream trace(path("t.txt"));
    for (std::string line; std::getline(prompts, line);) trace << "{\"prompt\": \"" << line << "\", \"steps\": 5}\n";
  }
  auto run = reel("bench cache --trace " + path("t.txt") + " --configs none,compressed --budget-mb 4 -q --json " +
                  path("b.json"));
  ASSERT_EQ(run.code, 0) << run.output;
  EXPECT_NE(run.output.find("compressed"), std::string::npos) << run.output;
  std::ifstream f(path("b.json"));
  std::string json((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  EXPECT_NE(json.find("\"compute_saved\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"lookup_p99_ms\""), std::string::npos) << json;
  EXPECT_EQ(reel("bench cache --trace " + path("t.txt") + " --configs some").code, 2);
  EXPECT_EQ(reel("bench cache --trace " + path("missing.txt")).code, 2);
}

TEST_F(ReelCli, ClipsModeWritesEveryClipInOrder) {
  auto run = reel(std::string("generate ") + kPrompt + " -q --threads 1 --model tiny-random --mode clips --frames 12" +
                  " --clips 3 --context-frames 1 --global-frames 1 --steps 3 --guidance 1 --upscale 1 --out " +
                  path("v.mp4"));
  ASSERT_EQ(run.code, 0) << run.output;
  EXPECT_NE(run.output.find("3 clips"), std::string::npos) << run.output;
  auto info = reel::video::probe(path("v.mp4"));
  ASSERT_TRUE(info.ok()) << info.error().message;
  EXPECT_EQ(info->frames, 12);
  auto bad = reel(std::string("generate ") + kPrompt + " --model tiny-random --mode clips --frames 13 --clips 3" +
                  " --out " + path("w.mp4"));
  EXPECT_EQ(bad.code, 2) << bad.output;
  EXPECT_NE(bad.output.find("multiple of 3"), std::string::npos) << bad.output;
  EXPECT_EQ(lines(bad.output), 1) << bad.output;
  EXPECT_FALSE(fs::exists(path("w.mp4")));
}

TEST_F(ReelCli, BenchLongMeasuresEachModeInAChildProcess) {
  auto run = reel("bench long --model tiny-random --frames 8,16 --modes fifo,clips --quality-frames 0 --threads 1"
                  " --json " + path("b.json"));
  ASSERT_EQ(run.code, 0) << run.output;
  EXPECT_EQ(lines(run.output), 6) << run.output;  // header, 4 rows, "wrote"
  std::ifstream json(path("b.json"));
  std::string text((std::istreambuf_iterator<char>(json)), {});
  EXPECT_NE(text.find("\"peak_rss_mb\""), std::string::npos) << text;
  fs::remove(path("b.json"));
  expect_usage_error("bench long --modes sideways", "unknown mode 'sideways'");
}

TEST_F(ReelCli, BenchLongScoresLongVideosBesideThe8FrameReference) {
  auto run = reel("bench long --model tiny-random --frames 8 --modes clips --quality-frames 16 --quality-prompts 1"
                  " --threads 1 --json " + path("q.json"));
  ASSERT_EQ(run.code, 0) << run.output;
  EXPECT_NE(run.output.find("standard-8"), std::string::npos) << run.output;
  std::ifstream json(path("q.json"));
  std::string text((std::istreambuf_iterator<char>(json)), {});
  EXPECT_NE(text.find("\"quality_reference\""), std::string::npos) << text;
  EXPECT_NE(text.find("\"largest_drop_points\""), std::string::npos) << text;
  EXPECT_NE(text.find("\"motion_axis\""), std::string::npos) << text;  // late windows: motion up to its sign
  EXPECT_NE(text.find("\"consistency_across_over_inside\""), std::string::npos) << text;
  EXPECT_NE(text.find("\"quality_videos\""), std::string::npos) << text;
}

}  // namespace
