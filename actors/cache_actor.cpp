#include "actors/cache_actor.hpp"

#include <exception>
#include <memory>
#include <set>
#include <utility>

#include <caf/all.hpp>

#include "actors/job_store.hpp"  // to_caf_error, from_caf_error
#include "cachestore/embedder.hpp"
#include "codecs/tensor.hpp"

namespace reel::actors {

CacheKey to_cache_key(const cachestore::CompatKey& k) {
  return CacheKey{k.model,  k.weights_hash, k.scheduler, k.steps,      k.shift, k.height,
                  k.width,  k.frames,       k.guidance,  k.prediction, k.tenant};
}

cachestore::CompatKey to_compat_key(const CacheKey& k) {
  cachestore::CompatKey key;
  key.model = k.model;
  key.weights_hash = k.weights_hash;
  key.scheduler = k.scheduler;
  key.steps = k.steps;
  key.shift = k.shift;
  key.height = k.height;
  key.width = k.width;
  key.frames = k.frames;
  key.guidance = k.guidance;
  key.prediction = k.prediction;
  key.tenant = k.tenant;
  return key;  // embedder: set by the cache
}

Expected<WireTensor> latent_to_wire(const cachestore::Latent& latent) {
  auto bytes = codecs::pack_f32(latent.values, latent.shape);
  if (!bytes) return bytes.error();
  return WireTensor{std::move(*bytes)};
}

Expected<cachestore::Latent> latent_from_wire(const WireTensor& wire) {
  if (wire.bytes.empty()) return make_error(Errc::invalid_argument, "no latent (empty tensor bytes)");
  auto unpacked = codecs::unpack_f32(wire.bytes);
  if (!unpacked) return unpacked.error();
  cachestore::Latent latent{std::move(unpacked->first), std::move(unpacked->second)};
  REEL_RETURN_IF_ERROR(cachestore::check_latent(latent));
  return latent;
}

namespace {

std::vector<int32_t> to_int32(const std::vector<int>& v) { return {v.begin(), v.end()}; }

// A latent the key cannot describe: frames, or a size that is not the key's over one spatial
// factor (latent cells are key pixels / spatial compression, the same along rows and columns).
Status check_against_key(const cachestore::Latent& latent, const CacheKey& key) {
  const int64_t f = latent.shape[2], h = latent.shape[3], w = latent.shape[4];
  const bool fits = f == key.frames && h > 0 && w > 0 && key.height % h == 0 && key.width % w == 0 &&
                    key.height / h == key.width / w;
  if (fits) return {};
  return make_error(Errc::invalid_argument,
                    "key mismatch: a latent of " + std::to_string(f) + " frames, " + std::to_string(h) + "x" +
                        std::to_string(w) + " cells, for a key of " + std::to_string(key.frames) + " frames at " +
                        std::to_string(key.width) + "x" + std::to_string(key.height) + " pixels");
}

struct CacheStoreState {
  // Not an aggregate: CAF would try to build the state from the actor pointer (C++20
  // parenthesised aggregate initialisation).
  CacheStoreState() = default;
  cachestore::CacheOptions options;
  EmbedderFactory make_embedder;  // empty: NgramEmbedder
  std::unique_ptr<cachestore::ApproxCache> cache;
  static inline const char* name = "reel.cache_store";

  // The cache, opened on first use (on this actor's thread); a failed open is tried again by
  // the next message.
  Expected<cachestore::ApproxCache*> open() {
    if (cache) return cache.get();
    std::unique_ptr<cachestore::Embedder> embedder;
    if (make_embedder) {
      auto made = make_embedder();
      if (!made) {
        Error e = made.error();
        e.message = "cache '" + options.path + "': prompt embedder: " + e.message;
        return e;
      }
      embedder = std::move(*made);
    }
    if (!embedder) embedder = std::make_unique<cachestore::NgramEmbedder>();
    auto opened = cachestore::ApproxCache::open(options, std::move(embedder));
    if (!opened) {
      Error e = opened.error();
      e.message = "cache '" + options.path + "': " + e.message;
      return e;
    }
    cache = std::move(*opened);
    return cache.get();
  }

