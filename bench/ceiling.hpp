// This machine's ceilings, measured in the same run as a benchmark so that its speeds can be
// read against them (the machine is shared: its rate changes from run to run).
#pragma once

#include <cstdint>

namespace reel::bench {

// float32 matrix-product rate in GFLOP/s with the calling thread's LibTorch thread count: the
// best of `repeats` n x n x n products after one warm-up.
[[nodiscard]] double sgemm_gflops(int64_t n = 1024, int repeats = 5);

// The summed rate of `threads` threads multiplying at once, each with one LibTorch thread and
// matrices of its own, timing a fixed number of products so that they overlap: what the
// machine gives that many concurrent single-thread actors right now, other work on it included.
[[nodiscard]] double concurrent_sgemm_gflops(int threads, int64_t n = 1024);

}  // namespace reel::bench
