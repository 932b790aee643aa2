// reel bench cache: replays a request trace through the approximate cache and reports hit rate,
// compute saved, bytes stored, lookup latency, throughput and adherence, for several cache
// configurations in one run (so their ratios share the machine's state).
#pragma once

#include <CLI/CLI.hpp>

#include <string>

#include "cli/config.hpp"

namespace reel::cli {

struct CacheBenchArgs {
  std::string trace;                 // one request a line (see prompt_log.hpp)
  double budget_mb = 64;             // the same byte budget for every configuration
  std::string policy = "cost_aware";
  // none: no cache; whole: whole-request entries, float32; decoupled: + objects and backgrounds;
  // compressed: + int8 and zstd.
  std::string configs = "none,whole,decoupled,compressed";
  std::string table;                 // similarity -> start fraction; "" = built in
  std::string embedder = "ngram";    // prompt embedder (see parse_embedder in cache_run.hpp)
  std::string json = "out/bench_cache.json";
  std::string model;
  int limit = 0;                     // replay only the first N requests (0 = all)
  uint64_t seed = 0;                 // request i without a seed of its own uses seed + i
  int threads = 0;
  int synthetic = 0;                 // > 0: lookup latency at this many synthetic entries instead
  int compression = 0;               // > 0: entry size and PSNR of compressed starts, over this many scenes
  int calibrate = 0;                 // > 0: adherence of starts from related prompts, over this many scenes
  bool full_reference = false;       // run the no-cache pass on every request, not only on hits
  bool quiet = false;
};

CLI::App* add_bench_cache(CLI::App* bench, CacheBenchArgs& args);
int run_bench_cache(const CacheBenchArgs& args, const Config& cfg);

}  // namespace reel::cli