  CacheStoreStats stats() const {
    CacheStoreStats out;
    out.path = options.path;
    if (!cache) return out;
    const auto s = cache->stats();
    out.entries = s.store.entries;
    out.bytes = s.store.bytes;
    out.lookups = s.lookups;
    out.whole_hits = s.whole_hits;
    out.composed_hits = s.composed_hits;
    out.hits = s.whole_hits + s.composed_hits;
    out.misses = s.misses;
    out.steps_saved = s.steps_saved;
    out.inserted = s.entries_inserted;
    out.evictions = s.store.evictions;
    out.corrupted = s.store.corrupted;
    out.insert_failures = s.store.insert_failures;
    out.inserts_enabled = s.store.inserts_enabled;
    out.embedder = cache->embedder_id();
    return out;
  }
};

// Runs a handler's body; its error, or any exception, becomes the error reply.
template <class T, class F>
caf::result<T> serve(F&& body) {
  try {
    Expected<T> r = body();
    if (!r) return to_caf_error(r.error());
    return std::move(*r);
  } catch (const std::exception& e) {
    return to_caf_error(make_error(Errc::internal, std::string("cache store: ") + e.what()));
  } catch (...) {
    return to_caf_error(make_error(Errc::internal, "cache store: unknown exception"));
  }
}

Expected<CacheStart> do_lookup(CacheStoreState& st, const CacheKey& key, const std::string& prompt) {
  if (key.steps < 1) return make_error(Errc::invalid_argument, "cache lookup: steps must be positive, got " + std::to_string(key.steps));
  auto cache = st.open();
  if (!cache) return cache.error();
  auto found = (*cache)->lookup(to_compat_key(key), prompt);
  if (!found) return found.error();
  CacheStart out;
  out.capture_steps = to_int32((*cache)->capture_steps(key.steps));
  if (!found->has_value()) return out;
  auto& hit = **found;
  auto wire = latent_to_wire(hit.latent);
  if (!wire) return wire.error();
  out.hit = true;
  out.start_step = hit.start_step;
  out.latent = std::move(*wire);
  out.similarity = hit.similarity;
  out.kind = static_cast<int32_t>(hit.kind);
  out.entries = std::move(hit.entries);
  out.sources = std::move(hit.sources);
  return out;
}

Expected<uint64_t> do_insert(CacheStoreState& st, const CacheInsert& in) {
  auto bad = [](const std::string& m) { return make_error(Errc::invalid_argument, "cache insert: " + m); };
  if (in.steps.size() != in.latents.size())
    return bad(std::to_string(in.steps.size()) + " steps for " + std::to_string(in.latents.size()) + " latents");
  std::map<int, cachestore::Latent> latents;
  for (size_t i = 0; i < in.steps.size(); ++i) {
    auto latent = latent_from_wire(in.latents[i]);
    if (!latent) {
      Error e = latent.error();
      e.message = "cache insert: the latent at step " + std::to_string(in.steps[i]) + ": " + e.message;
      return e;
    }
    REEL_RETURN_IF_ERROR(check_against_key(*latent, in.key));
    if (!latents.emplace(in.steps[i], std::move(*latent)).second) return bad("step " + std::to_string(in.steps[i]) + " repeats");
  }
  auto cache = st.open();
  if (!cache) return cache.error();
  const uint64_t before = (*cache)->stats().entries_inserted;
  const auto* mask = reinterpret_cast<const uint8_t*>(in.object_mask.data());
  REEL_RETURN_IF_ERROR(
      (*cache)->insert(to_compat_key(in.key), in.prompt, latents, std::span<const uint8_t>(mask, in.object_mask.size())));
  return (*cache)->stats().entries_inserted - before;
}

cache_store_actor::behavior_type cache_store(cache_store_actor::stateful_pointer<CacheStoreState> self,
                                             cachestore::CacheOptions options, EmbedderFactory make_embedder) {
  self->state.options = std::move(options);
  self->state.make_embedder = std::move(make_embedder);
  return {
      [=](cache_lookup_atom, const CacheKey& key, const std::string& prompt) -> caf::result<CacheStart> {
        return serve<CacheStart>([&] { return do_lookup(self->state, key, prompt); });
      },
      [=](cache_insert_atom, const CacheInsert& in) -> caf::result<uint64_t> {
        return serve<uint64_t>([&] { return do_insert(self->state, in); });
      },
      [=](cache_steps_atom, int32_t steps) -> caf::result<CacheSteps> {
        return serve<CacheSteps>([&]() -> Expected<CacheSteps> {
          if (steps < 1) return make_error(Errc::invalid_argument, "cache steps: steps must be positive, got " + std::to_string(steps));
          auto cache = self->state.open();
          if (!cache) return cache.error();
          return CacheSteps{to_int32((*cache)->capture_steps(steps))};
        });
      },
      [=](cache_stats_atom) -> caf::result<CacheStoreStats> {
        return serve<CacheStoreStats>([&]() -> Expected<CacheStoreStats> {
          auto cache = self->state.open();
          if (!cache) return cache.error();
          return self->state.stats();
        });
      },
      [=](cache_close_atom) -> caf::result<CacheStoreStats> {
        auto result = serve<CacheStoreStats>([&]() -> Expected<CacheStoreStats> {
          CacheStoreStats final_stats = self->state.stats();
          self->state.cache.reset();  // flushes and closes RocksDB before the reply leaves
          return final_stats;
        });
        self->quit();
        return result;
      },
  };
}

}  // namespace

cache_store_actor spawn_cache_store(caf::actor_system& system, cachestore::CacheOptions options,
                                    EmbedderFactory make_embedder) {
  return system.spawn<caf::detached>(cache_store, std::move(options), std::move(make_embedder));
}

Expected<cache_store_actor> open_cache_store(caf::actor_system& system, cachestore::CacheOptions options,
                                             EmbedderFactory make_embedder, std::chrono::milliseconds timeout) {
  auto actor = spawn_cache_store(system, std::move(options), std::move(make_embedder));
  std::optional<Error> failed;
  {
    caf::scoped_actor self{system};
    self->request(actor, caf::duration(timeout), cache_stats_atom::value)
        .receive([](CacheStoreStats&) {}, [&](caf::error& e) { failed = from_caf_error(e); });
  }
  if (failed) {
    caf::anon_send_exit(actor, caf::exit_reason::user_shutdown);
    return *failed;
  }
  return actor;
}

void add_cache_types(caf::actor_system_config& cfg) {
  cfg.add_message_type<CacheKey>("reel.CacheKey");
  cfg.add_message_type<CacheStart>("reel.CacheStart");
  cfg.add_message_type<CacheInsert>("reel.CacheInsert");
  cfg.add_message_type<CacheSteps>("reel.CacheSteps");
  cfg.add_message_type<CacheStoreStats>("reel.CacheStoreStats");
  cfg.add_message_type<cache_store_actor>("reel.cache_store_actor");
}

// ---- clients ---------------------------------------------------------------------------------

Expected<std::vector<int>> LocalCache::capture_steps(int steps) { return cache_.capture_steps(steps); }

Expected<std::optional<cachestore::Hit>> LocalCache::lookup(const cachestore::CompatKey& key, std::string_view prompt) {
  return cache_.lookup(key, prompt);
}

Status LocalCache::insert(const cachestore::CompatKey& key, std::string_view prompt,
                          const std::map<int, cachestore::Latent>& latents, std::span<const uint8_t> object_mask) {
  return cache_.insert(key, prompt, latents, object_mask);
}

namespace {

caf::duration reply_timeout(std::chrono::milliseconds timeout) {
  return timeout.count() > 0 ? caf::duration(timeout) : caf::duration(caf::infinite);
}

Expected<cachestore::Hit> to_hit(CacheStart& start) {
  if (start.kind != static_cast<int32_t>(cachestore::HitKind::whole) &&
      start.kind != static_cast<int32_t>(cachestore::HitKind::composed))
    return make_error(Errc::corrupt_data, "cache lookup: unknown hit kind " + std::to_string(start.kind));
  auto latent = latent_from_wire(start.latent);
  if (!latent) return latent.error();
  cachestore::Hit hit;
  hit.kind = static_cast<cachestore::HitKind>(start.kind);
  hit.start_step = start.start_step;
  hit.similarity = start.similarity;
  hit.latent = std::move(*latent);
  hit.entries = std::move(start.entries);
  hit.sources = std::move(start.sources);
  return hit;
}

}  // namespace

ActorCache::ActorCache(caf::blocking_actor* self, cache_store_actor cache, Options options)
    : self_(self), cache_(std::move(cache)), options_(options) {}

Expected<std::vector<int>> ActorCache::capture_steps(int steps) {
  if (auto it = steps_.find(steps); it != steps_.end()) return it->second;
  Expected<std::vector<int>> result = make_error(Errc::internal, "cache steps: no reply");
  self_->request(cache_, reply_timeout(options_.timeout), cache_steps_atom::value, static_cast<int32_t>(steps))
      .receive([&](CacheSteps& s) { result = std::vector<int>(s.steps.begin(), s.steps.end()); },
               [&](caf::error& e) { result = from_caf_error(e); });
  if (result) steps_[steps] = *result;
  return result;
}

Expected<std::optional<cachestore::Hit>> ActorCache::lookup(const cachestore::CompatKey& key, std::string_view prompt) {
  lookup_error_.reset();
  Expected<std::optional<cachestore::Hit>> result = make_error(Errc::internal, "cache lookup: no reply");
  self_->request(cache_, reply_timeout(options_.timeout), cache_lookup_atom::value, to_cache_key(key),
                 std::string(prompt))
      .receive(
          [&](CacheStart& start) {
            steps_[key.steps] = std::vector<int>(start.capture_steps.begin(), start.capture_steps.end());
            if (!start.hit) {
              result = std::optional<cachestore::Hit>();
              return;
            }
            auto hit = to_hit(start);
            if (hit) result = std::optional<cachestore::Hit>(std::move(*hit));
            else result = hit.error();
          },
          [&](caf::error& e) { result = from_caf_error(e); });
  if (!result && options_.lookup_errors_miss) {
    lookup_error_ = result.error();
    return std::optional<cachestore::Hit>();
  }
  return result;
}

Status ActorCache::insert(const cachestore::CompatKey& key, std::string_view prompt,
                          const std::map<int, cachestore::Latent>& latents, std::span<const uint8_t> object_mask) {
  CacheInsert in;
  in.key = to_cache_key(key);
  in.prompt = std::string(prompt);
  for (const auto& [step, latent] : latents) {
    auto wire = latent_to_wire(latent);
    if (!wire) return wire.error();
    in.steps.push_back(step);
    in.latents.push_back(std::move(*wire));
  }
  in.object_mask.assign(reinterpret_cast<const char*>(object_mask.data()), object_mask.size());
  Status result = make_error(Errc::internal, "cache insert: no reply");
  self_->request(cache_, reply_timeout(options_.timeout), cache_insert_atom::value, std::move(in))
      .receive([&](uint64_t) { result = Status(); }, [&](caf::error& e) { result = from_caf_error(e); });
  return result;
}

}  // namespace reel::actors
