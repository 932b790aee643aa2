// The cache-store actor: one approximate cache (cachestore::ApproxCache, RocksDB on disk) in a
// detached actor of its own, shared by every job of the process and reachable from remote nodes
// (every payload below has an inspect() and is registered by add_cache_types). It serves steps 2
// and 6 of "the path of one job" (DESIGN.md): before planning, a job asks it for a start point
// (lookup); after sampling, the job sends it the latents it passed through (insert).
//
// Keys, hits and entries are exactly those of `reel generate --cache`: the job side of both is
// actors::sample_cached (cache_job.hpp), which talks to a CacheClient: LocalCache over an
// ApproxCache in this process (the CLI), or ActorCache over this actor (the coordinator).
//
// The protocol (CAF 0.17 typed actor, cache_store_actor below). Every error is to_caf_error of a
// reel Error (job_store.hpp; from_caf_error gets the Error back, on this node or another):
//  - lookup (cache_lookup_atom, CacheKey, prompt) -> CacheStart: ApproxCache::lookup. A miss is
//    a CacheStart with hit = false, not an error. A hit carries the latent at step start_step
//    (exact float32, as the cache decoded it; for a composed hit the blend of background and
//    object), its similarity, its kind and the entries it came from. Either way it carries the
//    capture steps: the steps whose latents the job should send back with insert. An entry
//    that fails its checksum on disk is dropped and the lookup goes on without it (a miss if
//    nothing else fits), as in `reel generate --cache`; stats count it under `corrupted`.
//    Errors: invalid_argument for a key with steps < 1; io_error when RocksDB cannot read.
//  - insert (cache_insert_atom, CacheInsert) -> uint64_t: ApproxCache::insert; replies with
//    the number of entries written (1 whole entry, plus a background and an object entry for a
//    decoupled shapes prompt with an object mask; 0 when the cache takes no inserts).
//    Errors: invalid_argument when steps and latents differ in count, a step repeats or lies
//    outside [1, key.steps), latents differ in shape, or a latent disagrees with the key ("key
//    mismatch": frames != key.frames, or H x W not key.height x key.width over one spatial
//    factor), or the mask is not F * H * W cells; corrupt_data for a latent whose bytes fail
//    their checksums; io_error when the store refuses the write (the first write error turns
//    inserts off until the actor is restarted: stats.inserts_enabled). A job treats insert
//    errors as warnings: its video is made regardless.
//  - steps (cache_steps_atom, steps) -> CacheSteps: ApproxCache::capture_steps for a schedule
//    of `steps` steps (an insert-only job that did not look up).
//  - stats (cache_stats_atom) -> CacheStoreStats.
//  - close (cache_close_atom) -> CacheStoreStats: the final stats; the database is flushed and
//    closed before the reply leaves (its directory may be opened again at once), then the actor
//    quits and later requests fail (request_receiver_down, which from_caf_error reads as
//    io_error). Close only when the process is done with the cache: every job shares it.
// The cache opens in the actor's thread on the first message, not in spawn_cache_store. Until
// it opens, every message replies with the error that stops it (ApproxCache::open's:
// invalid_argument for bad options, io_error for a directory that cannot be created, written
// or locked, e.g. a file, or a cache that another process holds open; corrupt_data for damage
// that repair could not fix; unsupported for a newer format) and the next message tries again.
// open_cache_store opens at once and returns that error instead.
//
// Use from a job in standard mode (the coordinator's runner, a blocking actor; see
// cache_job.hpp), in place of pipeline::sample:
//   ActorCache cache(self, cache_store);  // lookup errors answer a miss (lookup_error())
//   auto key = compat_key(model, *weights_file_checksum(model.source), opts, shape, tenant);
//   auto run = sample_cached(denoiser, model, cond, shape, opts, &cache, key, prompt, true, on_step);
// sample_cached looks up (step 2), samples from the hit's step K or from noise, keeps the latents
// at the capture steps and inserts them with the object mask of the final latent (step 6).
// run->hit, start_step, similarity and sources say where the job started; run->insert_error and
// cache.lookup_error() are warnings: the job's video is made regardless.
//
// Threads. RocksDB reads and writes, zstd and int8 coding and the ANN search all run on the
// actor's own thread (system.spawn<caf::detached>): the cooperative scheduler only routes its
// messages. Requests are served one at a time, in arrival order; a job never sees half of
// another job's insert. A handler never throws: an exception becomes an internal error reply.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/atom.hpp>
#include <caf/fwd.hpp>
#include <caf/meta/type_name.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include "actors/messages.hpp"
#include "base/expected.hpp"
#include "cachestore/approx_cache.hpp"

