// reel train: trains a model on the shapes world (models/train.hpp). reel-train, built with
// REEL_MODELS_ONLY, is the same trainer without the rest of reel.
#include <ATen/Parallel.h>

#include <cmath>
#include <csignal>
#include <filesystem>
#include <cstdio>

#include "cli/commands.hpp"
#include "bench/ceiling.hpp"
#include "models/train.hpp"

namespace reel::cli {

namespace {

volatile std::sig_atomic_t g_interrupted = 0;
void on_signal(int) { g_interrupted = 1; }

struct TrainArgs {
  std::string config;
  models::TrainOptions options;
  int threads = 0;
};

int run_train(const TrainArgs& a) {
  if (!(a.options.minutes >= 0) || !std::isfinite(a.options.minutes))
    return report(make_error(Errc::invalid_argument, "--minutes must be a finite number >= 0"));
  // The outputs are written at the end: check them before the training run, not after it.
  if (auto st = check_output(a.options.out, ".safetensors", "--out"); !st) return report(st.error());
  const std::string checkpoint = a.options.checkpoint.empty() ? a.options.out + ".ckpt" : a.options.checkpoint;
  if (auto st = check_output(checkpoint, "", "--checkpoint"); !st) return report(st.error());
  if (!a.options.resume.empty()) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(a.options.resume, ec))
      return report(make_error(Errc::invalid_argument, "--resume '" + a.options.resume + "' is not a checkpoint file"));
  }
  auto config = models::load_train_config(a.config);
  if (!config) return report(config.error());
  if (auto st = set_threads(a.threads); !st) return report(st.error());
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  std::fprintf(stderr, "training %s: %lld steps of %d clips (%dx%d, %d frames)%s -> %s\n", config->name.c_str(),
               static_cast<long long>(config->steps), config->batch, config->width, config->height, config->frames,
               a.options.resume.empty() ? "" : (", resuming " + a.options.resume).c_str(), a.options.out.c_str());
  // The machine's matrix-product ceiling with the same threads, so that the trainer's FLOP rate
  // can be read against it.
  const double sgemm = bench::sgemm_gflops();
  std::fprintf(stderr, "sgemm ceiling: %.1f GFLOP/s on %d threads\n", sgemm, at::get_num_threads());
  auto result = models::train(*config, a.options, [sgemm](const models::TrainProgress& p) {
    std::string line = models::format_progress(p);
    if (p.gflops > 0 && sgemm > 0) line += "  (" + std::to_string(static_cast<int>(100 * p.gflops / sgemm + 0.5)) + "% of sgemm)";
    std::fprintf(stderr, "%s\n", line.c_str());
    return g_interrupted == 0;
  });
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
  if (!result) return report(result.error());
  std::fprintf(stderr, "%s\n", models::format_result(*result).c_str());
  return g_interrupted != 0 ? 130 : kExitOk;
}

}  // namespace

Command add_train(CLI::App& app, const Config& cfg) {
  auto a = std::make_shared<TrainArgs>();
  a->threads = cfg.threads;
  auto* sub = app.add_subcommand("train", "train a text-to-video model on the shapes world");
  sub->add_option("--config", a->config, "training config (YAML), e.g. configs/models/shapes-s.yaml")->required();
  sub->add_option("--out", a->options.out, "model file to write (EMA weights), e.g. models/zoo/NAME.safetensors")
      ->required();
  sub->add_option("--minutes", a->options.minutes, "wall-time budget; stops with a checkpoint (0 = no limit)")
      ->capture_default_str();
  sub->add_option("--resume", a->options.resume, "checkpoint to continue from (exactly)");
  sub->add_option("--checkpoint", a->options.checkpoint, "checkpoint file to write (default: OUT.ckpt)");
  sub->add_option("--threads", a->threads, "compute threads, 0 = all cores")->envname("REEL_THREADS");
  sub->add_option("--device", a->options.device, "cpu or cuda")->check(CLI::IsMember({"cpu", "cuda"}))
      ->capture_default_str();
  return [a] { return run_train(*a); };
}

}  // namespace reel::cli
