// reel generate through the coordinator: --workers K (local workers), --nodes HOST:PORT,...
// (workers on `reel node` processes), --cfg-parallel (standard mode: the conditional and
// unconditional passes on two workers). Without these options generate runs in-process as
// before.
//
// The job goes through a job store: --jobs DIR keeps it (and the job survives a crash: the
// next `reel generate --jobs DIR ...` finishes the store's unfinished jobs first); without
// --jobs a temporary store is used and removed at the end.
#pragma once

#include <CLI/CLI.hpp>
#include <caf/actor_system_config.hpp>

#include <string>
#include <vector>

#include "actors/job_store.hpp"
#include "base/expected.hpp"
#include "cli/cache_run.hpp"
#include "cli/config.hpp"

namespace reel::models {
struct T2VModel;
}

namespace reel::cli {

struct ClusterArgs {
  int workers = 0;             // --workers: local workers; 0 = none (2 with --cfg-parallel alone)
  std::string nodes;           // --nodes: HOST:PORT,HOST:PORT of `reel node` processes; "" = none
  int workers_per_node = 1;    // --workers-per-node: workers asked of each node; default 1
  bool cfg_parallel = false;   // --cfg-parallel: standard mode, CFG halves on two workers
  std::string jobs;            // --jobs: job store directory; "" = a temporary one (default)
  int stages = 2;              // --stages: pipefusion stage actors (N)
  int patches = 4;             // --patches: pipefusion patches of the token sequence (M)
  int warmup_steps = 1;        // --warmup: pipefusion synchronous steps first (W)
  std::string split = "frames";  // --split: pipefusion patches by frames or rows
};

// Registers --workers, --nodes, --workers-per-node, --cfg-parallel, --jobs and the PipeFusion
// options (--stages, --patches, --warmup, --split) on `generate`.
void add_cluster_options(CLI::App* generate, ClusterArgs& args);

// Whether the job goes through the coordinator (any of --workers, --nodes, --cfg-parallel; and
// --mode pipefusion, whose stages are actors).
[[nodiscard]] bool cluster_requested(const ClusterArgs& args);

// "HOST:PORT,HOST:PORT" -> addresses. invalid_argument naming the entry for an empty entry or
// one that is not HOST:PORT with a port in 1..65535.
[[nodiscard]] Expected<std::vector<std::string>> parse_node_list(const std::string& nodes);

// The checks that need no model or network, for `mode` (standard, fifo, clips or pipefusion):
// invalid_argument for a malformed --nodes, negative --workers, --workers-per-node < 1,
// --cfg-parallel outside standard mode, --stages or --patches < 1, --warmup < 0, a --split other
// than frames or rows.
[[nodiscard]] Status check_cluster_args(const ClusterArgs& args, const std::string& mode);


// For a pipefusion job: whether `model` can run the spec's stages, patches and split at the
// spec's size (invalid_argument saying why not). Other modes: nothing to check.
[[nodiscard]] Status check_pipefusion_plan(const actors::JobSpec& spec, const models::T2VModel& model);

// Runs `spec` (settings already resolved and checked) through a coordinator on the workers
// `args` asks for, with generate's progress bar and summary line; `threads` is --threads (0 =
// all cores), split evenly between the workers of a machine. A pipefusion job places its stages
// on the --nodes (round-robin), or in this process without --nodes, each machine's threads
// split evenly between the stages it gets. `cache` (null: none) is the approximate cache a
// standard job looks up and adds to, through a cache-store actor in this process. `model_name` is what the summary
// line calls the model. Returns the exit code: 1 for an unreachable node or a failed job.
[[nodiscard]] int run_on_cluster(const ClusterArgs& args, const actors::JobSpec& spec, int threads, bool quiet,
                                 const std::string& model_name, const Config& cfg, const CacheArgs* cache = nullptr);

}  // namespace reel::cli
