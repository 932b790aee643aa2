#include "cli/cache_bench.hpp"

#include "base/durable.hpp"

#include <nlohmann/json.hpp>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include "bench/model_bench.hpp"
#include "cli/cache_run.hpp"
#include "cli/frames.hpp"
#include "codecs/tensor.hpp"
#include "video/metrics.hpp"
#include "cli/commands.hpp"
#include "cli/long_job.hpp"
#include "cli/progress.hpp"
#include "cli/prompt_log.hpp"
#include "cachestore/prompt_parts.hpp"
#include "models/shapes/grammar.hpp"
#include "models/shapes/world.hpp"
#include "models/shapes/trace.hpp"
#include "models/zoo.hpp"

namespace reel::cli {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

struct PassConfig {
  std::string name;
  bool cache = true;
  bool decoupled = false;
  bool compress = false;
};

Expected<std::vector<PassConfig>> parse_configs(const std::string& list) {
  std::vector<PassConfig> out;
  std::stringstream ss(list);
  std::string name;
  while (std::getline(ss, name, ',')) {
    if (name == "none") out.push_back({name, false, false, false});
    else if (name == "whole") out.push_back({name, true, false, false});
    else if (name == "decoupled") out.push_back({name, true, true, false});
    else if (name == "compressed") out.push_back({name, true, true, true});
    else if (name == "whole-compressed") out.push_back({name, true, false, true});
    else
      return make_error(Errc::invalid_argument, "--configs: unknown configuration '" + name +
                                                    "' (none, whole, decoupled, compressed, whole-compressed)");
  }
  if (out.empty()) return make_error(Errc::invalid_argument, "--configs is empty");
  return out;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(std::clamp(p * static_cast<double>(v.size() - 1) + 0.5, 0.0, double(v.size() - 1)));
  return v[i];
}

struct RequestResult {
  bool skipped = false;  // the reference pass runs only the requests some cache pass hit
  std::string hit;  // "", "whole", "composed"
  int start_step = 0;
  int steps = 0;
  double lookup_ms = 0;
  std::optional<double> adherence;
};

struct PassResult {
  PassConfig config;
  std::vector<RequestResult> requests;
  double seconds = 0;
  cachestore::CacheStats stats;
};

nlohmann::json summary(const PassResult& p, const PassResult* none, const PassResult* whole) {
  int whole_hits = 0, composed_hits = 0;
  int64_t steps_total = 0, steps_skipped = 0;
  std::vector<double> lookups;
  double adh_sum = 0, adh_hit_sum = 0, adh_hit_base = 0;
  int adh_n = 0, adh_hit_n = 0, adh_hit_paired = 0;
  size_t ran = 0;
  for (size_t i = 0; i < p.requests.size(); ++i) {
    const auto& r = p.requests[i];
    if (r.skipped) continue;
    ++ran;
    whole_hits += r.hit == "whole";
    composed_hits += r.hit == "composed";
    steps_total += r.steps;
    steps_skipped += r.start_step;
    if (p.config.cache) lookups.push_back(r.lookup_ms);
    if (r.adherence) {
      adh_sum += *r.adherence;
      ++adh_n;
      if (!r.hit.empty()) {
        adh_hit_sum += *r.adherence;
        ++adh_hit_n;
        if (none != nullptr && i < none->requests.size() && !none->requests[i].skipped &&
            none->requests[i].adherence) {
          adh_hit_base += *none->requests[i].adherence;
          ++adh_hit_paired;
        }
      }
    }
  }
  const double n = static_cast<double>(std::max<size_t>(1, ran));
  nlohmann::json j;
  j["config"] = p.config.name;
  j["requests"] = ran;
  j["whole_hits"] = whole_hits;
  j["composed_hits"] = composed_hits;
  j["hit_rate"] = (whole_hits + composed_hits) / n;
  j["compute_saved"] = steps_total > 0 ? double(steps_skipped) / double(steps_total) : 0.0;
  j["bytes_stored"] = p.stats.store.bytes;
  j["entries"] = p.stats.store.entries;
  j["evictions"] = p.stats.store.evictions;
  j["lookup_p50_ms"] = percentile(lookups, 0.5);
  j["lookup_p99_ms"] = percentile(lookups, 0.99);
  j["seconds"] = p.seconds;
  j["throughput_rps"] = static_cast<double>(ran) / std::max(1e-9, p.seconds);
  if (whole != nullptr) j["throughput_vs_whole"] = whole->seconds / std::max(1e-9, p.seconds);
  const bool full_reference = none != nullptr && std::none_of(none->requests.begin(), none->requests.end(),
                                                              [](const RequestResult& r) { return r.skipped; });
  if (full_reference) j["throughput_vs_none"] = none->seconds / std::max(1e-9, p.seconds);
  j["adherence"] = adh_n > 0 ? adh_sum / adh_n : 0.0;
  j["adherence_at_hits"] = adh_hit_n > 0 ? adh_hit_sum / adh_hit_n : 0.0;
  if (adh_hit_paired > 0) j["adherence_drop_at_hits"] = (adh_hit_base - adh_hit_sum) / adh_hit_paired;
  j["scored_requests"] = adh_n;
  return j;
}

Status write_json(const std::string& path, const nlohmann::json& j) {
  if (path.empty()) return {};
  std::error_code ec;
  if (auto dir = fs::path(path).parent_path(); !dir.empty()) fs::create_directories(dir, ec);
  return write_file_atomic(path, j.dump(2) + "\n");
}

// Lookup latency at `n` entries: whole entries of a small latent under distinct two-object
// prompts, then lookups of stored and unseen prompts.
int run_synthetic(const CacheBenchArgs& a, const fs::path& dir) {
  CacheArgs ca;
  ca.path = (dir / "synthetic").string();
  ca.budget_mb = 1e6;
  ca.decoupled = false;
  ca.index_save_every = 0;  // a throw-away cache: saved once, at close
  auto cache = open_cache(ca);
  if (!cache) return report(cache.error());
  cachestore::CompatKey key{.model = "synthetic", .weights_hash = "0", .scheduler = "unipc", .steps = 20,
                            .shift = 3, .height = 8, .width = 8, .frames = 2, .guidance = 4, .prediction = "sample"};
  const auto objects = models::shapes::all_objects();
  auto prompt_of = [&](uint64_t i) {
    models::shapes::SceneSpec scene;
    scene.background = models::shapes::kBackgrounds[i % 7];
    scene.objects.push_back(objects[(i / 7) % objects.size()]);
    uint64_t j = i / (7 * objects.size());
    if (j > 0) scene.objects.push_back(objects[(j * 37) % objects.size()]);
    return models::shapes::prompt(scene);
  };
  std::map<int, cachestore::Latent> latents;
  latents[8] = cachestore::Latent{{1, 4, 2, 8, 8}, std::vector<float>(512, 0.5F)};
  Progress progress("inserting", "entries", !a.quiet && Progress::stderr_is_terminal());
  const auto t0 = Clock::now();
  for (int i = 0; i < a.synthetic; ++i) {
    latents[8].values[static_cast<size_t>(i) % 512] = static_cast<float>(i % 97) / 97.0F;
    if (auto st = (*cache)->insert(key, prompt_of(static_cast<uint64_t>(i)), latents); !st) return report(st.error());
    if (i % 100 == 0) progress.update(i, a.synthetic);
  }
  progress.finish();
  const double insert_s = std::chrono::duration<double>(Clock::now() - t0).count();
  std::vector<double> lat;
  int hits = 0;
  for (int q = 0; q < 2000; ++q) {
    // Even queries were stored; odd ones are unseen prompts near stored ones.
    uint64_t i = (static_cast<uint64_t>(q) * 7919) % static_cast<uint64_t>(a.synthetic);
    std::string prompt = prompt_of(i);
    if (q % 2 == 1) prompt += " slowly";
    const auto tq = Clock::now();
    auto r = (*cache)->lookup(key, prompt);
    lat.push_back(std::chrono::duration<double, std::milli>(Clock::now() - tq).count());
    if (!r) return report(r.error());
    hits += r->has_value();
  }
  nlohmann::json j{{"entries", a.synthetic},
                   {"insert_seconds", insert_s},
                   {"lookups", lat.size()},
                   {"hits", hits},
                   {"lookup_p50_ms", percentile(lat, 0.5)},
                   {"lookup_p99_ms", percentile(lat, 0.99)}};
  std::printf("entries  insert s  lookups  hits  p50 ms  p99 ms\n");
  std::printf("%7d  %8.1f  %7zu  %4d  %6.3f  %6.3f\n", a.synthetic, insert_s, lat.size(), hits,
              percentile(lat, 0.5), percentile(lat, 0.99));
  if (auto st = write_json(a.json, j); !st) return report(st.error());
  return kExitOk;
}

// The steps the cache stores by default (20%, 40% and 60% of the schedule): where calibration
// and compression measure a start.
std::vector<int> start_steps(int steps) {
  return {static_cast<int>(std::lround(0.2 * steps)), static_cast<int>(std::lround(0.4 * steps)),
          static_cast<int>(std::lround(0.6 * steps))};
}

// What starting from a related prompt's latent costs in adherence, by what differs and by the
// start step: the data the similarity -> start step table is set from.
int run_calibrate(const CacheBenchArgs& a, CachedGenerator& gen, const cachestore::Embedder& embedder) {
  namespace sh = models::shapes;
  const int steps = gen.model().defaults.steps;
  const std::vector<int> ks = start_steps(steps);
  const std::vector<std::string> changes{"identical", "background", "colour", "shape", "size", "motion", "composed"};
  struct Row {
    double whole_sim = 0, object_sim = 0, background_sim = 0, scratch = 0;
    std::vector<double> from_k;
    int n = 0;
  };
  std::map<std::string, Row> rows;
  for (const auto& c : changes) rows[c].from_k.assign(ks.size(), 0.0);
  auto sim = [&](const std::string& x, const std::string& y) {
    auto vx = embedder.embed(x), vy = embedder.embed(y);
    double d = 0;
    for (size_t i = 0; i < vx.size(); ++i) d += double(vx[i]) * vy[i];
    return d;
  };
  auto score = [&](const std::string& prompt, const torch::Tensor& latent) -> Expected<double> {
    auto s = gen.adherence(prompt, latent);
    if (!s) return s.error();
    return s->value_or(0.0);
  };
  Progress progress("calibrating", "scenes", !a.quiet && Progress::stderr_is_terminal());
  struct Base {
    sh::SceneSpec scene;
    std::string prompt;
    std::map<int, torch::Tensor> captured;
    torch::Tensor final_latent;
  };
  std::vector<Base> bases;
  for (int i = 0; i < a.calibrate; ++i) {
    Base b;
    b.scene = sh::sample_scene(a.seed + 101 * static_cast<uint64_t>(i));
    b.prompt = sh::prompt(b.scene);
    auto r = gen.sample(Request{b.prompt, a.seed + static_cast<uint64_t>(i), {}, {}}, {}, 0, ks, &b.captured);
    if (!r) return report(r.error());
    b.final_latent = r->latent;
    bases.push_back(std::move(b));
  }
  for (int i = 0; i < a.calibrate; ++i) {
    const Base& base = bases[static_cast<size_t>(i)];
    const uint64_t seed = a.seed + static_cast<uint64_t>(i);
    for (const auto& change : changes) {
      sh::SceneSpec v = base.scene;
      auto& o = v.objects[0];
      const uint64_t pick = seed * 31 + change.size();
      auto other = [&](auto list, auto current) {
        auto x = list[pick % list.size()];
        return x == current ? list[(pick + 1) % list.size()] : x;
      };
      if (change == "background") v.background = other(sh::kBackgrounds, v.background);
      if (change == "colour") o.colour = other(sh::kColours, o.colour);
      if (change == "shape") o.shape = other(sh::kShapes, o.shape);
      if (change == "size") o.size = other(sh::kSizes, o.size);
      if (change == "motion") o.motion = other(sh::kMotions, o.motion);
      const Base& next = bases[static_cast<size_t>((i + 1) % a.calibrate)];
      if (change == "composed") v = sh::SceneSpec{base.scene.objects, next.scene.background};
      const std::string prompt = sh::prompt(v);
      const auto parts = cachestore::split_prompt(prompt);
      const auto base_parts = cachestore::split_prompt(base.prompt);
      Row& row = rows[change];
      row.whole_sim += sim(prompt, base.prompt);
      row.object_sim += sim(parts.objects.at(0), base_parts.objects.at(0));
      row.background_sim +=
          change == "composed" ? sim(parts.background, cachestore::split_prompt(next.prompt).background)
                               : sim(parts.background, base_parts.background);
      // From scratch with the same noise (identical: another seed, so the start is not the answer).
      Request req{prompt, change == "identical" ? seed + 7919 : seed, {}, {}};
      auto scratch = gen.sample(req, {}, 0, {}, nullptr);
      if (!scratch) return report(scratch.error());
      auto s0 = score(prompt, scratch->latent);
      if (!s0) return report(s0.error());
      row.scratch += *s0;
      std::vector<uint8_t> mask, next_mask;
      std::map<int, torch::Tensor> next_captured;
      if (change == "composed") {
        mask = gen.mask(base.prompt, base.final_latent);
        next_mask = gen.mask(next.prompt, next.final_latent);
      }
      for (size_t k = 0; k < ks.size(); ++k) {
        torch::Tensor start = base.captured.at(ks[k]);
        if (change == "composed") {
          if (mask.empty() || next_mask.empty()) {
            start = torch::Tensor();
          } else {
            auto plate = cachestore::background_plate(to_latent(next.captured.at(ks[k])), next_mask);
            auto mixed = cachestore::blend(plate, cachestore::object_layer(to_latent(start), mask), mask);
            start = to_tensor(mixed);
          }
        }
        double s = *s0;
        if (start.defined()) {
          auto from = gen.sample(req, start, ks[k], {}, nullptr);
          if (!from) return report(from.error());
          auto sk = score(prompt, from->latent);
          if (!sk) return report(sk.error());
          s = *sk;
        }
        row.from_k[k] += s;
      }
      ++row.n;
    }
    progress.update(i + 1, a.calibrate);
  }
  progress.finish();
  nlohmann::json out;
  out["scenes"] = a.calibrate;
  out["steps"] = steps;
  out["start_steps"] = ks;
  std::printf("%-11s %6s %6s %6s %8s", "change", "sim", "obj", "bg", "scratch");
  for (int k : ks) std::printf("   K=%-2d drop", k);
  std::printf("\n");
  for (const auto& change : changes) {
    const Row& r = rows[change];
    const double n = std::max(1, r.n);
    nlohmann::json j{{"change", change},
                     {"similarity", r.whole_sim / n},
                     {"object_similarity", r.object_sim / n},
                     {"background_similarity", r.background_sim / n},
                     {"adherence_scratch", r.scratch / n}};
    std::printf("%-11s %6.3f %6.3f %6.3f %7.1f%%", change.c_str(), r.whole_sim / n, r.object_sim / n,
                r.background_sim / n, 100 * r.scratch / n);
    for (size_t k = 0; k < ks.size(); ++k) {
      j["adherence_from_k"].push_back(r.from_k[k] / n);
      std::printf(" %5.1f%% %+5.1f", 100 * r.from_k[k] / n, 100 * (r.scratch - r.from_k[k]) / n);
    }
    std::printf("\n");
    out["rows"].push_back(j);
  }
  if (auto st = write_json(a.json, out); !st) return report(st.error());
  return kExitOk;
}

// What compression costs: the size of compressed entries against float32, and the PSNR of videos
// started from a compressed entry against videos started from the exact one.
int run_compression(const CacheBenchArgs& a, CachedGenerator& gen) {
  namespace sh = models::shapes;
  const int steps = gen.model().defaults.steps;
  const std::vector<int> ks = start_steps(steps);
  struct Codec {
    std::string name;
    codecs::EncodeOptions options;
    double bytes = 0, f32_bytes = 0;
    std::vector<double> psnr_sum;
    int n = 0;
  };
  std::vector<Codec> codecs_list{
      {"int8", {.quant = codecs::Quant::int8_per_channel}},
      {"int8+zstd", {.quant = codecs::Quant::int8_per_channel, .zstd_level = 3}},
      {"int8+delta+zstd", {.quant = codecs::Quant::int8_per_channel, .zstd_level = 3, .frame_delta = true}},
      {"fp16+zstd", {.quant = codecs::Quant::fp16, .zstd_level = 3}},
      {"int6+zstd", {.quant = codecs::Quant::int8_per_channel, .zstd_level = 9, .int8_bits = 6}},
      {"int5+zstd", {.quant = codecs::Quant::int8_per_channel, .zstd_level = 9, .int8_bits = 5}},
      {"int4+zstd", {.quant = codecs::Quant::int8_per_channel, .zstd_level = 9, .int8_bits = 4}},
  };
  for (auto& c : codecs_list) c.psnr_sum.assign(ks.size(), 0.0);
  auto frames_of = [&](const torch::Tensor& latent) -> Expected<std::vector<video::Frame>> {
    auto pixels = gen.model().decoder->decode(latent);  // [1, F, H, W, 3]
    if (!pixels) return pixels.error();
    return to_frames((*pixels)[0]);
  };
  Progress progress("compression", "scenes", !a.quiet && Progress::stderr_is_terminal());
  for (int i = 0; i < a.compression; ++i) {
    const auto scene = sh::sample_scene(a.seed + 101 * static_cast<uint64_t>(i));
    Request req{sh::prompt(scene), a.seed + static_cast<uint64_t>(i), {}, {}};
    std::map<int, torch::Tensor> captured;
    auto base = gen.sample(req, {}, 0, ks, &captured);
    if (!base) return report(base.error());
    for (size_t k = 0; k < ks.size(); ++k) {
      auto exact = gen.sample(req, captured.at(ks[k]), ks[k], {}, nullptr);
      if (!exact) return report(exact.error());
      auto exact_frames = frames_of(exact->latent);
      if (!exact_frames) return report(exact_frames.error());
      const torch::Tensor x = captured.at(ks[k]).contiguous();
      std::span<const float> values(x.data_ptr<float>(), static_cast<size_t>(x.numel()));
      for (auto& c : codecs_list) {
        auto encoded = codecs::encode(values, x.sizes().vec(), c.options);
        if (!encoded) return report(encoded.error());
        const std::string bytes = codecs::serialize(*encoded);
        auto decoded = codecs::decode(*encoded);
        if (!decoded) return report(decoded.error());
        c.bytes += static_cast<double>(bytes.size());
        c.f32_bytes += static_cast<double>(x.numel()) * 4.0;
        auto start = torch::from_blob(decoded->data(), x.sizes(), torch::kFloat32).clone();
        auto approx = gen.sample(req, start, ks[k], {}, nullptr);
        if (!approx) return report(approx.error());
        auto approx_frames = frames_of(approx->latent);
        if (!approx_frames) return report(approx_frames.error());
        auto p = video::psnr(*exact_frames, *approx_frames);
        if (!p) return report(p.error());
        c.psnr_sum[k] += std::min(*p, 99.0);  // identical videos: PSNR is infinite; count them as 99 dB
      }
    }
    for (auto& c : codecs_list) ++c.n;
    progress.update(i + 1, a.compression);
  }
  progress.finish();
  nlohmann::json out;
  out["scenes"] = a.compression;
  out["start_steps"] = ks;
  std::printf("%-16s %8s", "codec", "ratio");
  for (int k : ks) std::printf("  PSNR K=%-2d", k);
  std::printf("\n");
  for (const auto& c : codecs_list) {
    nlohmann::json j{{"codec", c.name}, {"ratio", c.f32_bytes / std::max(1.0, c.bytes)}};
    std::printf("%-16s %7.2fx", c.name.c_str(), c.f32_bytes / std::max(1.0, c.bytes));
    for (size_t k = 0; k < ks.size(); ++k) {
      j["psnr_db"].push_back(c.psnr_sum[k] / std::max(1, c.n));
      std::printf("  %7.1f dB", c.psnr_sum[k] / std::max(1, c.n));
    }
    std::printf("\n");
    out["codecs"].push_back(j);
  }
  if (auto st = write_json(a.json, out); !st) return report(st.error());
  return kExitOk;
}

}  // namespace

