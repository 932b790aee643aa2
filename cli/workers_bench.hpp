// reel bench workers: what spreading model calls over worker actors buys, in one run.
//
//  - FIFO: the windows of each pass over K workers of one thread each against one worker of one
//    thread, one window per call; the frames must be identical (checked and reported);
//  - clips: the clips of each step over K workers against one; identical too;
//  - CFG parallel: standard sampling with the conditional and unconditional passes on two
//    workers against both as one batched call on one worker; the largest difference is reported;
//  - the data plane: tensors sent to a `reel node` child process through CAF's middleman
//    against a plain loopback TCP stream of the same bytes, in the same run;
//  - the ceilings beside them: one-thread sgemm GFLOP/s, cores.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <string>

#include "cli/config.hpp"

namespace reel::cli {

struct WorkersBenchArgs {
  std::string model;             // zoo name or path; default: the config's (shapes-m)
  std::string zoo;               // default: the config's
  int workers = 2;               // K; default 2
  int fifo_frames = 24;          // frames of the FIFO video; default 24
  int clip_frames = 16;          // frames of the clips video; default 16
  int clips = 2;                 // clips of the clips video; default 2
  int repeats = 1;               // timed repetitions of each configuration (best kept); default 1
  double transfer_mb = 256;      // bytes sent in the data-plane test; default 256 MB
  double tensor_mb = 4;          // size of one tensor there; default 4 MB
  std::string parts = "fifo,clips,cfg,transfer";  // which parts to run; default all
  uint64_t seed = 0;
  std::string json = "out/bench_workers.json";  // '' = nowhere
};

CLI::App* add_bench_workers(CLI::App* bench, WorkersBenchArgs& args);
int run_bench_workers(const WorkersBenchArgs& args, const Config& cfg);

}  // namespace reel::cli
