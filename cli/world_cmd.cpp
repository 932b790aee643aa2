// reel world: the procedural shapes world's vocabulary and prompts.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "base/durable.hpp"
#include "cli/commands.hpp"
#include "models/shapes/grammar.hpp"
#include "models/shapes/trace.hpp"
#include "models/shapes/world.hpp"

namespace reel::cli {

namespace {

struct WorldArgs {
  bool json = false;
  int n = 10;
  uint64_t seed = 0;
  int max_objects = 1;
  double zipf_object = 1.0;
  double zipf_background = 1.0;
  std::string out;  // empty: standard output
};

int run_vocab(const WorldArgs& a) {
  if (a.json) {
    std::printf("%s\n", models::shapes::vocabulary_json().c_str());
    return kExitOk;
  }
  for (const auto& w : models::shapes::vocabulary_words()) std::printf("%s\n", w.c_str());
  return kExitOk;
}

int run_sample(const WorldArgs& a) {
  if (a.n < 0) return report(make_error(Errc::invalid_argument, "--n must be >= 0"));
  if (a.max_objects < 1 || a.max_objects > 2)
    return report(make_error(Errc::invalid_argument, "--objects must be 1 or 2"));
  models::shapes::SampleOptions opts;
  opts.max_objects = a.max_objects;
  for (int i = 0; i < a.n; ++i) {
    auto scene = models::shapes::sample_scene(a.seed + static_cast<uint64_t>(i), opts);
    std::printf("%s\n", models::shapes::prompt(scene).c_str());
  }
  return kExitOk;
}

// One prompt a line, to --out (written to a temporary and renamed) or standard output.
int run_trace(const WorldArgs& a) {
  auto trace = models::shapes::zipf_trace({.requests = a.n,
                                           .seed = a.seed,
                                           .zipf_object = a.zipf_object,
                                           .zipf_background = a.zipf_background,
                                           .max_objects = a.max_objects});
  if (!trace.ok()) return report(trace.error());
  std::string text;
  for (const auto& scene : *trace) text += models::shapes::prompt(scene) + "\n";
  if (a.out.empty()) {
    std::fwrite(text.data(), 1, text.size(), stdout);
    return kExitOk;
  }
  if (auto st = write_file_atomic(a.out, text); !st) return report(st.error());
  std::fprintf(stderr, "reel: wrote %d requests to %s\n", a.n, a.out.c_str());
  return kExitOk;
}

}  // namespace

Command add_world(CLI::App& app, const Config&) {
  auto a = std::make_shared<WorldArgs>();
  auto* sub = app.add_subcommand("world", "the procedural shapes world the built-in models learn");
  sub->require_subcommand(1);
  auto* vocab = sub->add_subcommand("vocab", "print the vocabulary (by category with --json)");
  vocab->add_flag("--json", a->json, "JSON by category: shapes, colours, sizes, motions, backgrounds");
  auto* sample = sub->add_subcommand("sample", "print prompts drawn from the grammar, one a line");
  sample->add_option("--n", a->n, "how many prompts")->capture_default_str();
  sample->add_option("--seed", a->seed, "seed of the first prompt (prompt i uses seed + i)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  sample->add_option("--objects", a->max_objects, "at most this many objects per prompt (1 or 2)")
      ->capture_default_str();
  auto* trace = sub->add_subcommand("trace", "write a request trace whose objects and backgrounds follow Zipf popularity");
  trace->add_option("--n", a->n, "how many requests")->capture_default_str();
  trace->add_option("--seed", a->seed, "seed of the popularity order and the draws")->check(CLI::NonNegativeNumber)->capture_default_str();
  trace->add_option("--zipf-object", a->zipf_object, "Zipf exponent of object popularity (0: uniform)")
      ->capture_default_str();
  trace->add_option("--zipf-background", a->zipf_background, "Zipf exponent of background popularity (0: uniform)")
      ->capture_default_str();
  trace->add_option("--objects", a->max_objects, "at most this many objects per request (1 or 2)")->capture_default_str();
  trace->add_option("--out", a->out, "file to write (default: standard output)");
  return [a, vocab, trace] {
    if (vocab->parsed()) return run_vocab(*a);
    if (trace->parsed()) return run_trace(*a);
    return run_sample(*a);
  };
}

}  // namespace reel::cli