CLI::App* add_bench_cache(CLI::App* bench, CacheBenchArgs& a) {
  auto* sub = bench->add_subcommand("cache", "replay a request trace through the approximate cache");
  sub->add_option("--trace", a.trace, "requests, one a line: a prompt or a JSON object (see reel world trace)");
  sub->add_option("--budget-mb", a.budget_mb, "cache byte budget in MB, the same for every configuration")
      ->capture_default_str();
  sub->add_option("--policy", a.policy, "replacement policy: lru, lcbfu or cost_aware")->capture_default_str();
  sub->add_option("--configs", a.configs, "comma-separated: none, whole, decoupled, compressed, whole-compressed")
      ->capture_default_str();
  sub->add_option("--cache-table", a.table, "similarity to start-fraction table (default: built in)");
  sub->add_option("--embedder", a.embedder, "prompt embedder: ngram, text-encoder or text-encoder:MODEL")
      ->capture_default_str();
  sub->add_option("--model,-m", a.model, "zoo name or .safetensors path")->capture_default_str();
  sub->add_option("--limit", a.limit, "replay only the first N requests (0 = all)")->capture_default_str();
  sub->add_option("--seed", a.seed, "request i without its own seed uses seed + i")->check(CLI::NonNegativeNumber)->capture_default_str();
  sub->add_option("--synthetic", a.synthetic, "instead: lookup latency at this many synthetic entries")
      ->capture_default_str();
  sub->add_option("--calibrate", a.calibrate,
                  "instead: adherence of starts from related prompts over N scenes, by what differs and K")
      ->capture_default_str();
  sub->add_option("--compression", a.compression,
                  "instead: entry size against float32 and PSNR of videos started from compressed entries, over N scenes")
      ->capture_default_str();
  sub->add_flag("--full-reference", a.full_reference,
                "run the no-cache pass on every request (default: only on requests a cache pass hit)");
  sub->add_option("--json", a.json, "where to write the JSON ('' = nowhere)")->capture_default_str();
  sub->add_option("--threads,-t", a.threads, "compute threads (0 = all cores)")->capture_default_str();
  sub->add_flag("--quiet,-q", a.quiet, "no progress bar");
  return sub;
}

