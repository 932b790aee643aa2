// A job's side of the approximate cache, with LibTorch: the compatibility key of a generation,
// latents to and from the cache, the object mask that decoupled entries need, and standard
// sampling that starts from a hit and hands its latents back. One implementation for both ways
// a job reaches the cache: `reel generate --cache` (cli/cache_run.cpp, a LocalCache over the
// ApproxCache it opened) and the coordinator (an ActorCache over the cache-store actor), so both
// build the same keys, get the same hits and insert the same entries.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <torch/types.h>

#include "actors/cache_actor.hpp"
#include "base/expected.hpp"
#include "cachestore/approx_cache.hpp"
#include "models/t2v_model.hpp"
#include "pipeline/sampler.hpp"

namespace reel::actors {

// A latent between LibTorch and the cache (float32, [1, C, F, H, W]); both copy.
[[nodiscard]] cachestore::Latent to_latent(const torch::Tensor& x);
[[nodiscard]] torch::Tensor to_tensor(const cachestore::Latent& latent);

// What CompatKey::weights_hash is set to: FNV-1a 64 of the model file's bytes as 16 hex digits,
// "builtin" for a built-in model ("builtin:<name>"). The same value as `reel generate`'s
// model_checksum() (cli/long_job.hpp), so that the CLI and the coordinator share entries.
// Errors: not_found when the file cannot be read.
[[nodiscard]] Expected<std::string> weights_file_checksum(const std::string& source);

// Everything that makes latents of two generations incompatible. `weights` is
// weights_file_checksum() of the model file; `latent_shape` is [1, C, F, H, W].
[[nodiscard]] cachestore::CompatKey compat_key(const models::T2VModel& model, const std::string& weights,
                                               const pipeline::SampleOptions& options,
                                               const std::vector<int64_t>& latent_shape, const std::string& tenant);

// Where a shapes-world prompt's objects are in a finished latent, on the latent grid ([F, h, w],
// 1 on an object): what an insert's object mask is. Empty when the prompt is not a shapes-world
// prompt or the decoder does not give pixels. Decodes the latent with the model's decoder.
[[nodiscard]] std::vector<uint8_t> object_mask(const models::T2VModel& model, const std::string& prompt,
                                               const torch::Tensor& latent);

struct CachedSample {
  pipeline::SampleResult result;  // the final latent; stats count only the steps run here
  std::optional<cachestore::HitKind> hit;
  int start_step = 0;             // 0 on a miss
  float similarity = 0.0F;
  std::vector<std::string> sources;  // prompts of the entries the start came from
  double lookup_seconds = 0.0;
  double insert_seconds = 0.0;
  std::optional<Error> insert_error;  // inserts are best effort: the video is made regardless
};

// Standard sampling of one prompt ([1, C, F, H, W]) through the cache: a hit starts at its step
// (pipeline::sample_from), a miss from noise (pipeline::sample); afterwards the latents at the
// cache's capture steps (those computed here) are inserted, with object_mask() of the final
// latent. `cache` may be null (no cache); `lookup` false inserts only. Errors: the lookup's
// (an ActorCache answers a miss instead unless told otherwise), internal for a hit of another
// shape than `latent_shape`, and sampling's; insert errors only fill insert_error.
[[nodiscard]] Expected<CachedSample> sample_cached(pipeline::Denoiser& denoiser, const models::T2VModel& model,
                                                   const pipeline::Conditioning& cond,
                                                   const std::vector<int64_t>& latent_shape,
                                                   const pipeline::SampleOptions& options, CacheClient* cache,
                                                   const cachestore::CompatKey& key, const std::string& prompt,
                                                   bool lookup = true, pipeline::StepCallback on_step = {});

}  // namespace reel::actors
