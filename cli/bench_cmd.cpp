// reel bench model: DiT forward speed against the machine's sgemm rate.
// reel bench long: long videos in FIFO and clips modes: peak memory and time per frame as the
// length grows, and prompt adherence late in the video.
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "models/shapes/grammar.hpp"
#include "models/shapes/score.hpp"
#include "video/metrics.hpp"
#include "video/mp4_reader.hpp"

#include "bench/model_bench.hpp"
#include "cli/cache_bench.hpp"
#include "cli/pipefusion_bench.hpp"
#include "cli/workers_bench.hpp"
#include "cli/coordinator_bench.hpp"
#include "cli/commands.hpp"

namespace reel::cli {

namespace {

struct BenchArgs {
  std::string json = "out/bench_model.json";
  int repeats = 5;
  int threads = 0;
};

int run_bench_model(const BenchArgs& a) {
  if (a.repeats < 1) return report(make_error(Errc::invalid_argument, "--repeats must be at least 1"));
  set_threads(a.threads);
  auto result = bench::run_model_bench(a.repeats);
  std::printf("%s", bench::to_table(result).c_str());
  if (!a.json.empty()) {
    std::ofstream out(a.json);
    if (!out) return report(make_error(Errc::invalid_argument, "cannot write " + a.json));
    out << bench::to_json(result) << "\n";
    std::printf("wrote %s\n", a.json.c_str());
  }
  return kExitOk;
}

struct LongArgs {
  std::string model;
  std::string frames = "64,256,1024";
  std::string modes = "fifo,fifo-nolookahead,clips";
  int steps = 8;
  int threads = 0;
  int quality_frames = 512;
  int quality_prompts = 4;
  uint64_t seed = 1000;
  std::string json = "out/bench_long.json";
};

struct ChildRun {
  int code = -1;
  double seconds = 0;
  double peak_rss_mb = 0;
  std::string output;
};

// Runs `reel generate ...` as a child process: its own peak RSS is the measurement.
ChildRun run_reel(const std::vector<std::string>& args, const std::string& log) {
  ChildRun r;
  const auto t0 = std::chrono::steady_clock::now();
  std::fflush(nullptr);  // else the child inherits unwritten output and writes it again
  const pid_t pid = fork();
  if (pid == 0) {
    std::vector<char*> argv;
    std::string self = "/proc/self/exe";
    argv.push_back(self.data());
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    if (std::freopen(log.c_str(), "w", stdout) == nullptr) _exit(126);
    dup2(fileno(stdout), fileno(stderr));
    execv("/proc/self/exe", argv.data());
    _exit(127);
  }
  int status = 0;
  struct rusage usage {};
  wait4(pid, &status, 0, &usage);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.peak_rss_mb = static_cast<double>(usage.ru_maxrss) / 1024.0;
  std::ifstream in(log);
  std::ostringstream os;
  os << in.rdbuf();
  r.output = os.str();
  return r;
}

// The "N.NNN s/frame" a generate run prints (model time per frame, start-up excluded).
double seconds_per_frame(const std::string& output) {
  const auto at = output.rfind(" s/frame");
  if (at == std::string::npos) return 0;
  const auto from = output.rfind(' ', at - 1);
  return std::atof(output.substr(from + 1, at - from - 1).c_str());
}

std::vector<std::string> mode_args(const std::string& mode, int frames) {
  if (mode == "fifo") return {"--mode", "fifo"};
  if (mode == "fifo-nolookahead") return {"--mode", "fifo", "--no-lookahead"};
  return {"--mode", "clips", "--clips", std::to_string(std::max(1, frames / 8)), "--context-frames", "2",
          "--global-frames", "0"};
}

int run_bench_long(const LongArgs& a, const Config& cfg) {
  std::vector<int> lengths;
  std::vector<std::string> modes;
  {
    std::stringstream ss(a.frames);
    std::string item;
    while (std::getline(ss, item, ',')) lengths.push_back(std::atoi(item.c_str()));
    std::stringstream ms(a.modes);
    while (std::getline(ms, item, ',')) {
      if (item != "fifo" && item != "fifo-nolookahead" && item != "clips")
        return report(make_error(Errc::invalid_argument, "--modes: unknown mode '" + item + "'"));
      modes.push_back(item);
    }
  }
  for (int n : lengths)
    if (n < 8 || n % 8 != 0) return report(make_error(Errc::invalid_argument, "--frames: lengths must be multiples of 8"));
  const auto dir = std::filesystem::temp_directory_path() / ("reel_bench_long_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string video = (dir / "v.mp4").string(), log = (dir / "log.txt").string();
  const std::string threads = std::to_string(a.threads);
  nlohmann::json out{{"model", a.model}, {"steps", a.steps}, {"threads", a.threads}};
  const std::string prompt = "a large red circle moving right on a striped navy background";

  std::printf("%-18s %8s %14s %12s\n", "mode", "frames", "peak RSS MB", "s/frame");
  for (const auto& mode : modes) {
    for (int n : lengths) {
      std::vector<std::string> args{"generate", prompt, "-q", "--model", a.model, "--frames", std::to_string(n),
                                    "--steps", std::to_string(a.steps), "--threads", threads, "--upscale", "1",
                                    "--out", video};
      for (auto& m : mode_args(mode, n)) args.push_back(m);
      auto r = run_reel(args, log);
      if (r.code != 0) {
        std::filesystem::remove_all(dir);
        return report(make_error(Errc::internal, mode + " at " + std::to_string(n) + " frames failed: " + r.output));
      }
      const double spf = seconds_per_frame(r.output);
      std::printf("%-18s %8d %14.1f %12.3f\n", mode.c_str(), n, r.peak_rss_mb, spf);
      std::fflush(stdout);
      out["memory"].push_back({{"mode", mode}, {"frames", n}, {"peak_rss_mb", r.peak_rss_mb},
                               {"seconds_per_frame", spf}, {"wall_seconds", r.seconds}});
    }
  }

  if (a.quality_frames > 0 && a.quality_prompts > 0) {
    std::printf("\nadherence over %d prompts of %d frames (background / colour / motion, per window):\n",
                a.quality_prompts, a.quality_frames);
    const std::vector<int> starts = {0, 120, 480};
    for (const auto& mode : modes) {
      std::vector<models::shapes::AdherenceTotals> totals(starts.size());
      double inside = 0, across = 0;
      int inside_n = 0, across_n = 0;
      for (int p = 0; p < a.quality_prompts; ++p) {
        auto scene = models::shapes::sample_scene(a.seed + static_cast<uint64_t>(p));
        std::vector<std::string> args{"generate", models::shapes::prompt(scene), "-q", "--model", a.model,
                                      "--frames", std::to_string(a.quality_frames), "--steps", std::to_string(a.steps),
                                      "--threads", threads, "--upscale", "1", "--seed", std::to_string(a.seed + p),
                                      "--out", video};
        for (auto& m : mode_args(mode, a.quality_frames)) args.push_back(m);
        auto r = run_reel(args, log);
        if (r.code != 0) return report(make_error(Errc::internal, mode + " quality run failed: " + r.output));
        auto frames = video::read_video(video);
        if (!frames) return report(frames.error());
        for (size_t w = 0; w < starts.size(); ++w) {
          if (starts[w] + 8 > static_cast<int>(frames->size())) continue;
          std::vector<uint8_t> rgb;
          for (int f = starts[w]; f < starts[w] + 8; ++f) rgb.insert(rgb.end(), (*frames)[f].rgb.begin(), (*frames)[f].rgb.end());
          auto score = models::shapes::score_clip(scene, rgb, 8, (*frames)[0].height, (*frames)[0].width);
          if (score) totals[w].add(*score);
        }
        // Consistency between consecutive frames: across 8-frame clip boundaries and inside clips.
        for (size_t f = 1; f < frames->size(); ++f) {
          auto tc = video::temporal_consistency({(*frames)[f - 1], (*frames)[f]});
          if (!tc) continue;
          if (f % 8 == 0) across += *tc, ++across_n;
          else inside += *tc, ++inside_n;
        }
      }
      nlohmann::json q{{"mode", mode}, {"consistency_inside", inside_n ? inside / inside_n : 0},
                       {"consistency_across_boundaries", across_n ? across / across_n : 0}};
      std::printf("%-18s", mode.c_str());
      for (size_t w = 0; w < starts.size(); ++w) {
        if (totals[w].videos == 0) continue;
        std::printf("  [%d,%d): %.0f/%.0f/%.0f%%", starts[w], starts[w] + 8, 100 * totals[w].background_rate(),
                    100 * totals[w].colour_rate(), 100 * totals[w].motion_rate());
        q["windows"].push_back({{"first", starts[w]}, {"background", totals[w].background_rate()},
                                {"colour", totals[w].colour_rate()}, {"shape", totals[w].shape_rate()},
                                {"motion", totals[w].motion_rate()}});
      }
      std::printf("  consistency inside %.3f, across 8-frame boundaries %.3f\n", q["consistency_inside"].get<double>(),
                  q["consistency_across_boundaries"].get<double>());
      out["quality"].push_back(q);
    }
  }
  std::filesystem::remove_all(dir);
  if (!a.json.empty()) {
    std::ofstream f(a.json);
    if (!f) return report(make_error(Errc::invalid_argument, "cannot write " + a.json));
    f << out.dump(1) << "\n";
    std::printf("wrote %s\n", a.json.c_str());
  }
  return kExitOk;
}

}  // namespace

Command add_bench(CLI::App& app, const Config& cfg) {
  auto a = std::make_shared<BenchArgs>();
  a->threads = cfg.threads;
  auto* sub = app.add_subcommand("bench", "benchmarks that print a table and write JSON");
  sub->require_subcommand(1);
  auto* model = sub->add_subcommand("model", "DiT forward time and GFLOP/s (tiny and medium) beside sgemm GFLOP/s");
  model->add_option("--json", a->json, "where to write the JSON ('' = nowhere)")->capture_default_str();
  model->add_option("--repeats", a->repeats, "timed forwards per config")->capture_default_str();
  model->add_option("--threads,-t", a->threads, "compute threads (0 = all cores)")
      ->envname("REEL_THREADS")->capture_default_str();
  auto l = std::make_shared<LongArgs>();
  l->model = cfg.model;
  l->threads = cfg.threads;
  auto* lng = sub->add_subcommand("long", "long videos: peak RSS and s/frame by length (FIFO, clips), late adherence");
  lng->add_option("--model,-m", l->model, "zoo name or .safetensors path")->capture_default_str();
  lng->add_option("--frames", l->frames, "comma-separated lengths (multiples of 8)")->capture_default_str();
  lng->add_option("--modes", l->modes, "comma-separated: fifo, fifo-nolookahead, clips")->capture_default_str();
  lng->add_option("--steps", l->steps, "solver steps (a multiple of the FIFO queue)")->capture_default_str();
  lng->add_option("--quality-frames", l->quality_frames, "video length for the adherence part (0 = skip)")
      ->capture_default_str();
  lng->add_option("--quality-prompts", l->quality_prompts, "prompts for the adherence part")->capture_default_str();
  lng->add_option("--json", l->json, "where to write the JSON ('' = nowhere)")->capture_default_str();
  lng->add_option("--threads,-t", l->threads, "compute threads per run (0 = all cores)")->capture_default_str();
  auto cb = std::make_shared<CacheBenchArgs>();
  cb->model = cfg.model;
  cb->threads = cfg.threads;
  auto* cache = add_bench_cache(sub, *cb);
  auto pf = std::make_shared<PipeFusionBenchArgs>();
  pf->model = cfg.model;
  pf->threads = cfg.threads;
  auto* pipefusion = add_bench_pipefusion(sub, *pf);
  auto wb = std::make_shared<WorkersBenchArgs>();
  wb->model = cfg.model;
  auto* workers = add_bench_workers(sub, *wb);
  auto co = std::make_shared<CoordinatorBenchArgs>();
  co->model = cfg.model;
  auto* coordinator = add_bench_coordinator(sub, *co);
  return [a, l, cb, pf, wb, co, model, lng, cache, pipefusion, workers, coordinator, &cfg] {
    if (cache->parsed()) return run_bench_cache(*cb, cfg);
    if (workers->parsed()) return run_bench_workers(*wb, cfg);
    if (coordinator->parsed()) return run_bench_coordinator(*co, cfg);
    if (pipefusion->parsed()) return run_bench_pipefusion(*pf, cfg);
    return model->parsed() ? run_bench_model(*a) : run_bench_long(*l, cfg);
  };
}

}  // namespace reel::cli
