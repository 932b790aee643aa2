// reel bench pipefusion: how far PipeFusion's stale K/V moves the result, and what it sends.
//
// Samples one latent sequentially, then with PipeFusion (simulated in one process, the numbers
// concurrent stages produce) for every warm-up W and patch count M asked, and prints per (W, M)
// the relative L2 error of the final latent against the sequential one and the bytes each stage
// boundary carries per step, measured and analytic. With --adherence it also scores videos of
// --prompts shapes-world prompts, sampled sequentially and with W=1 M=4, against their prompts.
//
// With --actors it measures speed instead, in one run: sequential sampling on one thread, the
// one-thread simulation, and PipeFusion on N concurrent stage actors of one thread each (one W,
// one M), and prints time per step, the speedup over sequential, the pipeline's bound, the
// error against sequential, whether the actors equal the simulation bit for bit, and the
// machine's ceiling (sgemm on one thread, and on N threads at once).
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <optional>
#include <string>

#include "cli/config.hpp"

namespace reel::cli {

struct PipeFusionBenchArgs {
  std::string model;             // zoo name or .safetensors path; default: the config's (shapes-m)
  // A random-weight DiT instead of a zoo model: "medium" = D=512, 8 blocks, 1,024 tokens (16
  // frames of 32x32 pixels); --dim, --blocks, --frames, --height, --width set or override sizes.
  std::string preset;            // "" (a zoo model unless a size is given) or "medium"; default ""
  std::optional<int> dim, blocks, frames, height, width;
  int stages = 2;                // N; default 2
  std::string warmups;  // W values; default 0,1,2 (--actors: 1; only the first is used)
  std::string patches;  // M values; default 2,4,8 (--actors: 4; only the first is used)
  std::string split = "frames";  // frames or rows; default frames
  std::optional<int> steps;      // default: the model's (random DiTs: 8)
  std::optional<double> guidance;  // default: the model's (random DiTs: 4)
  uint64_t seed = 0;             // noise seed; default 0
  bool adherence = false;        // also score sequential vs W=1 M=4 videos; default off
  bool actors = false;           // measure the speed of N stage actors instead; default off
  // --actors: (a) and (b) alternate this many times and the fastest of each counts (a shared
  // machine only ever slows a run down); default 1.
  int repeats = 1;
  int prompts = 40;              // prompts for --adherence; default 40
  uint64_t prompt_seed = 1000;   // scene i of --adherence is drawn from prompt_seed + i; default 1000
  int batch = 8;                 // videos per sampler call in --adherence; default 8
  // Where the JSON goes; default out/bench_pipefusion.json (--actors: out/bench_pipefusion_actors.json);
  // '' = nowhere.
  std::optional<std::string> json;
  int threads = 0;               // compute threads, 0 = all cores
};

CLI::App* add_bench_pipefusion(CLI::App* bench, PipeFusionBenchArgs& args);
int run_bench_pipefusion(const PipeFusionBenchArgs& args, const Config& cfg);

}  // namespace reel::cli
