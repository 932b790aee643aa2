// The approximate cache as the CLI uses it: options, opening, the compatibility key of a
// generation, and standard sampling that starts from a hit and hands its latents back.
#pragma once

#include <CLI/CLI.hpp>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "actors/cache_actor.hpp"
#include "actors/cache_job.hpp"
#include "base/expected.hpp"
#include "cachestore/approx_cache.hpp"
#include "cli/config.hpp"
#include "models/t2v_model.hpp"
#include "pipeline/sampler.hpp"

namespace reel::cli {

struct CacheArgs {
  std::string path;              // cache directory; "" = no cache
  double budget_mb = 1024;       // entry bytes kept at most, in MB (10^6 bytes)
  std::string policy = "cost_aware";
  std::string table;             // similarity -> start fraction, e.g. "0.95:0.6,0.85:0.4"; "" = defaults
  bool decoupled = true;         // store and look up objects and backgrounds apart
  bool compress = true;          // int8 + zstd entries
  std::string tenant;            // namespace of this user's entries; "" = shared
  std::string embedder = "ngram";  // prompt embedder: see parse_embedder
  std::string zoo;               // where text-encoder:MODEL finds MODEL (models.zoo of the config)
  int64_t index_save_every = 1000;  // save the index after this many new entries (0: only at close)
  bool lookup = true;            // false: insert only (measure a cold cache's costs)
};

// Which prompt embedder a cache uses (--cache-embedder, cache.embedder):
//  - "ngram": hashed word and character n-grams with TF-IDF weights; needs no weights.
//  - "text-encoder": the text encoder of the model the command runs, mean-pooled.
//  - "text-encoder:MODEL": the text encoder of MODEL (a zoo name or a .safetensors path), so
//    that one cache serving several models compares every prompt the same way.
// Entries remember their embedder: a cache opened with another finds none of them (a miss, never
// a wrong hit), so changing it means starting the cache again.
struct EmbedderSpec {
  bool text_encoder = false;
  std::string model;  // text-encoder:MODEL; "" = the command's model
};
// Errors: invalid_argument naming the value and the choices.
[[nodiscard]] Expected<EmbedderSpec> parse_embedder(const std::string& text);

// The embedder `args.embedder` names. `model` is the command's model: what "text-encoder" uses
// (it shares the model's encoder); may be null when the spec names its own model or is ngram.
// Errors: parse_embedder's; invalid_argument when "text-encoder" has no model to use, or the
// model has no text encoder; open_model's for text-encoder:MODEL.
[[nodiscard]] Expected<std::unique_ptr<cachestore::Embedder>> make_embedder(const CacheArgs& args,
                                                                            const models::T2VModel* model);

// A latent between LibTorch and the cache (float32, [1, C, F, H, W]); both copy. Shared with the
// coordinator's side of the cache-store actor: actors/cache_job.hpp.
using actors::to_latent;
using actors::to_tensor;

// The cache section of the configuration.
[[nodiscard]] CacheArgs cache_args(const Config& cfg);

// --cache-budget-mb, --cache-policy, --cache-table, --cache-embedder, --no-decouple,
// --no-compress, --tenant.
void add_cache_options(CLI::App* app, CacheArgs& args);

// The cache's options from the CLI's (what open_cache opens, and what a cache-store actor is
// spawned with: actors/cache_actor.hpp). Errors: invalid_argument for bad options.
[[nodiscard]] Expected<cachestore::CacheOptions> cache_options(const CacheArgs& args);

// Opens the cache with make_embedder(args, model). Errors: invalid_argument for bad options;
// make_embedder's; the store's errors (not_found, corrupt_data, io_error).
[[nodiscard]] Expected<std::unique_ptr<cachestore::ApproxCache>> open_cache(const CacheArgs& args,
                                                                           const models::T2VModel* model = nullptr);

// The cache in a cache-store actor of `system` (actors/cache_actor.hpp), as a coordinator uses
// it. The actor makes its embedder on its own thread; "text-encoder" without a model means
// `model` (the jobs' model). Errors: cache_options' and open_cache_store's.
[[nodiscard]] Expected<actors::cache_store_actor> open_cache_actor(caf::actor_system& system, const CacheArgs& args,
                                                                   const std::string& model);

// Everything that makes latents of two generations incompatible:
// compat_key(model, weights, options, latent_shape, tenant), `weights` being a checksum of the
// model file (model_checksum()). Shared with the coordinator: actors/cache_job.hpp.
using actors::compat_key;

// The final latent, the hit it started from, timings and the insert's error: actors/cache_job.hpp.
using CachedSample = actors::CachedSample;

// Standard sampling of one prompt ([1, C, F, H, W]) through the cache: a hit starts at its step,
// a miss from noise; afterwards the latents at the cache's steps (those computed here) are
// inserted, with the object mask when the prompt is a shapes-world prompt. `cache` may be null.
// actors::sample_cached over a LocalCache: the coordinator runs the same over the cache-store
// actor.
[[nodiscard]] Expected<CachedSample> sample_cached(pipeline::Denoiser& denoiser, const models::T2VModel& model,
                                                   const pipeline::Conditioning& cond,
                                                   const std::vector<int64_t>& latent_shape,
                                                   const pipeline::SampleOptions& options,
                                                   cachestore::ApproxCache* cache, const cachestore::CompatKey& key,
                                                   const std::string& prompt, bool lookup = true,
                                                   pipeline::StepCallback on_step = {});

// One request with the model's defaults for what it does not set: text encoding, guidance with
// an empty negative, the latent shape of the model's default size and frames.
struct Request {
  std::string prompt;
  uint64_t seed = 0;
  std::optional<int> steps;
  std::optional<double> guidance;
};

class CachedGenerator {
 public:
  // `weights` is model_checksum() of the model file.
  CachedGenerator(models::T2VModel model, std::string weights);

  // The compatibility key a request generates under.
  [[nodiscard]] cachestore::CompatKey key(const Request& request, const std::string& tenant) const;

  [[nodiscard]] Expected<CachedSample> run(const Request& request, cachestore::ApproxCache* cache,
                                           const std::string& tenant, bool lookup = true,
                                           pipeline::StepCallback on_step = {});

  // Without the cache: from noise, or from `start` at `start_step`; the latents at `capture`
  // steps are returned in `captured`.
  [[nodiscard]] Expected<pipeline::SampleResult> sample(const Request& request, const torch::Tensor& start,
                                                        int start_step, const std::vector<int>& capture,
                                                        std::map<int, torch::Tensor>* captured);

  // Shapes-world adherence of a finished latent: the share of background, colour, shape and
  // motion checks it passes, in [0, 1]; nullopt for a prompt outside the shapes grammar.
  [[nodiscard]] Expected<std::optional<double>> adherence(const std::string& prompt, const torch::Tensor& latent);

  // Where a shapes-world prompt's objects are in a finished latent ([F, h, w]); empty otherwise.
  [[nodiscard]] std::vector<uint8_t> mask(const std::string& prompt, const torch::Tensor& latent) const;

  [[nodiscard]] const models::T2VModel& model() const { return model_; }

 private:
  models::T2VModel model_;
  std::string weights_;
  std::unique_ptr<pipeline::Denoiser> denoiser_;

  [[nodiscard]] pipeline::SampleOptions options(const Request& request) const;
  [[nodiscard]] std::vector<int64_t> latent_shape() const;
};

}  // namespace reel::cli
