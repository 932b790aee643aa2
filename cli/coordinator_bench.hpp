// reel bench coordinator: what going through the coordinator costs. The same standard job runs
// (a) in-process, the pipeline called directly (pipeline::sample over a DiTDenoiser), and (b)
// through the coordinator (job store, runner, one local worker, encoder actor), interleaved a
// few times each; it prints the median times, the overhead in percent (target <= 3%) and
// whether both latents are equal, and writes the numbers as JSON.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <string>

#include "cli/config.hpp"

namespace reel::cli {

struct CoordinatorBenchArgs {
  std::string model;          // zoo name or path; default: the configured model (shapes-m)
  int threads = 0;            // compute threads of both paths (0 = all cores)
  int repeats = 5;            // timed runs of each path, after one warm-up each
  int frames = 0;             // 0: the model's default
  int steps = 0;              // 0: the model's default
  uint64_t seed = 7;          // seed of the job's noise
  std::string json = "out/bench_coordinator.json";  // "" = no JSON
};

CLI::App* add_bench_coordinator(CLI::App* bench, CoordinatorBenchArgs& args);
int run_bench_coordinator(const CoordinatorBenchArgs& args, const Config& cfg);

}  // namespace reel::cli
