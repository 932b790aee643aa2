// reel bench model: DiT forward speed against the machine's sgemm rate.
#include <cstdio>
#include <fstream>

#include "bench/model_bench.hpp"
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
  return [a] { return run_bench_model(*a); };
}

}  // namespace reel::cli
