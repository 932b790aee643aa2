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
#include "cli/config.hpp"

namespace reel::cli {

struct ClusterArgs {
  int workers = 0;             // --workers: local workers; 0 = none (2 with --cfg-parallel alone)
  std::string nodes;           // --nodes: HOST:PORT,HOST:PORT of `reel node` processes; "" = none
  int workers_per_node = 1;    // --workers-per-node: workers asked of each node; default 1
  bool cfg_parallel = false;   // --cfg-parallel: standard mode, CFG halves on two workers
  std::string jobs;            // --jobs: job store directory; "" = a temporary one (default)
};

// Registers --workers, --nodes, --workers-per-node, --cfg-parallel and --jobs on `generate`.
void add_cluster_options(CLI::App* generate, ClusterArgs& args);

// Whether the job goes through the coordinator (any of --workers, --nodes, --cfg-parallel).
[[nodiscard]] bool cluster_requested(const ClusterArgs& args);

// "HOST:PORT,HOST:PORT" -> addresses. invalid_argument naming the entry for an empty entry or
// one that is not HOST:PORT with a port in 1..65535.
[[nodiscard]] Expected<std::vector<std::string>> parse_node_list(const std::string& nodes);

// The checks that need no model or network, for `mode` (standard, fifo or clips):
// invalid_argument for a malformed --nodes, negative --workers, --workers-per-node < 1, or
// --cfg-parallel outside standard mode.
[[nodiscard]] Status check_cluster_args(const ClusterArgs& args, const std::string& mode);


// Runs `spec` (settings already resolved and checked) through a coordinator on the workers
// `args` asks for, with generate's progress bar and summary line; `threads` is --threads (0 =
// all cores), split evenly between the workers of a machine. `model_name` is what the summary
// line calls the model. Returns the exit code: 1 for an unreachable node or a failed job.
[[nodiscard]] int run_on_cluster(const ClusterArgs& args, const actors::JobSpec& spec, int threads, bool quiet,
                                 const std::string& model_name, const Config& cfg);

}  // namespace reel::cli
