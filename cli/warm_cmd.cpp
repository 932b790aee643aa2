// reel warm: fills the approximate cache from a prompt log, most useful prompts first.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <optional>
#include <set>

#include "cachestore/prompt_parts.hpp"
#include "cli/cache_run.hpp"
#include "cli/commands.hpp"
#include "cli/long_job.hpp"
#include "cli/progress.hpp"
#include "cli/prompt_log.hpp"
#include "models/zoo.hpp"

namespace reel::cli {
namespace {

struct WarmArgs {
  std::string log;
  std::string format = "auto";
  int budget = 0;  // prompts generated at most; 0 = all
  std::string model;
  uint64_t seed = 0;
  std::optional<int> steps;  // default: the model's
  int threads = 0;
  bool quiet = false;
  CacheArgs cache;
};

struct Ranked {
  std::string prompt;
  int count = 0;
  int first_line = 0;
};

// Distinct prompts (exact text after trimming), most frequent first; among equally frequent
// prompts, those that bring an object or background phrase not yet covered come first, so a
// small budget spreads over as many parts as it can. Ties keep log order.
std::vector<Ranked> rank(const std::vector<LoggedRequest>& log) {
  std::map<std::string, Ranked> distinct;
  for (const auto& r : log) {
    auto& d = distinct[r.prompt];
    if (d.count++ == 0) {
      d.prompt = r.prompt;
      d.first_line = r.line;
    }
  }
  std::vector<Ranked> all;
  for (auto& [p, d] : distinct) all.push_back(d);
  std::sort(all.begin(), all.end(), [](const Ranked& a, const Ranked& b) {
    return a.count != b.count ? a.count > b.count : a.first_line < b.first_line;
  });
  std::vector<Ranked> out;
  std::set<std::string> covered;
  for (size_t begin = 0; begin < all.size();) {
    size_t end = begin;
    while (end < all.size() && all[end].count == all[begin].count) ++end;
    std::vector<Ranked> later;
    for (size_t i = begin; i < end; ++i) {
      auto parts = cachestore::split_prompt(all[i].prompt);
      std::vector<std::string> names = parts.objects;
      if (!parts.background.empty()) names.push_back("bg:" + parts.background);
      bool brings_new = names.empty();
      for (const auto& n : names) brings_new |= !covered.contains(n);
      if (brings_new) {
        covered.insert(names.begin(), names.end());
        out.push_back(all[i]);
      } else {
        later.push_back(all[i]);
      }
    }
    out.insert(out.end(), later.begin(), later.end());
    begin = end;
  }
  return out;
}

int run_warm(const WarmArgs& a, const Config& cfg) {
  if (a.log.empty()) return report(make_error(Errc::invalid_argument, "--log is required"));
  if (a.cache.path.empty()) {
    return report(make_error(Errc::invalid_argument, "no cache directory: give --cache DIR or set cache.path"));
  }
  if (a.budget < 0) return report(make_error(Errc::invalid_argument, "--budget must be >= 0"));
  if (a.steps && *a.steps < 2) return report(make_error(Errc::invalid_argument, "--steps must be at least 2"));
  auto format = parse_log_format(a.format, a.log);
  if (!format) return report(format.error());
  auto log = read_prompt_log(a.log, *format);
  if (!log) return report(log.error());
  if (auto st = set_threads(a.threads); !st) return report(st.error());
  auto model = models::open_model(a.model, cfg.zoo);
  if (!model) return report(model.error());
  auto weights = model_checksum(model->source);
  if (!weights) return report(weights.error());
  auto cache = open_cache(a.cache, &*model);
  if (!cache) return report(cache.error());

  std::vector<Ranked> ranked = rank(*log);
  std::vector<std::string> corpus;
  for (const auto& r : ranked) corpus.push_back(r.prompt);
  if ((*cache)->stats().store.entries == 0) {
    // An empty cache learns which words are common in this log before the first vector is stored
    // (an n-gram embedder; a text encoder has nothing to fit).
    if (auto st = (*cache)->fit_embedder(corpus); !st && st.error().code != Errc::unsupported) return report(st.error());
  }
  const size_t todo = a.budget > 0 ? std::min(ranked.size(), static_cast<size_t>(a.budget)) : ranked.size();
  std::fprintf(stderr, "reel: %zu requests, %zu distinct prompts; warming the %zu most useful into %s\n",
               log->size(), ranked.size(), todo, a.cache.path.c_str());

  CachedGenerator generator(std::move(*model), *weights);
  Progress progress("warming", "prompts", !a.quiet && Progress::stderr_is_terminal());
  int generated = 0, skipped = 0, failed = 0;
  std::string first_failure;
  const auto t0 = std::chrono::steady_clock::now();
  for (size_t i = 0; i < todo; ++i) {
    const auto& r = ranked[i];
    const Request request{r.prompt, a.seed, a.steps, {}};
    const auto key = generator.key(request, a.cache.tenant);
    if ((*cache)->contains(key, r.prompt)) {
      ++skipped;
    } else {
      auto run = generator.run(request, cache->get(), a.cache.tenant, /*lookup=*/false);
      if (!run) {
        if (first_failure.empty()) first_failure = "'" + r.prompt + "': " + run.error().message;
        ++failed;
      } else if (run->insert_error) {
        std::fprintf(stderr, "reel: warning: cache insert failed: %s\n", run->insert_error->message.c_str());
        ++failed;
      } else {
        ++generated;
      }
    }
    progress.update(static_cast<int>(i + 1), static_cast<int>(todo));
  }
  progress.finish();
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  auto st = (*cache)->stats();
  std::printf("reel: warmed %s: %d generated, %d already cached, %d failed in %.1f s; %llu entries, %.1f MB\n",
              a.cache.path.c_str(), generated, skipped, failed, wall,
              static_cast<unsigned long long>(st.store.entries), static_cast<double>(st.store.bytes) / 1e6);
  if (!first_failure.empty()) std::fprintf(stderr, "reel: first failure: %s\n", first_failure.c_str());
  return failed > 0 && generated == 0 && skipped == 0 ? kExitFailure : kExitOk;
}

}  // namespace

Command add_warm(CLI::App& app, const Config& cfg) {
  auto a = std::make_shared<WarmArgs>();
  a->model = cfg.model;
  a->seed = cfg.seed;
  a->threads = cfg.threads;
  a->cache = cache_args(cfg);
  auto* sub = app.add_subcommand("warm", "fill the approximate cache from a prompt log (resumable)");
  sub->add_option("--log", a->log, "prompt log: one prompt or JSON request a line, JSON lines, or CSV")->required();
  sub->add_option("--format", a->format, "txt, jsonl, csv, or auto (by extension)")->capture_default_str();
  sub->add_option("--budget", a->budget, "generate at most this many prompts, most useful first (0 = all)")
      ->capture_default_str();
  sub->add_option("--cache", a->cache.path, "cache directory; default: cache.path of the config")->envname("REEL_CACHE");
  sub->add_option("--model,-m", a->model, "zoo name or .safetensors path")->capture_default_str();
  sub->add_option("--seed", a->seed, "seed of every warmed generation")->check(CLI::NonNegativeNumber)->capture_default_str();
  sub->add_option("--steps,-s", a->steps, "solver steps (entries serve requests with the same steps); default: the model's");
  sub->add_option("--threads,-t", a->threads, "compute threads (0 = all cores)")->capture_default_str();
  sub->add_flag("--quiet,-q", a->quiet, "no progress bar");
  add_cache_options(sub, a->cache);
  return [a, &cfg] { return run_warm(*a, cfg); };
}

}  // namespace reel::cli
