// reel bench serve: what the service costs and how it holds up, measured against `reel
// generate` on the same machine in the same run.
//  1. overhead: one standard job and one long FIFO job, each through `reel serve` (time from the
//     POST to the final server-sent event) and in-process (`reel generate`: the time it reports,
//     and its whole process), interleaved, medians; overhead in percent (target <= 3%);
//  2. cancellation: a running FIFO job's DELETE round trip (the reply comes once the job has
//     stopped, so it bounds the time to its last model call) beside its time per frame (target
//     <= one frame + 100 ms);
//  3. a crash: jobs accepted, `kill -9` mid-job, a restart over the same data folder: jobs
//     completed / accepted (target 100%) and frames made twice.
// It prints a table beside the machine's sgemm GFLOP/s and writes JSON.
#pragma once

#include <cstdint>
#include <string>

#include "base/expected.hpp"

namespace reel::bench {

struct ServeBenchOptions {
  std::string reel;          // the reel binary to run (serve and generate)
  std::string model;         // zoo name; "" = the configured default
  int threads = 2;           // compute threads of the server and of each generate run
  int repeats = 3;           // timed runs of each path and job (median)
  int fifo_frames = 128;     // the long job's length
  int steps = 0;             // the FIFO job's solver steps; 0: the model's
  int standard_steps = 200;  // the standard job's: enough that it lasts seconds, as real jobs do
  std::string json = "out/bench_serve.json";  // "" = no JSON
};

// Runs the three parts; errors when a process cannot be started or a job fails.
[[nodiscard]] Status run_serve_bench(const ServeBenchOptions& options);

}  // namespace reel::bench
