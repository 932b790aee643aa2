// reel bench model: DiT forward speed against the machine's sgemm rate.
// reel bench long: long videos in FIFO and clips modes: peak memory and time per frame as the
// length grows, and prompt adherence late in the video.
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdlib>
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
#include "bench/serve_bench.hpp"
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
  if (auto st = set_threads(a.threads); !st) return report(st.error());
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
  int partitions = 1;  // FIFO modes: windows in the queue
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

std::vector<std::string> mode_args(const std::string& mode, int frames, int partitions) {
  const std::string n = std::to_string(partitions);
  if (mode == "fifo") return {"--mode", "fifo", "--partitions", n};
  if (mode == "fifo-nolookahead") return {"--mode", "fifo", "--no-lookahead", "--partitions", n};
  return {"--mode", "clips", "--clips", std::to_string(std::max(1, frames / 8)), "--context-frames", "2",
          "--global-frames", "0"};
}

// One mode's adherence and consistency over the quality prompts.
struct QualityTotals {
  std::vector<models::shapes::AdherenceTotals> windows;  // one per window start
  double inside = 0, across = 0;                         // SSIM sums of consecutive frames
  int inside_n = 0, across_n = 0;
  double seconds = 0;  // wall time of its generate runs
};

// Scores the 8-frame windows at `starts` (those inside the video) and the SSIM of consecutive
// frames, split into pairs across an 8-frame boundary (f % 8 == 0: the clip boundaries of the
// clips runs, whose clips are 8 frames) and pairs inside. Adds to `t`; returns the per-video JSON.
nlohmann::json score_long_video(const models::shapes::SceneSpec& scene, const std::vector<video::Frame>& frames,
                                const std::vector<int>& starts, QualityTotals& t) {
  nlohmann::json j = nlohmann::json::object();
  for (size_t w = 0; w < starts.size(); ++w) {
    if (starts[w] + 8 > static_cast<int>(frames.size())) continue;
    std::vector<uint8_t> rgb;
    for (int f = starts[w]; f < starts[w] + 8; ++f) rgb.insert(rgb.end(), frames[f].rgb.begin(), frames[f].rgb.end());
    auto score = models::shapes::score_clip(scene, rgb, 8, frames[0].height, frames[0].width);
    if (!score) continue;
    t.windows[w].add(*score);
    models::shapes::AdherenceTotals one;
    one.add(*score);
    j["windows"].push_back({{"first", starts[w]}, {"background", one.background_rate()},
                            {"colour", one.colour_rate()}, {"shape", one.shape_rate()}, {"motion", one.motion_rate()},
                            {"motion_axis", one.motion_axis_rate()}});
  }
  double inside = 0, across = 0;
  int inside_n = 0, across_n = 0;
  for (size_t f = 1; f < frames.size(); ++f) {
    auto tc = video::temporal_consistency({frames[f - 1], frames[f]});
    if (!tc) continue;
    if (f % 8 == 0) across += *tc, ++across_n;
    else inside += *tc, ++inside_n;
  }
  t.inside += inside, t.inside_n += inside_n, t.across += across, t.across_n += across_n;
  j["consistency_inside"] = inside_n ? inside / inside_n : 0.0;
  if (across_n) j["consistency_across_boundaries"] = across / across_n;
  return j;
}

