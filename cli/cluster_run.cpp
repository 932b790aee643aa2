#include "cli/cluster_run.hpp"

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <thread>

#include <caf/all.hpp>

#include "actors/coordinator.hpp"
#include "actors/messages.hpp"
#include "actors/node.hpp"
#include "cli/commands.hpp"
#include "cli/progress.hpp"
#include "models/zoo.hpp"
#include "pipeline/pipefusion.hpp"

namespace reel::cli {

namespace fs = std::filesystem;

void add_cluster_options(CLI::App* generate, ClusterArgs& args) {
  generate->add_option("--workers", args.workers,
                       "run through the coordinator on K local workers, --threads split between them (0 = in-process)")
      ->capture_default_str();
  generate->add_option("--nodes", args.nodes,
                       "run through the coordinator on workers of `reel node` processes: HOST:PORT,HOST:PORT")
      ->check(CLI::Validator(
          [](std::string& value) { return value.empty() ? std::string("empty; give HOST:PORT,...") : std::string(); },
          "HOST:PORT,..."));
  generate->add_option("--workers-per-node", args.workers_per_node, "with --nodes: workers asked of each node")
      ->capture_default_str();
  generate->add_flag("--cfg-parallel", args.cfg_parallel,
                     "standard mode: conditional and unconditional passes on two workers (alone: 2 local workers)");
  generate->add_option("--jobs", args.jobs,
                       "with --workers/--nodes: job store directory, kept (unfinished jobs in it run first); "
                       "default: a temporary one");
  generate->add_option("--stages", args.stages,
                       "pipefusion: stage actors, each a contiguous range of the model's blocks (on --nodes, "
                       "round-robin; else in this process)")
      ->capture_default_str();
  generate->add_option("--patches", args.patches, "pipefusion: patches the token sequence is split into")
      ->capture_default_str();
  generate->add_option("--warmup", args.warmup_steps, "pipefusion: synchronous full-sequence steps first")
      ->capture_default_str();
  generate->add_option("--split", args.split, "pipefusion: patches by frames (exact positions) or rows")
      ->capture_default_str();
}


bool cluster_requested(const ClusterArgs& args) { return args.workers != 0 || !args.nodes.empty() || args.cfg_parallel; }

Expected<std::vector<std::string>> parse_node_list(const std::string& nodes) {
  std::vector<std::string> out;
  std::stringstream ss(nodes);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item.empty()) return make_error(Errc::invalid_argument, "--nodes '" + nodes + "' has an empty entry");
    auto parsed = actors::parse_address(item);
    if (!parsed) return make_error(Errc::invalid_argument, "--nodes: " + parsed.error().message);
    if (parsed->second == 0) return make_error(Errc::invalid_argument, "--nodes: '" + item + "': port 0 cannot be reached");
    out.push_back(item);
  }
  if (!nodes.empty() && nodes.back() == ',') return make_error(Errc::invalid_argument, "--nodes '" + nodes + "' has an empty entry");
  return out;
}

Status check_cluster_args(const ClusterArgs& args, const std::string& mode) {
  if (args.workers < 0) return make_error(Errc::invalid_argument, "--workers must be >= 0");
  if (args.workers_per_node < 1) return make_error(Errc::invalid_argument, "--workers-per-node must be >= 1");
  // Each worker is an actor with its own compute threads: more than a few per core only thrash.
  const int most = std::max(16, 4 * static_cast<int>(std::thread::hardware_concurrency()));
  if (args.workers > most || args.workers_per_node > most)
    return make_error(Errc::invalid_argument, "--workers and --workers-per-node must be at most " +
                                                  std::to_string(most) + " (4 per core on this machine)");
  if (args.cfg_parallel && mode != "standard")
    return make_error(Errc::invalid_argument, "--cfg-parallel works with --mode standard only");
  if (!args.nodes.empty()) {
    auto list = parse_node_list(args.nodes);
    if (!list) return list.error();
  }
  if (mode == "pipefusion") {
    if (args.stages < 1) return make_error(Errc::invalid_argument, "--stages must be at least 1");
    if (args.patches < 1) return make_error(Errc::invalid_argument, "--patches must be at least 1");
    if (args.warmup_steps < 0) return make_error(Errc::invalid_argument, "--warmup must be >= 0");
    if (args.split != "frames" && args.split != "rows")
      return make_error(Errc::invalid_argument, "--split must be frames or rows, got '" + args.split + "'");
  }
  return {};
}

