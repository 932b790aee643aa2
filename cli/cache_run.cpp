#include "cli/cache_run.hpp"

#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <map>

#include "models/shapes/grammar.hpp"
#include "models/shapes/score.hpp"
#include "pipeline/dit_denoiser.hpp"

namespace reel::cli {
namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Where the prompt's objects are in the final video, on the latent grid ([F, h, w]); empty when
// the prompt is not a shapes-world prompt or the decoder does not give pixels.
std::vector<uint8_t> object_mask(const models::T2VModel& model, const std::string& prompt, const torch::Tensor& latent) {
  auto scene = models::shapes::parse_prompt(prompt);
  if (!scene.ok()) return {};
  auto pixels = model.decoder->decode(latent);  // [1, F, H, W, 3] uint8
  if (!pixels.ok()) return {};
  auto clip = (*pixels)[0].contiguous();
  const int frames = static_cast<int>(clip.size(0)), height = static_cast<int>(clip.size(1)),
            width = static_cast<int>(clip.size(2));
  auto mask = models::shapes::object_mask(*scene, {clip.data_ptr<uint8_t>(), static_cast<size_t>(clip.numel())},
                                          frames, height, width);
  if (!mask.ok()) return {};
  const int s = std::max(1, model.spatial_compression);
  if (s == 1 || latent.size(2) != frames) return s == 1 ? *mask : std::vector<uint8_t>{};
  // A latent cell holds an object when any of its pixels does.
  const int h = height / s, w = width / s;
  std::vector<uint8_t> cells(static_cast<size_t>(frames) * h * w, 0);
  for (int f = 0; f < frames; ++f)
    for (int y = 0; y < h * s; ++y)
      for (int x = 0; x < w * s; ++x)
        if ((*mask)[(static_cast<size_t>(f) * height + y) * width + x] != 0)
          cells[(static_cast<size_t>(f) * h + y / s) * w + x / s] = 1;
  return cells;
}

}  // namespace

cachestore::Latent to_latent(const torch::Tensor& x) {
  auto c = x.detach().to(torch::kFloat32).contiguous();
  const float* p = c.data_ptr<float>();
  return cachestore::Latent{c.sizes().vec(), std::vector<float>(p, p + c.numel())};
}

torch::Tensor to_tensor(const cachestore::Latent& latent) {
  return torch::from_blob(const_cast<float*>(latent.values.data()), latent.shape, torch::kFloat32).clone();
}

CacheArgs cache_args(const Config& cfg) {
  return CacheArgs{cfg.cache_path,  cfg.cache_budget_mb, cfg.cache_policy, cfg.cache_table,
                   cfg.cache_decoupled, cfg.cache_compress, cfg.cache_tenant};
}

void add_cache_options(CLI::App* app, CacheArgs& a) {
  app->add_option("--cache-budget-mb", a.budget_mb, "bytes of cache entries kept at most, in MB")->capture_default_str();
  app->add_option("--cache-policy", a.policy, "replacement policy: lru, lcbfu or cost_aware")->capture_default_str();
  app->add_option("--cache-table", a.table,
                  "similarity to start-fraction table, e.g. 0.95:0.6,0.85:0.4,0.75:0.2 (default: built in)");
  app->add_flag("!--no-decouple", a.decoupled, "cache whole requests only (no object/background entries)");
  app->add_flag("!--no-compress", a.compress, "store entries as exact float32 (no int8 + zstd)");
  app->add_option("--tenant", a.tenant, "namespace of the entries this request may use and add (default: shared)");
}

Expected<std::unique_ptr<cachestore::ApproxCache>> open_cache(const CacheArgs& a) {
  if (!(a.budget_mb > 0)) return make_error(Errc::invalid_argument, "--cache-budget-mb must be positive");
  auto policy = cachestore::parse_policy(a.policy);
  if (!policy.ok()) return policy.error();
  cachestore::CacheOptions o;
  o.path = a.path;
  o.budget_bytes = static_cast<uint64_t>(a.budget_mb * 1e6);
  o.policy = *policy;
  o.decoupled = a.decoupled;
  o.compress = a.compress;
  if (!a.table.empty()) {
    auto table = cachestore::StartStepTable::parse(a.table);
    if (!table.ok()) return make_error(Errc::invalid_argument, "--cache-table: " + table.error().message);
    o.table = *table;
  }
  return cachestore::ApproxCache::open(std::move(o), std::make_unique<cachestore::NgramEmbedder>());
}

cachestore::CompatKey compat_key(const models::T2VModel& model, const std::string& weights,
                                 const pipeline::SampleOptions& o, const std::vector<int64_t>& shape,
                                 const std::string& tenant) {
  cachestore::CompatKey key;
  key.model = model.name;
  key.weights_hash = weights;
  key.scheduler = models::solver_kind_name(o.solver);
  key.steps = o.steps;
  key.shift = o.shift;
  key.frames = static_cast<int>(shape[2]);
  key.height = static_cast<int>(shape[3]) * std::max(1, model.spatial_compression);
  key.width = static_cast<int>(shape[4]) * std::max(1, model.spatial_compression);
  key.guidance = o.guidance;
  key.prediction = models::prediction_name(model.prediction);
  key.tenant = tenant;
  return key;
}

Expected<CachedSample> sample_cached(pipeline::Denoiser& denoiser, const models::T2VModel& model,
                                     const pipeline::Conditioning& cond, const std::vector<int64_t>& shape,
                                     const pipeline::SampleOptions& options, cachestore::ApproxCache* cache,
                                     const cachestore::CompatKey& key, const std::string& prompt, bool lookup,
                                     pipeline::StepCallback on_step) {
  CachedSample out;
  std::optional<cachestore::Hit> hit;
  if (cache != nullptr && lookup) {
    const auto t0 = std::chrono::steady_clock::now();
    auto found = cache->lookup(key, prompt);
    out.lookup_seconds = seconds_since(t0);
    if (!found.ok()) return found.error();
    hit = std::move(*found);
  }
  std::vector<int> capture = cache != nullptr ? cache->capture_steps(options.steps) : std::vector<int>{};
  std::map<int, torch::Tensor> captured;
  auto keep = [&](int step, const torch::Tensor& x) {
    if (std::find(capture.begin(), capture.end(), step) != capture.end()) captured[step] = x.clone();
  };
  Expected<pipeline::SampleResult> result = make_error(Errc::internal, "not sampled");
  if (hit) {
    if (hit->latent.shape != shape) return make_error(Errc::internal, "cache hit of another shape");
    out.hit = hit->kind;
    out.start_step = hit->start_step;
    out.similarity = hit->similarity;
    out.sources = hit->sources;
    result = pipeline::sample_from(denoiser, cond, to_tensor(hit->latent), hit->start_step, options, on_step, keep);
  } else {
    result = pipeline::sample(denoiser, cond, shape, options, on_step, keep);
  }
  if (!result.ok()) return result.error();
  out.result = std::move(*result);

  if (cache != nullptr && !captured.empty()) {
    const auto t0 = std::chrono::steady_clock::now();
    std::map<int, cachestore::Latent> latents;
    for (const auto& [step, x] : captured) latents[step] = to_latent(x);
    auto mask = object_mask(model, prompt, out.result.latent);
    if (auto st = cache->insert(key, prompt, latents, mask); !st.ok()) out.insert_error = st.error();
    out.insert_seconds = seconds_since(t0);
  }
  return out;
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
  return object_mask(model_, prompt, latent);
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