namespace reel::actors {

// The compatibility key of a request: cachestore::CompatKey's fields but the embedder's, which
// the cache fills in itself. Two requests share entries only when every field is equal.
struct CacheKey {
  std::string model;         // model name
  std::string weights_hash;  // weights_file_checksum() of the model file (cache_job.hpp)
  std::string scheduler;     // solver name, e.g. "unipc"
  int32_t steps = 0;         // denoising steps of the whole schedule
  double shift = 0.0;        // sigma shift
  int32_t height = 0;        // pixels
  int32_t width = 0;         // pixels
  int32_t frames = 0;        // latent frames
  double guidance = 0.0;     // classifier-free guidance scale
  std::string prediction;    // models::prediction_name
  std::string tenant;        // isolation namespace; "" = shared
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, CacheKey& x) {
  return f(caf::meta::type_name("reel.CacheKey"), x.model, x.weights_hash, x.scheduler, x.steps, x.shift,
           x.height, x.width, x.frames, x.guidance, x.prediction, x.tenant);
}

[[nodiscard]] CacheKey to_cache_key(const cachestore::CompatKey& key);
[[nodiscard]] cachestore::CompatKey to_compat_key(const CacheKey& key);

// What a lookup answers: where the job starts.
struct CacheStart {
  bool hit = false;
  int32_t start_step = 0;     // K: steps done in `latent`; 0 on a miss
  WireTensor latent;          // [1, C, F, H, W] exact float32 (wire.hpp's format); empty on a miss
  float similarity = 0.0F;    // of the whole prompt, or the lowest of the parts (composed)
  int32_t kind = 0;           // cachestore::HitKind: 0 whole, 1 composed; 0 on a miss
  std::vector<uint64_t> entries;     // the entries it came from (background first when composed)
  std::vector<std::string> sources;  // their prompts
  std::vector<int32_t> capture_steps;  // steps whose latents to insert after the job
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, CacheStart& x) {
  return f(caf::meta::type_name("reel.CacheStart"), x.hit, x.start_step, x.latent, x.similarity, x.kind,
           x.entries, x.sources, x.capture_steps);
}

// What a finished request hands the cache.
struct CacheInsert {
  CacheKey key;
  std::string prompt;
  std::vector<int32_t> steps;        // schedule steps, each in [1, key.steps), no repeats
  std::vector<WireTensor> latents;   // latents[i] is the latent at steps[i], [1, C, F, H, W]
  std::string object_mask;           // [F, H, W] bytes on the latent grid, non-zero on the
                                     // prompt's objects (object_mask() in cache_job.hpp); "" = none
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, CacheInsert& x) {
  return f(caf::meta::type_name("reel.CacheInsert"), x.key, x.prompt, x.steps, x.latents, x.object_mask);
}

struct CacheSteps {
  std::vector<int32_t> steps;  // ascending
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, CacheSteps& x) {
  return f(caf::meta::type_name("reel.CacheSteps"), x.steps);
}

// cachestore::CacheStats in one flat record. Counters are since the actor opened the cache,
// except entries and bytes (what the directory holds now).
struct CacheStoreStats {
  std::string path;
  uint64_t entries = 0;          // entries stored (whole, object and background)
  uint64_t bytes = 0;            // their payload bytes
  uint64_t lookups = 0;
  uint64_t hits = 0;             // whole_hits + composed_hits
  uint64_t whole_hits = 0;
  uint64_t composed_hits = 0;
  uint64_t misses = 0;
  uint64_t steps_saved = 0;      // sum of the start steps of all hits
  uint64_t inserted = 0;         // entries written
  uint64_t evictions = 0;
  uint64_t corrupted = 0;        // entries dropped because their bytes failed a check
  uint64_t insert_failures = 0;  // inserts the store refused
  bool inserts_enabled = true;
  std::string embedder;          // the prompt embedder's id (ApproxCache::embedder_id); "" until open
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, CacheStoreStats& x) {
  return f(caf::meta::type_name("reel.CacheStoreStats"), x.path, x.entries, x.bytes, x.lookups, x.hits,
           x.whole_hits, x.composed_hits, x.misses, x.steps_saved, x.inserted, x.evictions, x.corrupted,
           x.insert_failures, x.inserts_enabled, x.embedder);
}

using cache_lookup_atom = caf::atom_constant<caf::atom("cachelook")>;
using cache_insert_atom = caf::atom_constant<caf::atom("cacheins")>;
using cache_steps_atom = caf::atom_constant<caf::atom("cachesteps")>;
using cache_stats_atom = caf::atom_constant<caf::atom("cachestats")>;
using cache_close_atom = caf::atom_constant<caf::atom("cacheclose")>;

// The protocol: see the top of this file.
using cache_store_actor = caf::typed_actor<
    caf::replies_to<cache_lookup_atom, CacheKey, std::string>::with<CacheStart>,
    caf::replies_to<cache_insert_atom, CacheInsert>::with<uint64_t>,
    caf::replies_to<cache_steps_atom, int32_t>::with<CacheSteps>,
    caf::replies_to<cache_stats_atom>::with<CacheStoreStats>,
    caf::replies_to<cache_close_atom>::with<CacheStoreStats>>;

// Makes the prompt embedder the cache opens with. Called once, on the actor's thread, when the
// cache opens (again after a failed open); its error is the open's. Empty: an n-gram embedder
// (cachestore::NgramEmbedder with its defaults), as `reel generate --cache` uses by default.
using EmbedderFactory = std::function<Expected<std::unique_ptr<cachestore::Embedder>>()>;

// Spawns the actor over the cache `options` describe, with the embedder `make_embedder` makes;
// the cache opens on the actor's thread at the first message (see the top of this file). Never
// blocks. One actor per directory: RocksDB lets one process at a time, and one handle in it,
// hold a directory.
[[nodiscard]] cache_store_actor spawn_cache_store(caf::actor_system& system, cachestore::CacheOptions options,
                                                  EmbedderFactory make_embedder = {});

// spawn_cache_store, then waits (at most `timeout`) until the cache is open. Errors: the open's
// (see the top of this file) or the embedder factory's, io_error on timeout; the actor is
// stopped then. Blocks the calling thread: call it from main, a test or a blocking actor, not
// from an event-based actor.
[[nodiscard]] Expected<cache_store_actor> open_cache_store(caf::actor_system& system, cachestore::CacheOptions options,
                                                           EmbedderFactory make_embedder = {},
                                                           std::chrono::milliseconds timeout = std::chrono::minutes(5));

// Registers CacheKey, CacheStart, CacheInsert, CacheSteps, CacheStoreStats and
// cache_store_actor, so that they cross to remote nodes. actors::configure calls it; calling it
// again is harmless.
void add_cache_types(caf::actor_system_config& cfg);

// Latents on the wire (wire.hpp's format, without LibTorch). Errors of latent_from_wire:
// corrupt_data (checksums, lengths), unsupported, invalid_argument for a tensor that is not
// [1, C, F, H, W] or empty bytes.
[[nodiscard]] Expected<WireTensor> latent_to_wire(const cachestore::Latent& latent);
[[nodiscard]] Expected<cachestore::Latent> latent_from_wire(const WireTensor& wire);

// ---- the job's side -------------------------------------------------------------------------

// What a job needs of the approximate cache, wherever it lives. sample_cached (cache_job.hpp)
// runs a job against one. Methods mirror ApproxCache's.
class CacheClient {
 public:
  virtual ~CacheClient() = default;
  [[nodiscard]] virtual Expected<std::vector<int>> capture_steps(int steps) = 0;
  [[nodiscard]] virtual Expected<std::optional<cachestore::Hit>> lookup(const cachestore::CompatKey& key,
                                                                        std::string_view prompt) = 0;
  [[nodiscard]] virtual Status insert(const cachestore::CompatKey& key, std::string_view prompt,
                                      const std::map<int, cachestore::Latent>& latents,
                                      std::span<const uint8_t> object_mask) = 0;
};

// An ApproxCache in this process (not owned), called directly: `reel generate --cache`.
class LocalCache final : public CacheClient {
 public:
  explicit LocalCache(cachestore::ApproxCache& cache) : cache_(cache) {}
  Expected<std::vector<int>> capture_steps(int steps) override;
  Expected<std::optional<cachestore::Hit>> lookup(const cachestore::CompatKey& key, std::string_view prompt) override;
  Status insert(const cachestore::CompatKey& key, std::string_view prompt,
                const std::map<int, cachestore::Latent>& latents, std::span<const uint8_t> object_mask) override;

