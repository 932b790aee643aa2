// reel serve: the video service. A coordinator with its job store, local workers and the
// approximate cache, behind the /v1/videos HTTP API (cluster/video_api.hpp), running until
// SIGINT or SIGTERM. Jobs it accepted and did not finish run again when it starts next time over
// the same --data folder.
#include <pthread.h>

#include <climits>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <thread>

#include <caf/all.hpp>

#include "actors/coordinator.hpp"
#include "actors/messages.hpp"
#include "actors/node.hpp"
#include "cli/cache_run.hpp"
#include "cli/commands.hpp"
#include "cluster/http_server.hpp"
#include "cluster/video_api.hpp"

namespace reel::cli {

namespace {

namespace fs = std::filesystem;

struct ServeArgs {
  std::string listen;
  std::string data;
  int queue = 16;
  int workers = 1;
  int threads = 0;
  bool no_cache = false;
  bool quiet = false;
};

Error usage(const std::string& m) { return make_error(Errc::invalid_argument, m); }

int serve(const ServeArgs& a, const Config& cfg) {
  // Every thread started below inherits this mask, so the signals wait for sigwait here.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  auto address = actors::parse_address(a.listen);
  if (!address) return report(usage("--listen: " + address.error().message));
  if (a.queue < 1) return report(usage("--queue must be at least 1"));
  if (a.workers < 1 || a.workers > 64) return report(usage("--workers must be 1..64"));
  if (auto st = set_threads(a.threads); !st) return report(st.error());
  if (cfg.serve_retention_hours <= 0) return report(usage("serve.retention_hours must be > 0"));
  if (cfg.serve_body_limit_mb <= 0) return report(usage("serve.body_limit_mb must be > 0"));
  for (const auto& [token, tenant] : cfg.serve_tokens)
    if (token.size() < 8) return report(usage("serve.tokens: a token must have at least 8 characters"));

  std::error_code ec;
  fs::create_directories(a.data, ec);
  if (!fs::is_directory(a.data, ec)) return report(usage("--data '" + a.data + "' is not a folder that can be made"));
  const std::string data = fs::absolute(a.data).lexically_normal().string();

  caf::actor_system_config sys_cfg;
  actors::configure(sys_cfg);
  caf::actor_system system{sys_cfg};

  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const int threads = a.threads > 0 ? a.threads : cores;
  auto node = actors::spawn_node(system, cfg.zoo);
  auto workers = actors::request_workers(system, node, "local", a.workers);
  if (!workers) return report(workers.error());
  auto store = actors::spawn_job_store(system, (fs::path(data) / "jobs").string());
  if (!store) return report(store.error());

  actors::CoordinatorOptions options;
  options.zoo = cfg.zoo;
  options.worker_threads = std::max(1, threads / a.workers);
  options.runner_threads = threads;
  options.checkpoint_dir = (fs::path(data) / "checkpoints").string();
  options.keep_fifo_ends = true;  // POST /v1/videos/extensions continues them
  const bool use_cache = cfg.serve_cache && !a.no_cache;
  CacheArgs cache = cache_args(cfg);
  if (use_cache) {
    if (cache.path.empty()) cache.path = (fs::path(data) / "cache").string();
    auto opened = open_cache_actor(system, cache, cfg.model);
    if (!opened) return report(opened.error());
    options.cache = *opened;
  }
  auto coordinator = actors::spawn_coordinator(system, *store, std::move(*workers), options);
  if (!coordinator) return report(coordinator.error());
  caf::scoped_actor self{system};
  self->monitor(*coordinator);

  std::mutex log_mutex;
  cluster::VideoApiOptions api_options;
  api_options.data_dir = data;
  api_options.checkpoint_dir = options.checkpoint_dir;
  api_options.zoo = cfg.zoo;
  api_options.default_model = cfg.model;
  api_options.tokens = cfg.serve_tokens;
  api_options.queue = a.queue;
  api_options.retention_s = static_cast<int64_t>(cfg.serve_retention_hours * 3600);
  api_options.upscale = cfg.upscale;
  api_options.crf = cfg.crf;
  api_options.upscale_filter = cfg.upscale_filter;
  api_options.seed = cfg.seed;
  if (!a.quiet)
    api_options.log = [&log_mutex](const std::string& line) {
      std::lock_guard lock(log_mutex);
      std::fprintf(stderr, "reel: %s\n", line.c_str());
    };
  auto api = cluster::VideoApi::create(system, *coordinator, api_options);
  if (!api) return report(api.error());

  cluster::HttpServerOptions http;
  http.host = address->first;
  http.port = address->second;
  http.body_limit = static_cast<uint64_t>(cfg.serve_body_limit_mb * 1e6);
  auto server = cluster::HttpServer::start(http, [&api](const cluster::HttpRequest& r) { return (*api)->handle(r); });
  if (!server) return report(server.error());
  const std::string host = address->first.find(':') != std::string::npos ? "[" + address->first + "]" : address->first;
  std::printf("reel: serving on http://%s:%u (data %s, %d worker%s, %d threads, cache %s%s)\n", host.c_str(),
              static_cast<unsigned>((*server)->port()), data.c_str(), a.workers, a.workers == 1 ? "" : "s", threads,
              use_cache ? "on" : "off", cfg.serve_tokens.empty() ? ", loopback clients only" : "");
  std::fflush(stdout);

  int signal = 0;
  sigwait(&stop_signals, &signal);
  if (!a.quiet) std::fprintf(stderr, "reel: stopping (%s); unfinished jobs run again at the next start\n",
                             signal == SIGINT ? "SIGINT" : "SIGTERM");
  (*server)->stop();
  api->reset();
  // The runner stops between two steps and leaves its job recorded as running.
  self->send_exit(*coordinator, caf::exit_reason::user_shutdown);
  self->receive([](caf::down_msg&) {}, caf::after(std::chrono::minutes(2)) >> [] {});
  return kExitOk;
}

}  // namespace

Command add_serve(CLI::App& app, const Config& cfg) {
  auto args = std::make_shared<ServeArgs>();
  args->listen = cfg.serve_listen;
  args->data = cfg.serve_data;
  args->queue = cfg.serve_queue;
  args->workers = cfg.serve_workers;
  args->threads = cfg.threads;
  auto* cmd = app.add_subcommand("serve", "serve text-to-video jobs over HTTP (an OpenAI-style /v1/videos API)");
  cmd->add_option("--listen", args->listen, "HOST:PORT to serve on (port 0: any free port)")->capture_default_str();
  cmd->add_option("--data", args->data, "the service's folder: job store, videos, cache")->capture_default_str();
  cmd->add_option("--queue", args->queue, "jobs queued or running at most; more are answered 429")->capture_default_str();
  cmd->add_option("--workers", args->workers, "local workers for model calls (threads split between them)")
      ->capture_default_str();
  cmd->add_option("--threads", args->threads, "compute threads in all (0 = all cores)")->capture_default_str();
  cmd->add_flag("--no-cache", args->no_cache, "no approximate cache");
  cmd->add_flag("-q,--quiet", args->quiet, "no log lines on stderr");
  return [args, &cfg] { return serve(*args, cfg); };
}

}  // namespace reel::cli