// The adherence part of reel bench long: for each prompt (scenes drawn from the grammar with seeds
// seed, seed + 1, ...), an 8-frame video in standard mode (the reference: what the model does
// where it was trained) and a quality_frames video in each mode, all with the same seed and steps;
// background / colour / motion of the 8-frame windows at 0, 120 and 480 and the SSIM of
// consecutive frames inside 8-frame clips and across their boundaries. Prints a table; fills
// out["quality_reference"], out["quality"] and out["quality_videos"]; the JSON is rewritten after
// every prompt so that a long run that is stopped keeps what it measured.
Status long_quality(const LongArgs& a, const std::vector<std::string>& modes, const std::string& video,
                    const std::string& log, nlohmann::json& out) {
  const std::vector<int> starts = {0, 120, 480};
  const std::string threads = std::to_string(a.threads);
  std::vector<std::string> names{"standard-8"};  // the reference first
  names.insert(names.end(), modes.begin(), modes.end());
  std::vector<QualityTotals> totals(names.size());
  for (auto& t : totals) t.windows.resize(starts.size());
  // Background, colour, motion and motion up to its sign, in %. Objects bounce, so a window after
  // frame 0 may rightly show a "moving right" object moving left: the signed motion is judged at
  // [0,8) only, later windows by the axis (models::shapes::ObjectScore::motion_axis).
  auto rates = [](const models::shapes::AdherenceTotals& t) {
    return std::array<double, 4>{100 * t.background_rate(), 100 * t.colour_rate(), 100 * t.motion_rate(),
                                 100 * t.motion_axis_rate()};
  };
  // How far window `w` of a mode falls below the reference, in points: the largest over background,
  // colour and motion axis, and at [0,8) the signed motion too.
  auto drop = [&](const std::array<double, 4>& ref, const std::array<double, 4>& r, size_t w) {
    double worst = std::max({ref[0] - r[0], ref[1] - r[1], ref[3] - r[3]});
    if (starts[w] == 0) worst = std::max(worst, ref[2] - r[2]);
    return worst;
  };
  auto summarise = [&](int prompts) {
    out["quality_prompts"] = prompts;
    out["quality_frames"] = a.quality_frames;
    out["quality"] = nlohmann::json::array();
    const auto ref = rates(totals[0].windows[0]);
    for (size_t m = 0; m < names.size(); ++m) {
      const QualityTotals& t = totals[m];
      nlohmann::json q{{"mode", names[m]}, {"frames", m == 0 ? 8 : a.quality_frames}, {"wall_seconds", t.seconds},
                       {"consistency_inside", t.inside_n ? t.inside / t.inside_n : 0}};
      if (t.across_n) {
        q["consistency_across_boundaries"] = t.across / t.across_n;
        if (t.inside > 0) q["consistency_across_over_inside"] = (t.across / t.across_n) / (t.inside / t.inside_n);
      }
      double worst = -1e9;
      for (size_t w = 0; w < starts.size(); ++w) {
        if (t.windows[w].videos == 0) continue;
        const auto r = rates(t.windows[w]);
        worst = std::max(worst, drop(ref, r, w));
        q["windows"].push_back({{"first", starts[w]}, {"background", r[0] / 100}, {"colour", r[1] / 100},
                                {"shape", t.windows[w].shape_rate()}, {"motion", r[2] / 100},
                                {"motion_axis", r[3] / 100}, {"found", t.windows[w].found_rate()}});
      }
      if (m > 0) q["largest_drop_points"] = worst;  // vs the 8-frame reference, over windows (drop above)
      if (m == 0) out["quality_reference"] = q;
      else out["quality"].push_back(q);
    }
    if (!a.json.empty()) {
      std::ofstream f(a.json);
      f << out.dump(1) << "\n";
    }
  };

  std::printf("\nadherence over %d prompts, %d frames, %d steps (seeds %llu..):\n", a.quality_prompts,
              a.quality_frames, a.steps, static_cast<unsigned long long>(a.seed));
  std::fflush(stdout);
  for (int p = 0; p < a.quality_prompts; ++p) {
    auto scene = models::shapes::sample_scene(a.seed + static_cast<uint64_t>(p));
    const std::string prompt = models::shapes::prompt(scene);
    for (size_t m = 0; m < names.size(); ++m) {
      const bool reference = m == 0;
      const int frames = reference ? 8 : a.quality_frames;
      std::vector<std::string> args{"generate", prompt, "-q", "--model", a.model, "--frames", std::to_string(frames),
                                    "--steps", std::to_string(a.steps), "--threads", threads, "--upscale", "1",
                                    "--seed", std::to_string(a.seed + static_cast<uint64_t>(p)), "--out", video};
      if (!reference)
        for (auto& s : mode_args(names[m], frames, a.partitions)) args.push_back(s);
      auto r = run_reel(args, log);
      totals[m].seconds += r.seconds;
      if (r.code != 0) return make_error(Errc::internal, names[m] + " quality run failed: " + r.output);
      auto decoded = video::read_video(video);
      if (!decoded) return decoded.error();
      nlohmann::json j = score_long_video(scene, *decoded, reference ? std::vector<int>{0} : starts, totals[m]);
      j["prompt"] = prompt;
      j["seed"] = a.seed + static_cast<uint64_t>(p);
      j["mode"] = names[m];
      j["wall_seconds"] = r.seconds;
      out["quality_videos"].push_back(j);
    }
    summarise(p + 1);
    std::fprintf(stderr, "bench long: prompt %d of %d done (%s)\n", p + 1, a.quality_prompts, prompt.c_str());
  }

  // The table: per window background / colour / motion in %, the largest drop in points below the
  // 8-frame reference, and the SSIM of consecutive frames inside 8-frame clips and across them.
  std::printf("%-18s %7s", "mode", "frames");
  for (int s : starts) std::printf("  %-16s", ("[" + std::to_string(s) + "," + std::to_string(s + 8) + ")").c_str());
  std::printf(" %6s %7s %7s %7s\n", "drop", "inside", "across", "ratio");
  for (size_t m = 0; m < names.size(); ++m) {
    const QualityTotals& t = totals[m];
    std::printf("%-18s %7d", names[m].c_str(), m == 0 ? 8 : a.quality_frames);
    double worst = -1e9;
    const auto ref = rates(totals[0].windows[0]);
    for (size_t w = 0; w < starts.size(); ++w) {
      if (t.windows[w].videos == 0) {
        std::printf("  %-16s", "-");
        continue;
      }
      const auto r = rates(t.windows[w]);
      worst = std::max(worst, drop(ref, r, w));
      char cell[64];
      std::snprintf(cell, sizeof cell, "%.0f/%.0f/%.0f/%.0f", r[0], r[1], r[2], r[3]);
      std::printf("  %-16s", cell);
    }
    const double inside = t.inside_n ? t.inside / t.inside_n : 0;
    if (m == 0) std::printf(" %6s", "-");
    else std::printf(" %6.1f", worst);
    std::printf(" %7.3f", inside);
    if (t.across_n) std::printf(" %7.3f %7.3f\n", t.across / t.across_n, (t.across / t.across_n) / inside);
    else std::printf(" %7s %7s\n", "-", "-");
  }
  std::printf("(background/colour/motion/motion up to its sign %% per 8-frame window; drop: the largest, in points, "
              "below standard-8's [0,8), of background, colour and motion up to its sign, and at [0,8) of motion; "
              "objects bounce, so a later window may rightly show the reverse direction. SSIM of consecutive frames "
              "inside 8-frame clips, across their boundaries, across/inside)\n");
  return {};
}

