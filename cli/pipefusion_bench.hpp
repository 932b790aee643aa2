// reel bench pipefusion: how far PipeFusion's stale K/V moves the result, and what it sends.
//
// Samples one latent sequentially, then with PipeFusion (simulated in one process, the numbers
// concurrent stages produce) for every warm-up W and patch count M asked, and prints per (W, M)
// the relative L2 error of the final latent against the sequential one and the bytes each stage
// boundary carries per step, measured and analytic. With --adherence it also scores videos of
// --prompts shapes-world prompts, sampled sequentially and with W=1 M=4, against their prompts.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <optional>
#include <string>

#include "cli/config.hpp"

namespace reel::cli {

struct PipeFusionBenchArgs {
  std::string model;             // zoo name or .safetensors path; default: the config's (shapes-s)
  // A random-weight DiT instead of a zoo model: "medium" = D=512, 8 blocks, 1,024 tokens (16
  // frames of 32x32 pixels); --dim, --blocks, --frames, --height, --width set or override sizes.
  std::string preset;            // "" (a zoo model unless a size is given) or "medium"; default ""
  std::optional<int> dim, blocks, frames, height, width;
  int stages = 2;                // N; default 2
  std::string warmups = "0,1,2";  // W values; default 0,1,2
  std::string patches = "2,4,8";  // M values; default 2,4,8
  std::string split = "frames";  // frames or rows; default frames
  std::optional<int> steps;      // default: the model's (random DiTs: 8)
  std::optional<double> guidance;  // default: the model's (random DiTs: 4)
  uint64_t seed = 0;             // noise seed; default 0
  bool adherence = false;        // also score sequential vs W=1 M=4 videos; default off
  int prompts = 40;              // prompts for --adherence; default 40
  uint64_t prompt_seed = 1000;   // scene i of --adherence is drawn from prompt_seed + i; default 1000
  int batch = 8;                 // videos per sampler call in --adherence; default 8
  std::string json = "out/bench_pipefusion.json";  // '' = nowhere
  int threads = 0;               // compute threads, 0 = all cores
};

CLI::App* add_bench_pipefusion(CLI::App* bench, PipeFusionBenchArgs& args);
int run_bench_pipefusion(const PipeFusionBenchArgs& args, const Config& cfg);

}  // namespace reel::cli
