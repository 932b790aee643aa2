#include "cli/coordinator_bench.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include <ATen/Parallel.h>
#include <caf/all.hpp>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "actors/coordinator.hpp"
#include "actors/messages.hpp"
#include "actors/node.hpp"
#include "bench/ceiling.hpp"
#include "cli/cluster_run.hpp"
#include "cli/commands.hpp"
#include "cli/frames.hpp"
#include "models/zoo.hpp"
#include "pipeline/dit_denoiser.hpp"
#include "pipeline/sampler.hpp"
#include "video/mp4_writer.hpp"

namespace reel::cli {

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// CPU time of the whole process (every thread), user and system. Other tenants of the machine
// slow a run's wall time, not the CPU time it needs, so the CPU figures compare the two paths'
// work even when the machine is shared.
double process_cpu_seconds() {
  struct rusage u {};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

struct Run {
  double seconds = 0;         // the whole job: text encoding to the finished MP4
  double sample_seconds = 0;  // of which denoising
  torch::Tensor latent;
};

// (a) The job in this thread, the pipeline called directly: what `reel generate` does in-process.
Expected<Run> run_in_process(const models::T2VModel& model, const actors::JobSpec& s) {
  torch::NoGradGuard no_grad;
  Run run;
  const auto t0 = Clock::now();
  auto text = model.text_encoder->encode({s.prompt});
  if (!text) return text.error();
  pipeline::Conditioning cond{*text, {}};
  if (s.guidance != 1.0) cond.negative = torch::zeros_like(*text);
  auto solver = models::parse_solver_kind(s.solver);
  if (!solver) return solver.error();
  const pipeline::SampleOptions opts{.steps = s.steps, .shift = s.shift, .solver = *solver, .guidance = s.guidance,
                                     .seed = s.seed};
  pipeline::DiTDenoiser denoiser(model.dit, model.prediction);
  const auto& c = model.dit->config();
  const auto ts = Clock::now();
  auto result = pipeline::sample(denoiser, cond,
                                 {1, c.in_channels, s.frames, s.height / model.spatial_compression,
                                  s.width / model.spatial_compression},
                                 opts);
  run.sample_seconds = since(ts);
  if (!result) return result.error();
  auto pixels = model.decoder->decode(result->latent);
  if (!pixels) return pixels.error();
  auto frames = to_frames((*pixels)[0]);
  video::Mp4Options mp4;
  mp4.fps = s.fps;
  mp4.crf = s.crf;
  auto writer = video::Mp4Writer::open(s.out, frames[0].width, frames[0].height, mp4);
  if (!writer) return writer.error();
  for (const auto& f : frames) REEL_RETURN_IF_ERROR(writer->append(f));
  REEL_RETURN_IF_ERROR(writer->finish());
  run.seconds = since(t0);
  run.latent = result->latent;
  return run;
}

// (b) The same job through a coordinator with one local worker.
class CoordinatorPath {
 public:
  CoordinatorPath(caf::actor_system& system, actors::coordinator_actor coordinator, std::mutex& mutex,
                  torch::Tensor& latest)
      : self_(system), coordinator_(std::move(coordinator)), mutex_(mutex), latest_(latest) {}

  Expected<Run> run(const actors::JobSpec& spec) {
    Run run;
    std::optional<Error> failure;
    const auto t0 = Clock::now();
    uint64_t id = 0;
    self_->request(coordinator_, caf::infinite, actors::submit_atom::value, spec)
        .receive([&](uint64_t job) { id = job; }, [&](caf::error& e) { failure = actors::from_caf_error(e); });
    if (failure) return *failure;
    self_->request(coordinator_, caf::infinite, actors::subscribe_atom::value, id)
        .receive([](actors::JobRecord&) {}, [&](caf::error& e) { failure = actors::from_caf_error(e); });
    if (failure) return *failure;
    actors::JobEvent last;
    self_->receive_while([&] { return !actors::is_final(last.state) || last.id != id; })(
        [&](actors::job_event_atom, actors::JobEvent& e) { last = std::move(e); });
    run.seconds = since(t0);
    if (last.state != actors::JobState::done)
      return make_error(Errc::internal, "the coordinator's job ended " + std::string(actors::to_string(last.state)) +
                                            ": " + last.message);
    self_->request(coordinator_, caf::infinite, actors::status_atom::value, id)
        .receive([&](actors::JobRecord& r) { run.sample_seconds = r.stats.sample_seconds; },
                 [&](caf::error& e) { failure = actors::from_caf_error(e); });
    if (failure) return *failure;
    std::lock_guard lock(mutex_);
    run.latent = latest_;
    return run;
  }

 private:
  caf::scoped_actor self_;
  actors::coordinator_actor coordinator_;
  std::mutex& mutex_;
  torch::Tensor& latest_;
};

}  // namespace

CLI::App* add_bench_coordinator(CLI::App* bench, CoordinatorBenchArgs& args) {
  auto* sub = bench->add_subcommand(
      "coordinator", "one standard job in-process vs through the coordinator (one local worker): overhead in %");
  sub->add_option("--model,-m", args.model, "zoo name or .safetensors path")->capture_default_str();
  sub->add_option("--threads,-t", args.threads, "compute threads of both paths (0 = all cores)")
      ->envname("REEL_THREADS")->capture_default_str();
  sub->add_option("--repeats", args.repeats, "timed runs of each path (after one warm-up each)")->capture_default_str();
  sub->add_option("--frames", args.frames, "video length; 0 = the model's")->capture_default_str();
  sub->add_option("--steps", args.steps, "solver steps; 0 = the model's")->capture_default_str();
  sub->add_option("--seed", args.seed, "seed of the job")->check(CLI::NonNegativeNumber)->capture_default_str();
  sub->add_option("--json", args.json, "where to write the JSON ('' = nowhere)")->capture_default_str();
  return sub;
}

int run_bench_coordinator(const CoordinatorBenchArgs& a, const Config& cfg) {
  if (a.repeats < 1) return report(make_error(Errc::invalid_argument, "--repeats must be at least 1"));
  if (a.threads < 0) return report(make_error(Errc::invalid_argument, "--threads must be >= 0"));
  if (a.frames < 0 || a.steps < 0) return report(make_error(Errc::invalid_argument, "--frames and --steps must be >= 0"));
  const char* wait_policy = std::getenv("OMP_WAIT_POLICY");
  if (wait_policy == nullptr || std::string(wait_policy) != "passive")
    std::fprintf(stderr, "reel: note: run with OMP_WAIT_POLICY=passive: two threads' OpenMP teams spinning "
                         "against each other distort the comparison\n");
  const int threads = a.threads > 0 ? a.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  if (auto st = set_threads(threads); !st) return report(st.error());

  auto model = models::open_model(a.model, cfg.zoo);
  if (!model) return report(model.error());
  model->dit->eval();
  const auto dir = fs::temp_directory_path() / ("reel_bench_coordinator_" + std::to_string(::getpid()));
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return report(make_error(Errc::io_error, "cannot create " + dir.string()));
  struct Cleanup {
    fs::path dir;
    ~Cleanup() {
      std::error_code ec;
      fs::remove_all(dir, ec);
    }
  } cleanup{dir};

  actors::JobSpec spec;
  spec.prompt = "a large red circle moving right on a striped navy background";
  spec.model = a.model;
  spec.frames = a.frames > 0 ? a.frames : model->defaults.frames;
  spec.width = model->defaults.width;
  spec.height = model->defaults.height;
  spec.steps = a.steps > 0 ? a.steps : model->defaults.steps;
  spec.guidance = model->defaults.guidance;
  spec.shift = model->defaults.shift;
  spec.solver = models::solver_kind_name(model->defaults.solver);
  spec.fps = model->defaults.fps;
  spec.seed = a.seed;
  spec.upscale = 1;
  actors::JobSpec in_process = spec;
  in_process.out = (dir / "in_process.mp4").string();
  spec.out = (dir / "coordinator.mp4").string();

  // Before the actor system: the runner's latent observer writes here until the system stops.
  std::mutex mutex;
  torch::Tensor latest;
  caf::actor_system_config sys_cfg;
  actors::configure(sys_cfg);
  caf::actor_system system{sys_cfg};
  auto node = actors::spawn_node(system, cfg.zoo);
  auto workers = actors::request_workers(system, node, "local", 1);
  if (!workers) return report(workers.error());
  auto store = actors::spawn_job_store(system, (dir / "jobs").string());
  if (!store) return report(store.error());
  actors::CoordinatorOptions options;
  options.zoo = cfg.zoo;
  options.worker_threads = threads;
  options.runner_threads = threads;
  options.on_latent = [&](uint64_t, int64_t, const torch::Tensor& latent) {
    std::lock_guard lock(mutex);
    latest = latent.clone();
  };
  auto coordinator = actors::spawn_coordinator(system, *store, std::move(*workers), options);
  if (!coordinator) return report(coordinator.error());
  struct Stop {
    actors::coordinator_actor handle;
    ~Stop() { caf::anon_send_exit(handle, caf::exit_reason::user_shutdown); }
  } stop{*coordinator};
  CoordinatorPath through(system, *coordinator, mutex, latest);

  std::vector<double> a_s, b_s, a_sample, b_sample, a_cpu, b_cpu;
  bool equal = true;
  double max_diff = 0;
  // One warm-up each (the worker loads the model, caches fill), then interleaved timed runs so
  // that drifts of the machine hit both paths alike.
  for (int r = 0; r <= a.repeats; ++r) {
    const double c0 = process_cpu_seconds();
    auto ra = run_in_process(*model, in_process);
    if (!ra) return report(ra.error());
    const double c1 = process_cpu_seconds();
    auto rb = through.run(spec);
    if (!rb) return report(rb.error());
    const double c2 = process_cpu_seconds();
    if (!rb->latent.defined()) return report(make_error(Errc::internal, "the coordinator reported no latent"));
    const bool same = torch::equal(ra->latent, rb->latent);
    equal = equal && same;
    if (!same) max_diff = std::max(max_diff, (ra->latent - rb->latent).abs().max().item<double>());
    if (r == 0) continue;
    a_s.push_back(ra->seconds);
    b_s.push_back(rb->seconds);
    a_sample.push_back(ra->sample_seconds);
    b_sample.push_back(rb->sample_seconds);
    a_cpu.push_back(c1 - c0);
    b_cpu.push_back(c2 - c1);
  }
  const double gflops = bench::sgemm_gflops(512, 6);  // with the bench's threads
  const double ma = median(a_s), mb = median(b_s), msa = median(a_sample), msb = median(b_sample);
  const double overhead = 100.0 * (mb - ma) / ma;
  const double sample_overhead = 100.0 * (msb - msa) / msa;
  // Each coordinator run against the in-process run just before it: a load that comes and goes
  // on the machine hits both runs of a pair alike, so this is the steadier figure.
  std::vector<double> paired;
  for (size_t i = 0; i < a_s.size(); ++i) paired.push_back(100.0 * (b_s[i] - a_s[i]) / a_s[i]);
  const double paired_overhead = median(paired);
  const double mca = median(a_cpu), mcb = median(b_cpu);
  const double cpu_overhead = 100.0 * (mcb - mca) / mca;

  std::printf("coordinator overhead: %s, %d frames %dx%d, %d steps, guidance %.1f, %d threads, %d repeats "
              "(interleaved, after a warm-up)\n",
              model->name.c_str(), spec.frames, spec.width, spec.height, spec.steps, spec.guidance, threads, a.repeats);
  std::printf("%-30s %10s %10s %16s %12s\n", "path", "median s", "min s", "denoising med s", "cpu med s");
  std::printf("%-30s %10.3f %10.3f %16.3f %12.3f\n", "in-process (pipeline::sample)", ma,
              *std::min_element(a_s.begin(), a_s.end()), msa, mca);
  std::printf("%-30s %10.3f %10.3f %16.3f %12.3f\n", "coordinator, 1 local worker", mb,
              *std::min_element(b_s.begin(), b_s.end()), msb, mcb);
  std::printf("%-30s %+9.2f%% %10s %+15.2f%% %+11.2f%%   (target <= 3%%)\n", "overhead (of the medians)", overhead,
              "", sample_overhead, cpu_overhead);
  std::printf("%-30s %+9.2f%%\n", "overhead (median of pairs)", paired_overhead);
  std::printf("latents equal: %s (max |diff| %.3g); sgemm ceiling %.1f GFLOP/s\n", equal ? "yes" : "NO", max_diff,
              gflops);

  if (!a.json.empty()) {
    nlohmann::json j{{"model", model->name},
                     {"frames", spec.frames},
                     {"width", spec.width},
                     {"height", spec.height},
                     {"steps", spec.steps},
                     {"guidance", spec.guidance},
                     {"threads", threads},
                     {"repeats", a.repeats},
                     {"in_process", {{"seconds", a_s}, {"median", ma}, {"denoising_seconds", a_sample}, {"denoising_median", msa},
                                     {"cpu_seconds", a_cpu}, {"cpu_median", mca}}},
                     {"coordinator", {{"seconds", b_s}, {"median", mb}, {"denoising_seconds", b_sample}, {"denoising_median", msb},
                                      {"cpu_seconds", b_cpu}, {"cpu_median", mcb}}},
                     {"overhead_percent", overhead},
                     {"denoising_overhead_percent", sample_overhead},
                     {"paired_overhead_percent", paired_overhead},
                     {"cpu_overhead_percent", cpu_overhead},
                     {"target_percent", 3.0},
                     {"latents_equal", equal},
                     {"max_abs_diff", max_diff},
                     {"sgemm_gflops", gflops}};
    std::ofstream out(a.json);
    if (!out) return report(make_error(Errc::invalid_argument, "cannot write " + a.json));
    out << j.dump(1) << "\n";
    std::printf("wrote %s\n", a.json.c_str());
  }
  return equal ? kExitOk : kExitFailure;
}

}  // namespace reel::cli
