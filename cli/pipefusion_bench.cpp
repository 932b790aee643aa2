#include "cli/pipefusion_bench.hpp"

#include "base/durable.hpp"

#include <ATen/Parallel.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <span>
#include <sstream>
#include <thread>
#include <vector>

#include <caf/all.hpp>

#include "actors/pipefusion_actors.hpp"
#include "actors/stage.hpp"
#include "bench/ceiling.hpp"
#include "cli/commands.hpp"
#include "models/shapes/grammar.hpp"
#include "models/shapes/score.hpp"
#include "models/zoo.hpp"
#include "pipeline/dit_denoiser.hpp"
#include "pipeline/pipefusion.hpp"
#include "pipeline/sampler.hpp"

namespace reel::cli {

namespace {

namespace shapes = models::shapes;
using Clock = std::chrono::steady_clock;

Error usage(const std::string& message) { return make_error(Errc::invalid_argument, message); }

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// CPU time of the calling thread: beside wall time, how much of a core it was given.
double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

Expected<std::vector<int>> parse_ints(const std::string& list, const std::string& flag, int min) {
  std::vector<int> out;
  std::stringstream ss(list);
  std::string item;
  while (std::getline(ss, item, ',')) {
    char* end = nullptr;
    const long v = std::strtol(item.c_str(), &end, 10);
    if (item.empty() || *end != '\0' || v < min || v > 1'000'000)
      return usage(flag + ": '" + item + "' is not an integer >= " + std::to_string(min));
    out.push_back(static_cast<int>(v));
  }
  if (out.empty()) return usage(flag + " is empty");
  return out;
}

// What the table is measured on: a DiT, its prediction, conditioning and latent shape.
struct Subject {
  std::string name;
  models::T2VModel model;  // the zoo model (dit only, for random DiTs)
  pipeline::Conditioning cond;
  std::vector<int64_t> shape;
  pipeline::SampleOptions options;
  bool from_zoo = true;
};

Expected<Subject> random_subject(const PipeFusionBenchArgs& a) {
  models::DiTConfig cfg = models::tiny_dit_config();
  int frames = 8, height = 32, width = 32;
  if (a.preset == "medium") {  // as `reel bench model`'s medium
    cfg.dim = 512;
    cfg.ffn_dim = 2048;
    cfg.num_heads = 8;
    cfg.num_layers = 8;
    frames = 16;
  } else if (!a.preset.empty()) {
    return usage("--preset: unknown preset '" + a.preset + "' (medium)");
  }
  if (a.dim) {
    cfg.dim = *a.dim;
    cfg.ffn_dim = 4 * *a.dim;
    cfg.num_heads = std::max(1, *a.dim / 64);
  }
  if (a.blocks) cfg.num_layers = *a.blocks;
  frames = a.frames.value_or(frames);
  height = a.height.value_or(height);
  width = a.width.value_or(width);
  if (cfg.dim < 1 || cfg.num_layers < 1 || frames < 1 || height < 1 || width < 1)
    return usage("--dim, --blocks, --frames, --height and --width must be positive");
  if (height % cfg.patch[1] != 0 || width % cfg.patch[2] != 0)
    return usage("--height and --width must be multiples of " + std::to_string(cfg.patch[1]));
  REEL_RETURN_IF_ERROR(cfg.validate());

  Subject s;
  s.from_zoo = false;
  torch::manual_seed(0);
  s.model.dit = models::VideoDiT(cfg);
  s.model.dit->eval();
  s.model.prediction = models::Prediction::velocity;
  s.name = a.preset.empty() ? "a random-weight DiT" : "a random-weight DiT (" + a.preset + ")";
  auto text = torch::randn({1, cfg.text_len, cfg.text_dim});
  s.cond = {text, torch::zeros_like(text)};
  s.shape = {1, cfg.in_channels, frames, height, width};
  s.options.steps = a.steps.value_or(8);
  s.options.shift = 3.0;
  s.options.solver = models::SolverKind::unipc;
  s.options.guidance = a.guidance.value_or(4.0);
  return s;
}

Expected<Subject> zoo_subject(const PipeFusionBenchArgs& a, const Config& cfg) {
  auto model = models::open_model(a.model, cfg.zoo);
  if (!model) return model.error();
  Subject s;
  s.model = std::move(*model);
  s.name = s.model.name;
  const auto& d = s.model.defaults;
  const int frames = a.frames.value_or(d.frames);
  const int sc = s.model.spatial_compression;
  s.shape = {1, s.model.dit->config().in_channels, frames, d.height / sc, d.width / sc};
  auto text = s.model.text_encoder->encode({"a large red circle moving right on a striped navy background"});
  if (!text) return text.error();
  s.cond = {*text, torch::zeros_like(*text)};
  s.options.steps = a.steps.value_or(d.steps);
  s.options.shift = d.shift;
  s.options.solver = d.solver;
  s.options.guidance = a.guidance.value_or(d.guidance);
  return s;
}

double relative_l2(const torch::Tensor& a, const torch::Tensor& reference) {
  return ((a - reference).norm() / reference.norm()).item<double>();
}

struct Row {
  int warmup = 0, patches = 0;
  double error = 0;
  double measured = 0;  // bytes per step per boundary, mean over steps and boundaries
  int64_t analytic = 0;
  int64_t patch_bytes = 0;  // analytic per patch (the largest patch)
  double ring = 0;          // bytes per step, last stage -> stage 0
  double seconds = 0;
};

Expected<shapes::AdherenceTotals> score_batch(Subject& s, const torch::Tensor& latent,
                                              const std::vector<shapes::SceneSpec>& scenes,
                                              shapes::AdherenceTotals totals) {
  auto pixels = s.model.decoder->decode(latent);  // [n, F, H, W, 3]
  if (!pixels) return pixels.error();
  const int frames = static_cast<int>(pixels->size(1)), height = static_cast<int>(pixels->size(2)),
            width = static_cast<int>(pixels->size(3));
  for (size_t i = 0; i < scenes.size(); ++i) {
    auto clip = (*pixels)[static_cast<int64_t>(i)].contiguous();
    std::span<const uint8_t> rgb(clip.data_ptr<uint8_t>(), static_cast<size_t>(clip.numel()));
    auto score = shapes::score_clip(scenes[i], rgb, frames, height, width);
    if (!score) return score.error();
    totals.add(*score);
  }
  return totals;
}

nlohmann::json totals_json(const shapes::AdherenceTotals& t) {
  return {{"videos", t.videos},          {"background", t.background_rate()}, {"colour", t.colour_rate()},
          {"shape", t.shape_rate()},     {"motion", t.motion_rate()},         {"found", t.found_rate()},
          {"scene", t.scene_rate()}};
}

// Sequential vs PipeFusion W=1 M=4 on prompts drawn from the shapes world, scored from pixels.
Expected<nlohmann::json> adherence(Subject& s, const PipeFusionBenchArgs& a, pipeline::PipeFusionPlan plan) {
  plan.warmup_steps = 1;
  plan.patches = 4;
  const auto t0 = Clock::now();
  pipeline::DiTDenoiser denoiser(s.model.dit, s.model.prediction);
  shapes::AdherenceTotals seq_totals, pf_totals;
  double error_sum = 0;
  int groups = 0;
  for (int first = 0; first < a.prompts; first += a.batch) {
    const int n = std::min(a.batch, a.prompts - first);
    std::vector<shapes::SceneSpec> scenes;
    std::vector<std::string> prompts;
    for (int i = 0; i < n; ++i) {
      scenes.push_back(shapes::sample_scene(a.prompt_seed + static_cast<uint64_t>(first + i)));
      prompts.push_back(shapes::prompt(scenes.back()));
    }
    auto text = s.model.text_encoder->encode(prompts);
    if (!text) return text.error();
    pipeline::Conditioning cond{*text, torch::zeros_like(*text)};
    auto opts = s.options;
    opts.seed = a.prompt_seed + static_cast<uint64_t>(first / a.batch);  // as reel eval adherence
    std::vector<int64_t> shape = s.shape;
    shape[0] = n;
    auto seq = pipeline::sample(denoiser, cond, shape, opts);
    if (!seq) return seq.error();
    auto pf = pipeline::sample_pipefusion(s.model.dit, s.model.prediction, cond, shape, opts, plan);
    if (!pf) return pf.error();
    error_sum += relative_l2(pf->latent, seq->latent);
    ++groups;
    auto st = score_batch(s, seq->latent, scenes, seq_totals);
    if (!st) return st.error();
    seq_totals = *st;
    auto pt = score_batch(s, pf->latent, scenes, pf_totals);
    if (!pt) return pt.error();
    pf_totals = *pt;
    std::fprintf(stderr, "\radherence: %d/%d prompts", first + n, a.prompts);
  }
  std::fprintf(stderr, "\n");
  const double seconds = seconds_since(t0);
  std::printf("\nadherence over %d prompts (seed %llu), PipeFusion W=1 M=4 vs sequential:\n", a.prompts,
              static_cast<unsigned long long>(a.prompt_seed));
  std::printf("%-20s %11s %11s\n", "", "sequential", "PipeFusion");
  auto row = [](const char* what, double x, double y) { std::printf("%-20s %10.1f%% %10.1f%%\n", what, 100 * x, 100 * y); };
  row("background", seq_totals.background_rate(), pf_totals.background_rate());
  row("object colour", seq_totals.colour_rate(), pf_totals.colour_rate());
  row("object shape", seq_totals.shape_rate(), pf_totals.shape_rate());
  row("motion direction", seq_totals.motion_rate(), pf_totals.motion_rate());
  row("object found", seq_totals.found_rate(), pf_totals.found_rate());
  row("whole scene right", seq_totals.scene_rate(), pf_totals.scene_rate());
  std::printf("mean relative L2 of PipeFusion's latents vs sequential: %.3g (%.1f s)\n", error_sum / groups, seconds);
  return nlohmann::json{{"prompts", a.prompts},
                        {"prompt_seed", a.prompt_seed},
                        {"batch", a.batch},
                        {"warmup_steps", 1},
                        {"patches", 4},
                        {"sequential", totals_json(seq_totals)},
                        {"pipefusion", totals_json(pf_totals)},
                        {"mean_relative_l2", error_sum / groups},
                        {"seconds", seconds}};
}

Status write_json(const std::string& path, const nlohmann::json& j) { return write_file_atomic(path, j.dump(1) + "\n"); }

// --actors: (a) sequential sampling on one thread, (c) the one-thread simulation of the plan,
// (b) the plan on N stage actors of one thread each, all in this run; see the header.
int run_actors_bench(const PipeFusionBenchArgs& a, Subject& s, const pipeline::PipeFusionPlan& plan) {
  // Every computation here runs on one LibTorch thread: the stages set theirs, this sets ours.
  at::set_num_threads(1);
  const auto& dc = s.model.dit->config();
  const int n = plan.stages, m = plan.patches;
  const int steps = s.options.steps;
  const int warmup = std::min(plan.warmup_steps, steps);
  const int steady = steps - warmup;
  const int64_t tokens = (s.shape[2] / dc.patch[0]) * (s.shape[3] / dc.patch[1]) * (s.shape[4] / dc.patch[2]);
  std::printf("PipeFusion on stage actors, %s: %lld frames %lldx%lld (%lld tokens, D=%lld, %lld blocks)\n",
              s.name.c_str(), static_cast<long long>(s.shape[2]), static_cast<long long>(s.shape[3]),
              static_cast<long long>(s.shape[4]), static_cast<long long>(tokens), static_cast<long long>(dc.dim),
              static_cast<long long>(dc.num_layers));
  std::printf("N=%d stages x 1 thread, M=%d patches (%s), W=%d, %d %s steps (S=%d steady), guidance %g\n", n, m,
              pipeline::patch_split_name(plan.split), warmup, steps, models::solver_kind_name(s.options.solver),
              steady, s.options.guidance);
  std::fflush(stdout);

  const double sgemm1 = bench::sgemm_gflops(1024, 3);
  const double sgemm_n = bench::concurrent_sgemm_gflops(n);
  std::printf("ceiling: sgemm %.1f GFLOP/s on 1 thread; %d threads at once %.1f GFLOP/s (%.2fx one thread)\n",
              sgemm1, n, sgemm_n, sgemm_n / sgemm1);
  std::fflush(stdout);

  caf::actor_system_config cfg;
  actors::configure(cfg);
  caf::actor_system system{cfg};
  std::vector<actors::stage_actor> stages;
  for (int i = 0; i < n; ++i) stages.push_back(actors::spawn_stage(system, s.model.dit, s.model.prediction, 1));
  struct StopStages {
    std::vector<actors::stage_actor>& stages;
    ~StopStages() {
      for (auto& st : stages) caf::anon_send_exit(st, caf::exit_reason::user_shutdown);
    }
  } stop_stages{stages};

  // Each path first runs one untimed step (allocations, first-call costs), as a server's warm
  // stages would have done; the stages' warm step goes through the patches, not a synchronous step.
  auto one_step = s.options;
  one_step.steps = 1;
  pipeline::DiTDenoiser denoiser(s.model.dit, s.model.prediction);
  if (auto warm = pipeline::sample(denoiser, s.cond, s.shape, one_step); !warm) return report(warm.error());
  auto warm_plan = plan;
  warm_plan.warmup_steps = 0;
  if (auto warm = actors::sample_pipefusion_actors(system, stages, s.model.prediction, s.cond, s.shape, one_step,
                                                   warm_plan);
      !warm) {
    return report(warm.error());
  }

  // (a) and (b) alternate, so that both see the machine as it is; with --repeats the fastest of
  // each counts (other work on a shared machine only ever slows a run down).
  std::optional<pipeline::SampleResult> seq, pf;
  double seq_cpu = 0;
  pipeline::PipeFusionStats st;
  actors::PipeFusionTiming timing;
  std::vector<double> seq_times, pf_times;
  for (int r = 0; r < a.repeats; ++r) {
    const double cpu0 = thread_cpu_seconds();
    auto seq_r = pipeline::sample(denoiser, s.cond, s.shape, s.options);  // (a)
    if (!seq_r) return report(seq_r.error());
    const double cpu = thread_cpu_seconds() - cpu0;
    seq_times.push_back(seq_r->stats.seconds);
    if (!seq || seq_r->stats.seconds < seq->stats.seconds) {
      seq = std::move(*seq_r);
      seq_cpu = cpu;
    }
    pipeline::PipeFusionStats st_r;
    actors::PipeFusionTiming timing_r;
    actors::PipeFusionActorOptions run;
    run.timing = &timing_r;
    auto pf_r = actors::sample_pipefusion_actors(system, stages, s.model.prediction, s.cond, s.shape, s.options,
                                                 plan, &st_r, run);  // (b)
    if (!pf_r) return report(pf_r.error());
    pf_times.push_back(pf_r->stats.seconds);
    if (!pf || pf_r->stats.seconds < pf->stats.seconds) {
      pf = std::move(*pf_r);
      st = std::move(st_r);
      timing = std::move(timing_r);
    }
    if (a.repeats > 1) {
      std::printf("repeat %d: (a) %.2f s, (b) %.2f s\n", r + 1, seq_times.back(), pf_times.back());
      std::fflush(stdout);
    }
  }
  // The machine is shared: measure what N threads at once get again, now that (b) is done.
  const double sgemm_n_after = bench::concurrent_sgemm_gflops(n);

  pipeline::PipeFusionStats sim_stats;
  auto sim = pipeline::sample_pipefusion(s.model.dit, s.model.prediction, s.cond, s.shape, s.options, plan,
                                         &sim_stats);  // (c)
  if (!sim) return report(sim.error());

  const double t_seq = seq->stats.seconds, t_sim = sim->stats.seconds, t_pf = pf->stats.seconds;
  const double speedup = t_seq / t_pf;
  const double efficiency = static_cast<double>(steady) * m / (static_cast<double>(steady) * m + n - 1);
  // Sequential steps cost T each; a synchronous step still costs T, the steady part at best
  // (S*M + N - 1) patch-stage slots of T / (N*M).
  const double bound = static_cast<double>(steps) /
                       (warmup + (static_cast<double>(steady) * m + n - 1) / (static_cast<double>(n) * m));
  const double error = relative_l2(pf->latent, seq->latent);
  const bool exact = torch::equal(pf->latent, sim->latent);

  std::printf("ceiling after (b): %d threads at once %.1f GFLOP/s (%.2fx one thread)\n", n, sgemm_n_after,
              sgemm_n_after / sgemm1);
  std::printf("\n%-34s %9s %9s\n", "", "s total", "s/step");
  std::printf("%-34s %9.2f %9.3f   (its thread got %.0f%% of a core)\n", "(a) sequential, 1 thread", t_seq,
              t_seq / steps, 100.0 * seq_cpu / t_seq);
  std::printf("%-34s %9.2f %9.3f\n", "(c) simulation, 1 thread", t_sim, t_sim / steps);
  std::printf("%-34s %9.2f %9.3f\n", ("(b) " + std::to_string(n) + " stage actors x 1 thread").c_str(), t_pf,
              t_pf / steps);
  std::printf("speedup (a)/(b): %.2fx   (c)/(b): %.2fx   work (c)/(a): %.3f\n", speedup, t_sim / t_pf, t_sim / t_seq);
  std::printf("pipeline bound S*M/(S*M+N-1) = %.3f (steady-state speedup <= %.2fx); with W=%d synchronous: <= %.2fx\n",
              efficiency, n * efficiency, warmup, bound);
  std::printf("relative L2 (b) vs (a): %.3e; (b) equals (c) bit for bit: %s\n", error, exact ? "yes" : "NO");

  // compute and wire are wall times inside a stage's handlers; cpu is its thread's CPU time
  // there (less when other work on the machine took the core); idle = ring - compute - wire.
  std::printf("\n%5s %8s %10s %10s %10s %10s %10s %6s %14s\n", "stage", "blocks", "compute s", "cpu s", "wire s",
              "idle s", "span s", "runs", "MB sent/step");
  nlohmann::json per_stage = nlohmann::json::array();
  double busiest = 0;
  for (size_t i = 0; i < timing.reports.size(); ++i) {
    const auto& r = timing.reports[i];
    const auto& info = timing.stages[i];
    const double idle = timing.ring_seconds - r.compute_seconds - r.wire_seconds;
    double sent = 0;
    for (int64_t b : timing.wire_bytes[i]) sent += static_cast<double>(b);
    sent /= steps;
    busiest = std::max(busiest, r.compute_seconds + r.wire_seconds);
    std::printf("%5zu %3lld..%-3lld %10.2f %10.2f %10.3f %10.2f %10.2f %6lld %14.2f\n", i,
                static_cast<long long>(info.first_block), static_cast<long long>(info.last_block),
                r.compute_seconds, r.cpu_seconds, r.wire_seconds, idle, r.span_seconds, static_cast<long long>(r.runs),
                sent / 1e6);
    per_stage.push_back({{"stage", i},
                         {"blocks", {info.first_block, info.last_block}},
                         {"compute_seconds", r.compute_seconds},
                         {"cpu_seconds", r.cpu_seconds},
                         {"wire_seconds", r.wire_seconds},
                         {"idle_seconds", idle},
                         {"span_seconds", r.span_seconds},
                         {"runs", r.runs},
                         {"wire_bytes_per_step", timing.wire_bytes[i]},
                         {"payload_bytes_per_step", r.payload_bytes}});
  }
  std::printf("ring %.2f s (set-up %.3f s); busiest stage %.2f s = %.0f%% of the ring; (c) / N = %.2f s\n",
              timing.ring_seconds, timing.setup_seconds, busiest, 100.0 * busiest / timing.ring_seconds, t_sim / n);
  // Cores each run used: CPU time of its computing threads over its wall time. Below the thread
  // count when the machine gave a thread's core to other work (then compute s > cpu s above)
  // or when a stage waited (idle s: the pipeline's bubbles).
  double stage_cpu = 0;
  for (const auto& r : timing.reports) stage_cpu += r.cpu_seconds;
  const double cores_seq = seq_cpu / t_seq, cores_pf = stage_cpu / timing.ring_seconds;
  std::printf("cores used: (a) %.2f, (b) %.2f of %d; CPU seconds (b)/(a) %.3f\n", cores_seq, cores_pf, n,
              stage_cpu / seq_cpu);
  double measured = 0;
  for (int b = 0; b + 1 < st.stages; ++b) measured += st.boundary_bytes_per_step(b);
  if (st.stages > 1) measured /= st.stages - 1;
  std::printf("bytes per step per boundary: measured %.0f, analytic %lld\n", measured,
              static_cast<long long>(st.analytic_step_bytes));

  nlohmann::json out{{"benchmark", "pipefusion_actors"},
                     {"model", s.name},
                     {"shape", s.shape},
                     {"tokens", tokens},
                     {"dim", dc.dim},
                     {"blocks", dc.num_layers},
                     {"stages", n},
                     {"patches", m},
                     {"split", pipeline::patch_split_name(plan.split)},
                     {"warmup_steps", warmup},
                     {"steps", steps},
                     {"steady_steps", steady},
                     {"solver", models::solver_kind_name(s.options.solver)},
                     {"guidance", s.options.guidance},
                     {"seed", a.seed},
                     {"threads_per_stage", 1},
                     {"sgemm_gflops_1_thread", sgemm1},
                     {"sgemm_gflops_concurrent", sgemm_n},
                     {"sgemm_gflops_concurrent_after", sgemm_n_after},
                     {"repeats", a.repeats},
                     {"sequential_seconds_each", seq_times},
                     {"actors_seconds_each", pf_times},
                     {"sequential_seconds", t_seq},
                     {"sequential_seconds_per_step", t_seq / steps},
                     {"sequential_cpu_seconds", seq_cpu},
                     {"simulation_seconds", t_sim},
                     {"actors_seconds", t_pf},
                     {"actors_seconds_per_step", t_pf / steps},
                     {"speedup", speedup},
                     {"pipeline_efficiency_bound", efficiency},
                     {"speedup_bound", bound},
                     {"relative_l2_vs_sequential", error},
                     {"equals_simulation", exact},
                     {"ring_seconds", timing.ring_seconds},
                     {"cores_used_sequential", cores_seq},
                     {"cores_used_actors", cores_pf},
                     {"cpu_seconds_actors_over_sequential", stage_cpu / seq_cpu},
                     {"setup_seconds", timing.setup_seconds},
                     {"bytes_per_step_per_boundary", measured},
                     {"analytic_bytes_per_step_per_boundary", st.analytic_step_bytes},
                     {"per_stage", per_stage}};
  const std::string json = a.json.value_or("out/bench_pipefusion_actors.json");
  if (!json.empty()) {
    if (auto w = write_json(json, out); !w) return report(w.error());
    std::printf("wrote %s\n", json.c_str());
  }
  return kExitOk;
}


}  // namespace

CLI::App* add_bench_pipefusion(CLI::App* bench, PipeFusionBenchArgs& a) {
  auto* sub = bench->add_subcommand("pipefusion", "PipeFusion: error vs sequential and bytes per stage boundary");
  sub->add_option("--model,-m", a.model, "zoo name or .safetensors path")->capture_default_str();
  sub->add_option("--preset", a.preset, "random-weight DiT instead: medium (D=512, 8 blocks, 1,024 tokens)");
  sub->add_option("--dim", a.dim, "random-weight DiT: model width");
  sub->add_option("--blocks", a.blocks, "random-weight DiT: blocks");
  sub->add_option("--frames,-f", a.frames, "latent frames; default: the model's (random: 8, medium: 16)");
  sub->add_option("--height", a.height, "random-weight DiT: pixels; default 32");
  sub->add_option("--width", a.width, "random-weight DiT: pixels; default 32");
  sub->add_option("--stages", a.stages, "pipeline stages N")->capture_default_str();
  sub->add_option("--warmups", a.warmups, "comma-separated warm-up steps W; default 0,1,2 (--actors: 1)");
  sub->add_option("--patches", a.patches, "comma-separated patch counts M; default 2,4,8 (--actors: 4)");
  sub->add_option("--split", a.split, "patches of whole frames or of rows: frames, rows")->capture_default_str();
  sub->add_option("--steps,-s", a.steps, "solver steps; default: the model's (random: 8)");
  sub->add_option("--guidance,-g", a.guidance, "guidance scale; default: the model's (random: 4)");
  sub->add_option("--seed", a.seed, "noise seed")->check(CLI::NonNegativeNumber)->capture_default_str();
  sub->add_flag("--actors", a.actors,
               "measure speed: sequential on one thread vs N stage actors of one thread each (first W, M)");
  sub->add_option("--repeats", a.repeats,
                  "with --actors: (a) and (b) alternate this many times, the fastest of each counts")
      ->capture_default_str();
  sub->add_flag("--adherence", a.adherence, "also score sequential vs W=1 M=4 videos against their prompts");
  sub->add_option("--prompts,-n", a.prompts, "prompts for --adherence")->capture_default_str();
  sub->add_option("--prompt-seed", a.prompt_seed, "scene i of --adherence is drawn from this + i")
      ->capture_default_str();
  sub->add_option("--batch", a.batch, "videos per sampler call in --adherence")->capture_default_str();
  sub->add_option("--json", a.json,
                  "where to write the JSON ('' = nowhere); default out/bench_pipefusion.json "
                  "(--actors: out/bench_pipefusion_actors.json)");
  sub->add_option("--threads,-t", a.threads, "compute threads (0 = all cores)")->capture_default_str();
  return sub;
}

int run_bench_pipefusion(const PipeFusionBenchArgs& a, const Config& cfg) {
  auto warmups = parse_ints(a.warmups.empty() ? (a.actors ? "1" : "0,1,2") : a.warmups, "--warmups", 0);
  if (!warmups) return report(warmups.error());
  auto patch_counts = parse_ints(a.patches.empty() ? (a.actors ? "4" : "2,4,8") : a.patches, "--patches", 1);
  if (!patch_counts) return report(patch_counts.error());
  auto split = pipeline::parse_patch_split(a.split);
  if (!split) return report(split.error());
  if (a.steps && *a.steps < 1) return report(usage("--steps must be positive"));
  if (a.adherence && (a.prompts < 1 || a.batch < 1)) return report(usage("--prompts and --batch must be positive"));
  if (auto st = set_threads(a.threads); !st) return report(st.error());
  torch::NoGradGuard no_grad;

  const bool random = !a.preset.empty() || a.dim || a.blocks || a.height || a.width;
  if (random && a.adherence) return report(usage("--adherence needs a zoo model, not a random-weight DiT"));
  if (a.actors && a.adherence) return report(usage("--actors and --adherence are separate runs"));
  if (a.repeats < 1) return report(usage("--repeats must be positive"));
  auto subject = random ? random_subject(a) : zoo_subject(a, cfg);
  if (!subject) return report(subject.error());
  Subject& s = *subject;
  s.options.seed = a.seed;
  const auto& dc = s.model.dit->config();
  if (auto stages = pipeline::stage_block_ranges(dc.num_layers, a.stages); !stages) return report(stages.error());
  pipeline::PipeFusionPlan plan;
  plan.stages = a.stages;
  plan.split = *split;
  if (a.actors) {
    plan.warmup_steps = warmups->front();
    plan.patches = patch_counts->front();
    if (auto st = pipeline::validate_plan(plan, dc, s.shape); !st) return report(st.error());
    return run_actors_bench(a, s, plan);
  }

  const double sgemm = bench::sgemm_gflops(1024, 3);
  pipeline::DiTDenoiser denoiser(s.model.dit, s.model.prediction);
  auto seq = pipeline::sample(denoiser, s.cond, s.shape, s.options);
  if (!seq) return report(seq.error());
  const int64_t tokens = (s.shape[2] / dc.patch[0]) * (s.shape[3] / dc.patch[1]) * (s.shape[4] / dc.patch[2]);
  std::printf("PipeFusion on %s: %lld frames %lldx%lld (%lld tokens, D=%lld, %lld blocks), %d stages, %s split\n",
              s.name.c_str(), static_cast<long long>(s.shape[2]), static_cast<long long>(s.shape[3]),
              static_cast<long long>(s.shape[4]), static_cast<long long>(tokens), static_cast<long long>(dc.dim),
              static_cast<long long>(dc.num_layers), a.stages, pipeline::patch_split_name(*split));
  std::printf("%d %s steps, guidance %g; sgemm %.1f GFLOP/s on %d threads; sequential %.2f s\n",
              s.options.steps, models::solver_kind_name(s.options.solver), s.options.guidance, sgemm,
              at::get_num_threads(), seq->stats.seconds);
  std::printf("%3s %3s %12s %16s %16s %12s %12s %8s\n", "W", "M", "rel L2 err", "B/step/boundary", "analytic",
              "B/patch", "ring B/step", "s");
  std::fflush(stdout);

  nlohmann::json rows = nlohmann::json::array();
  for (int w : *warmups) {
    for (int m : *patch_counts) {
      plan.warmup_steps = w;
      plan.patches = m;
      if (auto st = pipeline::validate_plan(plan, dc, s.shape); !st) {
        std::printf("%3d %3d  skipped: %s\n", w, m, st.error().message.c_str());
        continue;
      }
      pipeline::PipeFusionStats stats;
      auto pf = pipeline::sample_pipefusion(s.model.dit, s.model.prediction, s.cond, s.shape, s.options, plan, &stats);
      if (!pf) return report(pf.error());
      Row r;
      r.warmup = w;
      r.patches = m;
      r.error = relative_l2(pf->latent, seq->latent);
      for (int b = 0; b + 1 < stats.stages; ++b) r.measured += stats.boundary_bytes_per_step(b);
      if (stats.stages > 1) r.measured /= stats.stages - 1;
      r.analytic = stats.stages > 1 ? stats.analytic_step_bytes : 0;
      r.patch_bytes = *std::max_element(stats.analytic_patch_bytes.begin(), stats.analytic_patch_bytes.end());
      for (int64_t b : stats.ring_bytes) r.ring += static_cast<double>(b);
      r.ring /= static_cast<double>(stats.ring_bytes.size());
      r.seconds = stats.seconds;
      std::printf("%3d %3d %12.3e %16.0f %16lld %12lld %12.0f %8.2f\n", w, m, r.error, r.measured,
                  static_cast<long long>(r.analytic), static_cast<long long>(r.patch_bytes), r.ring, r.seconds);
      std::fflush(stdout);
      rows.push_back({{"warmup_steps", w},
                      {"patches", m},
                      {"relative_l2", r.error},
                      {"bytes_per_step_per_boundary", r.measured},
                      {"analytic_bytes_per_step_per_boundary", r.analytic},
                      {"analytic_bytes_per_patch", stats.analytic_patch_bytes},
                      {"ring_bytes_per_step", r.ring},
                      {"patch_passes", stats.patch_passes},
                      {"stage_runs", stats.stage_runs},
                      {"stale_kv_bytes", stats.stale_kv_bytes},
                      {"request_bytes", stats.request_bytes},
                      {"seconds", r.seconds}});
    }
  }

  nlohmann::json out{{"benchmark", "pipefusion"},
                     {"model", s.name},
                     {"shape", s.shape},
                     {"tokens", tokens},
                     {"dim", dc.dim},
                     {"blocks", dc.num_layers},
                     {"stages", a.stages},
                     {"split", pipeline::patch_split_name(*split)},
                     {"steps", s.options.steps},
                     {"solver", models::solver_kind_name(s.options.solver)},
                     {"guidance", s.options.guidance},
                     {"seed", a.seed},
                     {"threads", at::get_num_threads()},
                     {"sgemm_gflops", sgemm},
                     {"sequential_seconds", seq->stats.seconds},
                     {"rows", rows}};
  if (a.adherence) {
    auto adh = adherence(s, a, plan);
    if (!adh) return report(adh.error());
    out["adherence"] = *adh;
  }
  const std::string json = a.json.value_or("out/bench_pipefusion.json");
  if (!json.empty()) {
    if (auto st = write_json(json, out); !st) return report(st.error());
    std::printf("wrote %s\n", json.c_str());
  }
  return kExitOk;
}

}  // namespace reel::cli
