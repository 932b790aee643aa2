#include "actors/cache_job.hpp"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>

#include "models/shapes/grammar.hpp"
#include "models/shapes/score.hpp"
#include "models/weights_checksum.hpp"

namespace reel::actors {
namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
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

Expected<std::string> weights_file_checksum(const std::string& source) { return models::weights_file_checksum(source); }

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

Expected<CachedSample> sample_cached(pipeline::Denoiser& denoiser, const models::T2VModel& model,
                                     const pipeline::Conditioning& cond, const std::vector<int64_t>& shape,
                                     const pipeline::SampleOptions& options, CacheClient* cache,
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
  std::vector<int> capture;
  if (cache != nullptr) {
    auto steps = cache->capture_steps(options.steps);
    if (steps.ok()) capture = std::move(*steps);
    else out.insert_error = steps.error();
  }
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

}  // namespace reel::actors
