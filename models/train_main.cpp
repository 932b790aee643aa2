// reel-train: the trainer alone, for machines that have LibTorch and nothing else of reel's
// dependencies (configure with -DREEL_MODELS_ONLY=ON). Same options as `reel train`.
#include <ATen/Parallel.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "base/allocator.hpp"
#include "models/train.hpp"

namespace {

volatile std::sig_atomic_t g_interrupted = 0;
void on_signal(int) { g_interrupted = 1; }

const char* kUsage =
    "usage: reel-train --config FILE --out W.safetensors [--minutes M] [--resume CKPT]\n"
    "                  [--checkpoint CKPT] [--threads N] [--device cpu|cuda]\n"
    "Trains a text-to-video model on the shapes world. SIGINT/SIGTERM stop after the current\n"
    "step with a checkpoint and the model written.\n";

int usage_error(const std::string& message) {
  std::fprintf(stderr, "reel-train: error: %s\n%s", message.c_str(), kUsage);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace reel::models;
  reel::keep_freed_memory();
  std::string config_path;
  TrainOptions options;
  int threads = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (i + 1 >= argc) return usage_error("option '" + arg + "' needs a value (or is unknown)");
    const std::string value = argv[++i];
    try {
      if (arg == "--config") config_path = value;
      else if (arg == "--out") options.out = value;
      else if (arg == "--resume") options.resume = value;
      else if (arg == "--checkpoint") options.checkpoint = value;
      else if (arg == "--device") options.device = value;
      else if (arg == "--minutes") options.minutes = std::stod(value);
      else if (arg == "--threads") threads = std::stoi(value);
      else return usage_error("unknown option '" + arg + "'");
    } catch (const std::exception&) {
      return usage_error("option '" + arg + "' needs a number, got '" + value + "'");
    }
  }
  if (config_path.empty()) return usage_error("--config is required");
  if (options.out.empty()) return usage_error("--out is required");
  if (options.device != "cpu" && options.device != "cuda") return usage_error("--device must be cpu or cuda");
  at::set_num_threads(threads > 0 ? threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));

  auto config = load_train_config(config_path);
  if (!config) {
    std::fprintf(stderr, "reel-train: error: %s\n", config.error().message.c_str());
    return 2;
  }
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  auto result = train(*config, options, [](const TrainProgress& p) {
    std::fprintf(stderr, "%s\n", format_progress(p).c_str());
    return g_interrupted == 0;
  });
  if (!result) {
    std::fprintf(stderr, "reel-train: error: %s\n", result.error().message.c_str());
    const auto code = result.error().code;
    return code == reel::Errc::invalid_argument || code == reel::Errc::not_found ||
                   code == reel::Errc::corrupt_data || code == reel::Errc::unsupported
               ? 2
               : 1;
  }
  std::fprintf(stderr, "%s\n", format_result(*result).c_str());
  return g_interrupted != 0 ? 130 : 0;
}