int run_bench_long(const LongArgs& a, const Config& cfg) {
  std::vector<int> lengths;
  std::vector<std::string> modes;
  {
    std::stringstream ss(a.frames);
    std::string item;
    while (std::getline(ss, item, ',')) {
      char* end = nullptr;
      const long n = std::strtol(item.c_str(), &end, 10);
      if (item.empty() || *end != '\0' || n < 8 || n > 1000000)
        return report(make_error(Errc::invalid_argument, "--frames: '" + item + "' is not a length from 8 to 1000000"));
      lengths.push_back(static_cast<int>(n));
    }
    std::stringstream ms(a.modes);
    while (std::getline(ms, item, ',')) {
      if (item != "fifo" && item != "fifo-nolookahead" && item != "clips")
        return report(make_error(Errc::invalid_argument, "--modes: unknown mode '" + item + "'"));
      modes.push_back(item);
    }
  }
  for (int n : lengths)
    if (n < 8 || n % 8 != 0) return report(make_error(Errc::invalid_argument, "--frames: lengths must be multiples of 8"));
  if (a.partitions < 1 || a.partitions > 64)
    return report(make_error(Errc::invalid_argument, "--partitions must be 1 to 64, got " + std::to_string(a.partitions)));
  const auto dir = std::filesystem::temp_directory_path() / ("reel_bench_long_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string video = (dir / "v.mp4").string(), log = (dir / "log.txt").string();
  const std::string threads = std::to_string(a.threads);
  nlohmann::json out{{"model", a.model}, {"steps", a.steps}, {"partitions", a.partitions}, {"threads", a.threads}};
  const std::string prompt = "a large red circle moving right on a striped navy background";

  std::printf("%-18s %8s %14s %12s\n", "mode", "frames", "peak RSS MB", "s/frame");
  for (const auto& mode : modes) {
    for (int n : lengths) {
      std::vector<std::string> args{"generate", prompt, "-q", "--model", a.model, "--frames", std::to_string(n),
                                    "--steps", std::to_string(a.steps), "--threads", threads, "--upscale", "1",
                                    "--out", video};
      for (auto& m : mode_args(mode, n, a.partitions)) args.push_back(m);
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
    if (auto st = long_quality(a, modes, video, log, out); !st) {
      std::filesystem::remove_all(dir);
      return report(st.error());
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
  lng->add_option("--steps", l->steps, "solver steps (a multiple of the FIFO queue: 8 x partitions)")->capture_default_str();
  lng->add_option("--partitions", l->partitions, "FIFO modes: windows in the queue (generate --partitions)")
      ->capture_default_str();
  lng->add_option("--quality-frames", l->quality_frames, "video length for the adherence part (0 = skip)")
      ->capture_default_str();
  lng->add_option("--quality-prompts", l->quality_prompts,
                  "prompts for the adherence part (each also made as 8 frames in standard mode: the reference)")
      ->capture_default_str();
  lng->add_option("--seed", l->seed, "adherence part: prompt i is drawn from, and generated with, seed + i")
      ->check(CLI::NonNegativeNumber)->capture_default_str();
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
  auto sv = std::make_shared<bench::ServeBenchOptions>();
  sv->model = cfg.model;
  auto* serve = sub->add_subcommand("serve", "reel serve against reel generate: overhead, cancellation, kill -9 and restart");
  serve->add_option("--model,-m", sv->model, "zoo name")->capture_default_str();
  serve->add_option("--threads,-t", sv->threads, "compute threads of the server and of each generate run")
      ->check(CLI::Range(1, 256))->capture_default_str();
  serve->add_option("--repeats", sv->repeats, "timed runs of each job and path (median)")
      ->check(CLI::Range(1, 100))->capture_default_str();
  serve->add_option("--fifo-frames", sv->fifo_frames, "length of the long job")->check(CLI::Range(16, 100000))
      ->capture_default_str();
  serve->add_option("--steps", sv->steps, "the FIFO job's solver steps (0 = the model's)")->capture_default_str();
  serve->add_option("--standard-steps", sv->standard_steps, "the standard job's solver steps")
      ->check(CLI::Range(1, 10000))->capture_default_str();
  serve->add_option("--json", sv->json, "where to write the JSON ('' = nowhere)")->capture_default_str();
  auto co = std::make_shared<CoordinatorBenchArgs>();
  co->model = cfg.model;
  auto* coordinator = add_bench_coordinator(sub, *co);
  return [a, l, cb, pf, wb, co, sv, model, lng, cache, pipefusion, workers, coordinator, serve, &cfg] {
    if (serve->parsed()) {
      sv->reel = std::filesystem::read_symlink("/proc/self/exe").string();
      if (auto st = bench::run_serve_bench(*sv); !st) return report(st.error());
      return kExitOk;
    }
    if (cache->parsed()) return run_bench_cache(*cb, cfg);
    if (workers->parsed()) return run_bench_workers(*wb, cfg);
    if (coordinator->parsed()) return run_bench_coordinator(*co, cfg);
    if (pipefusion->parsed()) return run_bench_pipefusion(*pf, cfg);
    return model->parsed() ? run_bench_model(*a) : run_bench_long(*l, cfg);
  };
}

}  // namespace reel::cli
