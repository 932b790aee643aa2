// reel world: the procedural shapes world's vocabulary and prompts.
#include <cstdio>

#include "cli/commands.hpp"
#include "models/shapes/grammar.hpp"
#include "models/shapes/world.hpp"

namespace reel::cli {

namespace {

struct WorldArgs {
  bool json = false;
  int n = 10;
  uint64_t seed = 0;
  int max_objects = 1;
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

}  // namespace

Command add_world(CLI::App& app, const Config&) {
  auto a = std::make_shared<WorldArgs>();
  auto* sub = app.add_subcommand("world", "the procedural shapes world the built-in models learn");
  sub->require_subcommand(1);
  auto* vocab = sub->add_subcommand("vocab", "print the vocabulary (by category with --json)");
  vocab->add_flag("--json", a->json, "JSON by category: shapes, colours, sizes, motions, backgrounds");
  auto* sample = sub->add_subcommand("sample", "print prompts drawn from the grammar, one a line");
  sample->add_option("--n", a->n, "how many prompts")->capture_default_str();
  sample->add_option("--seed", a->seed, "seed of the first prompt (prompt i uses seed + i)")->capture_default_str();
  sample->add_option("--objects", a->max_objects, "at most this many objects per prompt (1 or 2)")
      ->capture_default_str();
  return [a, vocab] { return vocab->parsed() ? run_vocab(*a) : run_sample(*a); };
}

}  // namespace reel::cli