int run_bench_cache(const CacheBenchArgs& a, const Config& cfg) {
  if (!(a.budget_mb > 0)) return report(make_error(Errc::invalid_argument, "--budget-mb must be positive"));
  if (a.limit < 0 || a.synthetic < 0) return report(make_error(Errc::invalid_argument, "--limit and --synthetic must be >= 0"));
  auto policy = cachestore::parse_policy(a.policy);
  if (!policy) return report(policy.error());
  auto configs = parse_configs(a.configs);
  if (!configs) return report(configs.error());
  if (!a.table.empty()) {
    if (auto t = cachestore::StartStepTable::parse(a.table); !t) {
      return report(make_error(Errc::invalid_argument, "--cache-table: " + t.error().message));
    }
  }
  const fs::path dir = fs::temp_directory_path() / ("reel_bench_cache_" + std::to_string(::getpid()));
  struct Cleanup {
    fs::path dir;
    ~Cleanup() {
      std::error_code ec;
      fs::remove_all(dir, ec);
    }
  } cleanup{dir};
  if (a.synthetic > 0) return run_synthetic(a, dir);
  if (a.trace.empty() && a.calibrate == 0 && a.compression == 0) {
    return report(make_error(Errc::invalid_argument, "--trace is required (or --synthetic N, --calibrate N)"));
  }
  if (a.calibrate < 0 || a.compression < 0) return report(make_error(Errc::invalid_argument, "--calibrate and --compression must be >= 0"));
  Expected<std::vector<LoggedRequest>> log = std::vector<LoggedRequest>{};
  if (a.calibrate == 0 && a.compression == 0) {
    log = read_prompt_log(a.trace, LogFormat::txt);
    if (!log) return report(log.error());
    if (a.limit > 0 && static_cast<int>(log->size()) > a.limit) log->resize(static_cast<size_t>(a.limit));
    if (log->empty()) return report(make_error(Errc::invalid_argument, "the trace " + a.trace + " has no requests"));
  }
  if (auto st = set_threads(a.threads); !st) return report(st.error());
  auto model = models::open_model(a.model, cfg.zoo);
  if (!model) return report(model.error());
  auto weights = model_checksum(model->source);
  if (!weights) return report(weights.error());
  CacheArgs embedder_args;
  embedder_args.embedder = a.embedder;
  embedder_args.zoo = cfg.zoo;
  auto embedder = make_embedder(embedder_args, &*model);  // checks --embedder before any run
  if (!embedder) return report(embedder.error());
  CachedGenerator generator(std::move(*model), *weights);
  if (a.calibrate > 0) return run_calibrate(a, generator, **embedder);
  if (a.compression > 0) return run_compression(a, generator);

  // The reference (no cache) runs last, and by default only the requests a cache pass hit: all
  // it is for is the paired adherence of those hits.
  std::stable_partition(configs->begin(), configs->end(), [](const PassConfig& pc) { return pc.cache; });
  std::vector<bool> hit_somewhere(log->size(), false);
  std::vector<PassResult> passes;
  for (const auto& pc : *configs) {
    PassResult pass;
    pass.config = pc;
    std::unique_ptr<cachestore::ApproxCache> cache;
    if (pc.cache) {
      CacheArgs ca;
      ca.path = (dir / pc.name).string();
      ca.budget_mb = a.budget_mb;
      ca.policy = a.policy;
      ca.table = a.table;
      ca.decoupled = pc.decoupled;
      ca.compress = pc.compress;
      ca.embedder = a.embedder;
      ca.zoo = cfg.zoo;
      auto opened = open_cache(ca, &generator.model());
      if (!opened) return report(opened.error());
      cache = std::move(*opened);
    }
    Progress progress(pc.name, "requests", !a.quiet && Progress::stderr_is_terminal());
    const auto t0 = Clock::now();
    double scoring = 0;
    for (size_t i = 0; i < log->size(); ++i) {
      const auto& lr = (*log)[i];
      if (!pc.cache && !a.full_reference && !hit_somewhere[i] && passes.size() > 0) {
        pass.requests.push_back(RequestResult{.skipped = true});
        continue;
      }
      Request req{lr.prompt, lr.seed.value_or(a.seed + i), lr.steps, lr.guidance};
      auto run = generator.run(req, cache.get(), "");
      if (!run) return report(make_error(run.error().code, a.trace + ":" + std::to_string(lr.line) + ": " + run.error().message));
      RequestResult rr;
      if (run->hit) rr.hit = cachestore::hit_kind_name(*run->hit);
      rr.start_step = run->start_step;
      rr.steps = req.steps.value_or(generator.model().defaults.steps);
      rr.lookup_ms = run->lookup_seconds * 1e3;
      const auto ts = Clock::now();
      auto adherence = generator.adherence(req.prompt, run->result.latent);
      if (!adherence) return report(adherence.error());
      rr.adherence = *adherence;
      if (run->hit) hit_somewhere[i] = true;
      scoring += std::chrono::duration<double>(Clock::now() - ts).count();
      pass.requests.push_back(std::move(rr));
      progress.update(static_cast<int>(i + 1), static_cast<int>(log->size()));
    }
    progress.finish();
    // Scoring is the benchmark's own work, not the service's.
    pass.seconds = std::chrono::duration<double>(Clock::now() - t0).count() - scoring;
    if (cache) pass.stats = cache->stats();
    passes.push_back(std::move(pass));
    const auto ran = std::count_if(passes.back().requests.begin(), passes.back().requests.end(),
                                   [](const RequestResult& r) { return !r.skipped; });
    std::fprintf(stderr, "reel: %s: %lld requests in %.1f s\n", pc.name.c_str(), static_cast<long long>(ran),
                 passes.back().seconds);
  }

  const PassResult* none = nullptr;
  const PassResult* whole = nullptr;
  for (const auto& p : passes) {
    if (p.config.name == "none") none = &p;
    if (p.config.name == "whole") whole = &p;
  }
  nlohmann::json out;
  out["trace"] = a.trace;
  out["requests"] = log->size();
  out["budget_mb"] = a.budget_mb;
  out["policy"] = a.policy;
  out["embedder"] = (*embedder)->name();
  out["model"] = generator.model().name;
  out["steps"] = generator.model().defaults.steps;
  out["threads"] = a.threads;
  out["passes"] = nlohmann::json::array();
  std::printf("%-11s %6s %6s %6s %7s %8s %8s %7s %7s %8s %7s %7s %7s\n", "config", "hits", "whole", "comp.",
              "saved", "MB", "entries", "p50 ms", "p99 ms", "req/s", "x whole", "adher.", "drop");
  for (const auto& p : passes) {
    auto j = summary(p, none, whole);
    out["passes"].push_back(j);
    std::printf("%-11s %5.1f%% %6d %6d %6.1f%% %8.2f %8llu %7.3f %7.3f %8.3f %7s %6.1f%% %7s\n",
                p.config.name.c_str(), 100.0 * j["hit_rate"].get<double>(), j["whole_hits"].get<int>(),
                j["composed_hits"].get<int>(), 100.0 * j["compute_saved"].get<double>(),
                static_cast<double>(j["bytes_stored"].get<uint64_t>()) / 1e6,
                static_cast<unsigned long long>(j["entries"].get<uint64_t>()), j["lookup_p50_ms"].get<double>(),
                j["lookup_p99_ms"].get<double>(), j["throughput_rps"].get<double>(),
                j.contains("throughput_vs_whole")
                    ? (std::to_string(j["throughput_vs_whole"].get<double>()).substr(0, 5) + "x").c_str()
                    : "-",
                100.0 * j["adherence"].get<double>(),
                j.contains("adherence_drop_at_hits")
                    ? (std::to_string(100.0 * j["adherence_drop_at_hits"].get<double>()).substr(0, 5)).c_str()
                    : "-");
  }
  if (auto st = write_json(a.json, out); !st) return report(st.error());
  return kExitOk;
}

}  // namespace reel::cli
