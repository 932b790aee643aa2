#include "cli/cache_run.hpp"

#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <map>
#include <optional>

#include "cachestore/text_encoder_embedder.hpp"
#include "models/shapes/grammar.hpp"
#include "models/shapes/score.hpp"
#include "models/zoo.hpp"
#include "pipeline/dit_denoiser.hpp"

namespace reel::cli {

CacheArgs cache_args(const Config& cfg) {
  CacheArgs a;
  a.path = cfg.cache_path;
  a.budget_mb = cfg.cache_budget_mb;
  a.policy = cfg.cache_policy;
  a.table = cfg.cache_table;
  a.decoupled = cfg.cache_decoupled;
  a.compress = cfg.cache_compress;
  a.tenant = cfg.cache_tenant;
  a.embedder = cfg.cache_embedder;
  a.zoo = cfg.zoo;
  a.index_save_every = cfg.cache_index_save_every;
  return a;
}

Expected<EmbedderSpec> parse_embedder(const std::string& text) {
  static constexpr std::string_view kPrefix = "text-encoder:";
  if (text == "ngram") return EmbedderSpec{};
  if (text == "text-encoder") return EmbedderSpec{true, ""};
  if (text.size() > kPrefix.size() && text.compare(0, kPrefix.size(), kPrefix) == 0)
    return EmbedderSpec{true, text.substr(kPrefix.size())};
  return make_error(Errc::invalid_argument,
                    "--cache-embedder: unknown embedder '" + text + "' (ngram, text-encoder or text-encoder:MODEL)");
}

Expected<std::unique_ptr<cachestore::Embedder>> make_embedder(const CacheArgs& a, const models::T2VModel* model) {
  auto spec = parse_embedder(a.embedder);
  if (!spec) return spec.error();
  if (!spec->text_encoder) return std::unique_ptr<cachestore::Embedder>(std::make_unique<cachestore::NgramEmbedder>());
  std::optional<models::T2VModel> named;
  if (!spec->model.empty()) {
    auto opened = models::open_model(spec->model, a.zoo);
    if (!opened) {
      Error e = opened.error();
      e.message = "--cache-embedder " + a.embedder + ": " + e.message;
      return e;
    }
    named = std::move(*opened);
    model = &*named;
  }
  if (model == nullptr) return make_error(Errc::invalid_argument, "--cache-embedder text-encoder: no model to take the encoder from");
  if (!model->text_encoder)
    return make_error(Errc::invalid_argument, "--cache-embedder: model '" + model->name + "' has no text encoder");
  const std::string identity = model->name + "/" + cachestore::TextEncoderEmbedder::fingerprint(*model->text_encoder);
  return std::unique_ptr<cachestore::Embedder>(
      std::make_unique<cachestore::TextEncoderEmbedder>(model->text_encoder, identity));
}

void add_cache_options(CLI::App* app, CacheArgs& a) {
  app->add_option("--cache-budget-mb", a.budget_mb, "bytes of cache entries kept at most, in MB")->capture_default_str();
  app->add_option("--cache-policy", a.policy, "replacement policy: lru, lcbfu or cost_aware")->capture_default_str();
  app->add_option("--cache-table", a.table,
                  "similarity to start-fraction table, e.g. 0.95:0.6,0.85:0.4,0.75:0.2 (default: built in)");
  app->add_option("--cache-embedder", a.embedder,
                  "prompt embedder: ngram, text-encoder (the model's own) or text-encoder:MODEL")
      ->capture_default_str();
  app->add_flag("!--no-decouple", a.decoupled, "cache whole requests only (no object/background entries)");
  app->add_flag("!--no-compress", a.compress, "store entries as exact float32 (no int8 + zstd)");
  app->add_option("--tenant", a.tenant, "namespace of the entries this request may use and add (default: shared)");
}

Expected<cachestore::CacheOptions> cache_options(const CacheArgs& a) {
  if (!(a.budget_mb > 0)) return make_error(Errc::invalid_argument, "--cache-budget-mb must be positive");
  if (!(a.budget_mb <= 1e12))  // a petabyte; beyond it the byte count no longer fits
    return make_error(Errc::invalid_argument, "--cache-budget-mb must be at most 1e12 (a petabyte)");
  if (auto spec = parse_embedder(a.embedder); !spec) return spec.error();
  if (a.index_save_every < 0) return make_error(Errc::invalid_argument, "cache.index_save_every must be >= 0");
  auto policy = cachestore::parse_policy(a.policy);
  if (!policy.ok()) return policy.error();
  cachestore::CacheOptions o;
  o.path = a.path;
  o.budget_bytes = static_cast<uint64_t>(a.budget_mb * 1e6);
  o.policy = *policy;
  o.decoupled = a.decoupled;
  o.compress = a.compress;
  o.index_save_every = static_cast<uint64_t>(a.index_save_every);
  if (!a.table.empty()) {
    auto table = cachestore::StartStepTable::parse(a.table);
    if (!table.ok()) return make_error(Errc::invalid_argument, "--cache-table: " + table.error().message);
    o.table = *table;
  }
  return o;
}

Expected<actors::cache_store_actor> open_cache_actor(caf::actor_system& system, const CacheArgs& args,
                                                     const std::string& model) {
  auto options = cache_options(args);
  if (!options) return options.error();
  CacheArgs embedder_args = args;
  if (auto chosen = parse_embedder(args.embedder); chosen && chosen->text_encoder && chosen->model.empty())
    embedder_args.embedder = "text-encoder:" + model;
  return actors::open_cache_store(system, *options, [embedder_args] { return make_embedder(embedder_args, nullptr); });
}

Expected<std::unique_ptr<cachestore::ApproxCache>> open_cache(const CacheArgs& a, const models::T2VModel* model) {
  auto o = cache_options(a);
  if (!o.ok()) return o.error();
  auto embedder = make_embedder(a, model);
  if (!embedder) return embedder.error();
  return cachestore::ApproxCache::open(std::move(*o), std::move(*embedder));
}

Expected<CachedSample> sample_cached(pipeline::Denoiser& denoiser, const models::T2VModel& model,
                                     const pipeline::Conditioning& cond, const std::vector<int64_t>& shape,
                                     const pipeline::SampleOptions& options, cachestore::ApproxCache* cache,
                                     const cachestore::CompatKey& key, const std::string& prompt, bool lookup,
                                     pipeline::StepCallback on_step) {
  std::optional<actors::LocalCache> local;
  if (cache != nullptr) local.emplace(*cache);
  return actors::sample_cached(denoiser, model, cond, shape, options, local ? &*local : nullptr, key, prompt, lookup,
                               std::move(on_step));
}

CachedGenerator::CachedGenerator(models::T2VModel model, std::string weights)
    : model_(std::move(model)),
      weights_(std::move(weights)),
      denoiser_(std::make_unique<pipeline::DiTDenoiser>(model_.dit, model_.prediction)) {}

pipeline::SampleOptions CachedGenerator::options(const Request& r) const {
  const auto& d = model_.defaults;
  pipeline::SampleOptions opts;
  opts.steps = r.steps.value_or(d.steps);
  opts.shift = d.shift;
  opts.solver = d.solver;
  opts.guidance = r.guidance.value_or(d.guidance);
  opts.seed = r.seed;
  return opts;
}

std::vector<int64_t> CachedGenerator::latent_shape() const {
  const auto& d = model_.defaults;
  const int s = std::max(1, model_.spatial_compression);
  return {1, model_.dit->config().in_channels, d.frames, d.height / s, d.width / s};
}

cachestore::CompatKey CachedGenerator::key(const Request& r, const std::string& tenant) const {
  return compat_key(model_, weights_, options(r), latent_shape(), tenant);
}

Expected<CachedSample> CachedGenerator::run(const Request& r, cachestore::ApproxCache* cache, const std::string& tenant,
                                            bool lookup, pipeline::StepCallback on_step) {
  auto text = model_.text_encoder->encode({r.prompt});  // [1, L, D]
  if (!text.ok()) return text.error();
  const auto opts = options(r);
  pipeline::Conditioning cond{*text, {}};
  if (opts.guidance != 1.0) cond.negative = torch::zeros_like(*text);
  return sample_cached(*denoiser_, model_, cond, latent_shape(), opts, cache, key(r, tenant), r.prompt, lookup,
                       std::move(on_step));
}

Expected<pipeline::SampleResult> CachedGenerator::sample(const Request& r, const torch::Tensor& start, int start_step,
                                                         const std::vector<int>& capture,
                                                         std::map<int, torch::Tensor>* captured) {
  auto text = model_.text_encoder->encode({r.prompt});  // [1, L, D]
  if (!text.ok()) return text.error();
  const auto opts = options(r);
  pipeline::Conditioning cond{*text, {}};
  if (opts.guidance != 1.0) cond.negative = torch::zeros_like(*text);
  auto keep = [&](int step, const torch::Tensor& x) {
    if (captured != nullptr && std::find(capture.begin(), capture.end(), step) != capture.end())
      (*captured)[step] = x.clone();
  };
  if (start.defined()) return pipeline::sample_from(*denoiser_, cond, start.clone(), start_step, opts, {}, keep);
  return pipeline::sample(*denoiser_, cond, latent_shape(), opts, {}, keep);
}

std::vector<uint8_t> CachedGenerator::mask(const std::string& prompt, const torch::Tensor& latent) const {
  return actors::object_mask(model_, prompt, latent);
}

Expected<std::optional<double>> CachedGenerator::adherence(const std::string& prompt, const torch::Tensor& latent) {
  auto scene = models::shapes::parse_prompt(prompt);
  if (!scene.ok()) return std::optional<double>();
  auto pixels = model_.decoder->decode(latent);  // [1, F, H, W, 3]
  if (!pixels.ok()) return pixels.error();
  auto clip = (*pixels)[0].contiguous();
  auto score = models::shapes::score_clip(*scene, {clip.data_ptr<uint8_t>(), static_cast<size_t>(clip.numel())},
                                          static_cast<int>(clip.size(0)), static_cast<int>(clip.size(1)),
                                          static_cast<int>(clip.size(2)));
  if (!score.ok()) return score.error();
  int passed = score->background ? 1 : 0, checks = 1;
  for (const auto& o : score->objects) {
    passed += int(o.colour) + int(o.shape) + int(o.motion);
    checks += 3;
  }
  return std::optional<double>(double(passed) / checks);
}

}  // namespace reel::cli
