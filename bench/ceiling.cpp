#include "bench/ceiling.hpp"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <numeric>
#include <thread>
#include <vector>

namespace reel::bench {

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

double sgemm_gflops(int64_t n, int repeats) {
  torch::NoGradGuard no_grad;
  auto a = torch::randn({n, n});
  auto b = torch::randn({n, n});
  auto c = torch::mm(a, b);  // warm-up
  double best = 0;
  for (int i = 0; i < std::max(1, repeats); ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    c = torch::mm(a, b);
    best = std::max(best, 2.0 * static_cast<double>(n * n * n) / seconds_since(t0) / 1e9);
  }
  return best;
}

double concurrent_sgemm_gflops(int threads, int64_t n) {
  constexpr int kProducts = 8;
  std::vector<double> rates(static_cast<size_t>(std::max(1, threads)), 0.0);
  std::vector<std::thread> running;
  for (size_t i = 0; i < rates.size(); ++i) {
    running.emplace_back([&rates, i, n] {
      at::set_num_threads(1);
      torch::NoGradGuard no_grad;
      auto a = torch::randn({n, n});
      auto b = torch::randn({n, n});
      auto c = torch::mm(a, b);
      const auto t0 = std::chrono::steady_clock::now();
      for (int r = 0; r < kProducts; ++r) c = torch::mm(a, b);
      rates[i] = 2.0 * static_cast<double>(n * n * n) * kProducts / seconds_since(t0) / 1e9;
    });
  }
  for (auto& t : running) t.join();
  return std::accumulate(rates.begin(), rates.end(), 0.0);
}

}  // namespace reel::bench
