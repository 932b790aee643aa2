// DiT forward speed beside this machine's sgemm ceiling, measured in the same run.
#pragma once

#include <string>
#include <vector>

namespace reel::bench {

struct ModelBenchRow {
  std::string config;    // "tiny", "medium"
  std::string shape;     // e.g. "D=512 L=8 tokens=1024"
  double gflop = 0;      // per forward pass
  double seconds = 0;    // median forward time
  double gflops = 0;     // achieved rate
  double of_sgemm = 0;   // gflops / sgemm ceiling
};

struct ModelBenchResult {
  int threads = 0;
  double sgemm_gflops = 0;  // best of several 1024x1024x1024 float32 matrix products
  std::vector<ModelBenchRow> rows;
};

// Runs `repeats` timed forwards per config after one warm-up.
[[nodiscard]] ModelBenchResult run_model_bench(int repeats);

[[nodiscard]] std::string to_json(const ModelBenchResult& result);
[[nodiscard]] std::string to_table(const ModelBenchResult& result);

}  // namespace reel::bench