Status check_pipefusion_plan(const actors::JobSpec& spec, const models::T2VModel& model) {
  if (spec.mode != actors::JobMode::pipefusion) return {};
  pipeline::PipeFusionPlan plan;
  plan.stages = spec.stages;
  plan.patches = spec.patches;
  plan.warmup_steps = spec.warmup_steps;
  const int steps = spec.steps != 0 ? spec.steps : model.defaults.steps;
  if (spec.warmup_steps > steps)
    return make_error(Errc::invalid_argument, "--warmup " + std::to_string(spec.warmup_steps) +
                                                  " is more than the steps (" + std::to_string(steps) + ")");
  auto split = pipeline::parse_patch_split(spec.split);
  if (!split) return make_error(Errc::invalid_argument, "--split: " + split.error().message);
  plan.split = *split;
  const std::vector<int64_t> shape{1, model.dit->config().in_channels, spec.frames,
                                   spec.height / model.spatial_compression, spec.width / model.spatial_compression};
  if (auto layout = pipeline::make_layout(plan, model.dit->config(), shape); !layout)
    return make_error(Errc::invalid_argument, layout.error().message);
  return {};
}

namespace {

// A job store folder that is removed at the end unless the user named it.
class StoreDir {
 public:
  explicit StoreDir(const std::string& given) : path_(given) {
    if (!path_.empty()) return;
    std::string pattern = (fs::temp_directory_path() / "reel-jobs-XXXXXX").string();
    if (::mkdtemp(pattern.data()) != nullptr) {
      path_ = pattern;
      temporary_ = true;
    }
  }
  ~StoreDir() {
    if (!temporary_) return;
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  StoreDir(const StoreDir&) = delete;
  StoreDir& operator=(const StoreDir&) = delete;
  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  std::string path_;
  bool temporary_ = false;
};

struct Pool {
  std::vector<actors::PoolMember> members;
  int threads_per_worker = INT_MAX;
  std::vector<actors::StageHost> stage_hosts;  // the --nodes; empty: stages in this process
  int threads_per_stage = INT_MAX;
};

// How many of `stages` stages, dealt round-robin over `hosts` hosts, the busiest host gets.
int stages_per_host(int stages, size_t hosts) {
  return std::max(1, (stages + static_cast<int>(hosts) - 1) / static_cast<int>(std::max<size_t>(1, hosts)));
}

// The workers: K local ones, then workers_per_node on each node. Each machine's threads (--threads,
// else its cores) are split evenly between its workers; one value serves the whole pool, so the
// smallest share wins.
Expected<Pool> gather_workers(caf::actor_system& system, const ClusterArgs& args, actors::JobMode mode, int threads,
                              const Config& cfg) {
  Pool pool;
  // Workers already given by other nodes are stopped when a later node fails.
  struct Release {
    Pool& pool;
    bool keep = false;
    ~Release() {
      if (keep) return;
      for (auto& m : pool.members) caf::anon_send_exit(m.handle, caf::exit_reason::user_shutdown);
    }
  } release{pool};
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  int local = args.workers;
  const bool pipefusion = mode == actors::JobMode::pipefusion;
  // --cfg-parallel alone: two; --mode pipefusion alone: one, which the job does not use (its
  // stages are actors of their own) but a coordinator needs.
  if (local == 0 && args.nodes.empty()) local = pipefusion ? 1 : 2;
  if (local > 0) {
    auto node = actors::spawn_node(system, cfg.zoo);
    auto members = actors::request_workers(system, node, "local", local);
    if (!members) return members.error();
    pool.members = std::move(*members);
    pool.threads_per_worker = std::max(1, (threads > 0 ? threads : cores) / local);
  }
  auto addresses = parse_node_list(args.nodes);
  if (!addresses) return addresses.error();
  const int per_host = stages_per_host(args.stages, std::max<size_t>(1, addresses->size()));
  if (pipefusion && addresses->empty()) pool.threads_per_stage = std::max(1, (threads > 0 ? threads : cores) / per_host);
  for (const auto& address : *addresses) {
    auto node = actors::connect_node(system, address);
    if (!node) return node.error();
    auto info = actors::node_info(system, *node);
    if (!info) return make_error(Errc::io_error, "node " + address + ": " + info.error().message);
    auto members = actors::request_workers(system, *node, address, args.workers_per_node);
    if (!members) return members.error();
    for (auto& m : *members) pool.members.push_back(std::move(m));
    const int node_threads = threads > 0 ? threads : std::max(1, static_cast<int>(info->cores));
    pool.threads_per_worker = std::min(pool.threads_per_worker, std::max(1, node_threads / args.workers_per_node));
    if (pipefusion) {
      pool.stage_hosts.push_back(actors::StageHost{*node, address});
      pool.threads_per_stage = std::min(pool.threads_per_stage, std::max(1, node_threads / per_host));
    }
  }
  if (pool.members.empty()) return make_error(Errc::invalid_argument, "no workers: give --workers or --nodes");
  release.keep = true;
  return pool;
}

void print_summary(const actors::JobRecord& r, const std::string& model_name, double wall, size_t workers,
                   size_t stage_hosts) {
  const auto& s = r.spec;
  const auto& st = r.stats;
  char where[96];
  std::snprintf(where, sizeof where, "job %llu on %zu worker%s", static_cast<unsigned long long>(r.id), workers,
                workers == 1 ? "" : "s");
  switch (s.mode) {
    case actors::JobMode::standard:
      std::printf("reel: wrote %s (%d frames, %dx%d, %d fps) with %s in %s; %lld model calls, %.3f s/step; %s\n",
                  r.result.c_str(), s.frames, s.width * s.upscale, s.height * s.upscale, s.fps, model_name.c_str(),
                  format_seconds(wall).c_str(), static_cast<long long>(st.model_calls),
                  st.sample_seconds / std::max(1, s.steps), where);
      break;
    case actors::JobMode::fifo:
      std::printf("reel: wrote %s (%d frames, fifo, %d steps, %lld model calls) with %s in %s; %.3f s/frame; %s\n",
                  r.result.c_str(), s.frames, s.steps, static_cast<long long>(st.model_calls), model_name.c_str(),
                  format_seconds(wall).c_str(), st.sample_seconds / std::max(1, s.frames), where);
      break;
    case actors::JobMode::pipefusion:
      std::printf("reel: wrote %s (%d frames, %dx%d, %d fps) with %s in %s; pipefusion %d stages on %zu host%s, "
                  "%d patches, %d warm-up step%s, %.3f s/step; job %llu%s\n",
                  r.result.c_str(), s.frames, s.width * s.upscale, s.height * s.upscale, s.fps, model_name.c_str(),
                  format_seconds(wall).c_str(), s.stages, std::max<size_t>(1, stage_hosts),
                  stage_hosts > 1 ? "s" : "", s.patches, s.warmup_steps, s.warmup_steps == 1 ? "" : "s",
                  st.sample_seconds / std::max(1, s.steps), static_cast<unsigned long long>(r.id),
                  st.replans > 0 ? (", planned again " + std::to_string(st.replans) + "x after a lost node").c_str()
                                 : "");
      break;
    case actors::JobMode::clips:
      std::printf("reel: wrote %s (%d frames, %d clips, %d steps, %lld model calls) with %s in %s; %.3f s/frame; %s\n",
                  r.result.c_str(), s.frames, s.clips, s.steps, static_cast<long long>(st.model_calls),
                  model_name.c_str(), format_seconds(wall).c_str(), st.sample_seconds / std::max(1, s.frames), where);
      break;
  }
}

}  // namespace

int run_on_cluster(const ClusterArgs& args, const actors::JobSpec& spec, int threads, bool quiet,
                   const std::string& model_name, const Config& cfg, const CacheArgs* cache) {
  const auto t0 = std::chrono::steady_clock::now();
  // Made before the actor system so that it is removed after the system has stopped every
  // actor, the job store's RocksDB among them.
  StoreDir dir(args.jobs);
  if (dir.path().empty()) return report(make_error(Errc::io_error, "cannot create a temporary job store folder"));
  caf::actor_system_config sys_cfg;
  actors::configure(sys_cfg);
  caf::actor_system system{sys_cfg};

  auto pool = gather_workers(system, args, spec.mode, threads, cfg);
  if (!pool) return report(pool.error());
  const size_t workers = pool->members.size();

  auto store = actors::spawn_job_store(system, dir.path());
  if (!store) return report(store.error());

  caf::scoped_actor self{system};
  if (!args.jobs.empty()) {  // say why this job may wait
    int64_t earlier = 0;
    self->request(*store, caf::infinite, actors::job_list_atom::value)
        .receive(
            [&](std::vector<actors::JobRecord>& records, std::vector<std::string>&) {
              for (const auto& r : records) earlier += actors::is_final(r.state) ? 0 : 1;
            },
            [](caf::error&) {});
    if (earlier > 0)
      std::fprintf(stderr, "reel: %lld unfinished job%s in %s will run first\n", static_cast<long long>(earlier),
                   earlier == 1 ? "" : "s", dir.path().c_str());
  }

  actors::CoordinatorOptions options;
  options.zoo = cfg.zoo;
  options.worker_threads = pool->threads_per_worker;
  options.runner_threads = threads;
  const size_t stage_hosts = pool->stage_hosts.size();
  options.stage_hosts = std::move(pool->stage_hosts);
  if (pool->threads_per_stage != INT_MAX) options.stage_threads = pool->threads_per_stage;
  if (cache != nullptr && spec.mode == actors::JobMode::standard) {
    auto opened = open_cache_actor(system, *cache, spec.model.empty() ? model_name : spec.model);
    if (!opened) return report(opened.error());
    options.cache = *opened;
  }
  auto coordinator = actors::spawn_coordinator(system, *store, std::move(pool->members), options);
  if (!coordinator) return report(coordinator.error());
  self->monitor(*coordinator);
  // Whatever happens below, the coordinator (and with it the runner and the workers) stops
  // before the actor system goes away.
  struct Stop {
    caf::scoped_actor& self;
    actors::coordinator_actor handle;
    ~Stop() { self->send_exit(handle, caf::exit_reason::user_shutdown); }
  } stop{self, *coordinator};

  std::optional<Error> failure;
  uint64_t id = 0;
  self->request(*coordinator, caf::infinite, actors::submit_atom::value, spec)
      .receive([&](uint64_t job) { id = job; }, [&](caf::error& e) { failure = actors::from_caf_error(e); });
  if (failure) return report(*failure);
  self->request(*coordinator, caf::infinite, actors::subscribe_atom::value, id)
      .receive([](actors::JobRecord&) {}, [&](caf::error& e) { failure = actors::from_caf_error(e); });
  if (failure) return report(*failure);

  Progress progress("generating", spec.mode == actors::JobMode::fifo ? "frames" : "steps",
                    !quiet && Progress::stderr_is_terminal());
  actors::JobEvent last;
  bool ended = false;
  self->receive_while([&] { return !ended; })(
      [&](actors::job_event_atom, actors::JobEvent& event) {
        if (event.id != id) return;
        last = std::move(event);
        if (last.total > 0) progress.update(static_cast<int>(last.done), static_cast<int>(last.total));
        ended = actors::is_final(last.state);
      },
      [&](caf::down_msg& dm) {
        failure = make_error(Errc::internal, "the coordinator stopped: " + system.render(dm.reason));
        ended = true;
      });
  progress.finish();
  if (failure) return report(*failure);
  switch (last.state) {
    case actors::JobState::done:
      break;
    case actors::JobState::failed:
      return report(make_error(Errc::internal, last.message));
    case actors::JobState::cancelled:
      return report(make_error(Errc::cancelled, "job " + std::to_string(id) + " was cancelled"));
    case actors::JobState::queued:
    case actors::JobState::running:
      return report(make_error(Errc::internal, "job " + std::to_string(id) + " ended without a result"));
  }
  actors::JobRecord record;
  self->request(*coordinator, caf::infinite, actors::status_atom::value, id)
      .receive([&](actors::JobRecord& r) { record = std::move(r); },
               [&](caf::error& e) { failure = actors::from_caf_error(e); });
  if (failure) return report(*failure);
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  print_summary(record, model_name, wall, workers, stage_hosts);
  if (options.cache) {
    if (record.stats.cache_hit.empty()) {
      std::printf("reel: cache miss; stored this job's latents in %s\n", cache->path.c_str());
    } else {
      std::printf("reel: cache hit (%s, similarity %.3f): started at step %d of %d\n", record.stats.cache_hit.c_str(),
                  record.stats.cache_similarity, record.stats.cache_start_step, record.spec.steps);
    }
  }
  return kExitOk;
}

}  // namespace reel::cli
