#include "bench/model_bench.hpp"

#include "bench/ceiling.hpp"

#include <ATen/Parallel.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "models/dit.hpp"
#include "models/t2v_model.hpp"

namespace reel::bench {

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

struct BenchConfig {
  std::string name;
  models::DiTConfig cfg;
  int64_t frames, height, width;
};

std::vector<BenchConfig> configs() {
  const models::DiTConfig tiny = models::tiny_dit_config();  // 32x32x8 pixels: 512 tokens
  models::DiTConfig medium = tiny;  // D=512, 8 blocks, 1024 tokens (16 frames of 8x8 tokens)
  medium.dim = 512;
  medium.ffn_dim = 2048;
  medium.num_heads = 8;
  medium.num_layers = 8;
  return {{"tiny", tiny, 8, 32, 32}, {"medium", medium, 16, 32, 32}};
}

}  // namespace

ModelBenchResult run_model_bench(int repeats) {
  torch::NoGradGuard no_grad;
  ModelBenchResult result;
  result.threads = at::get_num_threads();
  result.sgemm_gflops = sgemm_gflops(1024, 5);
  for (const auto& bc : configs()) {
    torch::manual_seed(0);
    models::VideoDiT model(bc.cfg);
    model->eval();
    auto x = torch::randn({1, bc.cfg.in_channels, bc.frames, bc.height, bc.width});
    auto t = torch::full({1}, 500.0);
    auto text = torch::randn({1, bc.cfg.text_len, bc.cfg.text_dim});
    auto out = model->forward(x, t, text);  // warm-up
    std::vector<double> times;
    for (int i = 0; i < repeats; ++i) {
      auto t0 = std::chrono::steady_clock::now();
      out = model->forward(x, t, text);
      times.push_back(seconds_since(t0));
    }
    ModelBenchRow row;
    row.config = bc.name;
    const int64_t tokens = (bc.frames / bc.cfg.patch[0]) * (bc.height / bc.cfg.patch[1]) * (bc.width / bc.cfg.patch[2]);
    row.shape = "D=" + std::to_string(bc.cfg.dim) + " L=" + std::to_string(bc.cfg.num_layers) +
                " tokens=" + std::to_string(tokens);
    row.gflop = model->forward_flops(bc.frames, bc.height, bc.width) / 1e9;
    row.seconds = median(times);
    row.gflops = row.gflop / row.seconds;
    row.of_sgemm = row.gflops / result.sgemm_gflops;
    result.rows.push_back(row);
  }
  return result;
}

std::string to_json(const ModelBenchResult& r) {
  nlohmann::json j;
  j["benchmark"] = "model";
  j["threads"] = r.threads;
  j["sgemm_gflops"] = r.sgemm_gflops;
  for (const auto& row : r.rows)
    j["rows"].push_back({{"config", row.config},
                         {"shape", row.shape},
                         {"gflop_per_forward", row.gflop},
                         {"forward_seconds", row.seconds},
                         {"gflops", row.gflops},
                         {"fraction_of_sgemm", row.of_sgemm}});
  return j.dump(2);
}

std::string to_table(const ModelBenchResult& r) {
  char line[256];
  std::string out;
  std::snprintf(line, sizeof line, "sgemm 1024^3 float32: %.1f GFLOP/s (%d threads)\n", r.sgemm_gflops, r.threads);
  out += line;
  std::snprintf(line, sizeof line, "%-8s %-28s %10s %12s %10s %10s\n", "config", "shape", "GFLOP", "forward ms",
                "GFLOP/s", "of sgemm");
  out += line;
  for (const auto& row : r.rows) {
    std::snprintf(line, sizeof line, "%-8s %-28s %10.2f %12.1f %10.1f %9.0f%%\n", row.config.c_str(),
                  row.shape.c_str(), row.gflop, row.seconds * 1e3, row.gflops, row.of_sgemm * 100);
    out += line;
  }
  return out;
}

}  // namespace reel::bench