 private:
  cachestore::ApproxCache& cache_;
};

// The cache-store actor, asked from a blocking actor (the coordinator's runner, a
// caf::scoped_actor): each call sends one request and waits for its reply.
class ActorCache final : public CacheClient {
 public:
  struct Options {
    // Longest wait for one reply; zero: no bound. Default 5 minutes.
    std::chrono::milliseconds timeout = std::chrono::minutes(5);
    // A lookup that fails (the actor is gone or cannot open its cache, RocksDB cannot read)
    // answers a miss instead, and the error is kept in lookup_error(): the job runs from noise
    // rather than failing. false passes the error on (what LocalCache does). Default true.
    bool lookup_errors_miss = true;
  };

  ActorCache(caf::blocking_actor* self, cache_store_actor cache) : ActorCache(self, std::move(cache), Options{}) {}
  ActorCache(caf::blocking_actor* self, cache_store_actor cache, Options options);

  // Capture steps come with a lookup's reply; asked for (steps message) only without one.
  Expected<std::vector<int>> capture_steps(int steps) override;
  Expected<std::optional<cachestore::Hit>> lookup(const cachestore::CompatKey& key, std::string_view prompt) override;
  Status insert(const cachestore::CompatKey& key, std::string_view prompt,
                const std::map<int, cachestore::Latent>& latents, std::span<const uint8_t> object_mask) override;

  // Why the latest lookup answered a miss although it failed (lookup_errors_miss); nullopt when
  // it did not fail.
  [[nodiscard]] const std::optional<Error>& lookup_error() const { return lookup_error_; }

 private:
  caf::blocking_actor* self_;
  cache_store_actor cache_;
  Options options_;
  std::optional<Error> lookup_error_;
  std::map<int, std::vector<int>> steps_;  // capture steps by schedule length, from replies
};

}  // namespace reel::actors
