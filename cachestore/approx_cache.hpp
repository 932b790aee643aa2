// The approximate cache (NIRVANA + FlexCache): a new request starts from the intermediate latent
// of a similar earlier one and skips the steps before it. Entries are whole generations, and,
// apart, their backgrounds (objects removed) and objects (with a mask): a request whose background
// matches one entry and whose object matches another starts from the blend of the two.
//
// Entries live in RocksDB (EntryStore), compressed by codecs (per-channel int8 + zstd by
// default), under a byte budget kept by a replacement policy. Prompt vectors are searched in one
// nearest-neighbour index per compatibility key and entry kind, saved at close and loaded at open
// when it matches the store (rebuilt from the stored vectors otherwise), so a hit can never cross keys (model, weights, schedule, size, frames, guidance, tenant, ...).
//
// Thread-safety: lookup, insert, contains and stats may be called from any thread; one mutex
// guards the indexes and the in-memory entry table.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/expected.hpp"
#include "cachestore/cache_key.hpp"
#include "cachestore/compose.hpp"
#include "cachestore/embedder.hpp"
#include "cachestore/entry_store.hpp"
#include "cachestore/policy.hpp"
#include "cachestore/start_step.hpp"

namespace reel::cachestore {

struct CacheOptions {
  std::string path;                         // RocksDB directory; created when missing
  uint64_t budget_bytes = 256ull << 20;     // entry bytes kept at most; default 256 MiB
  PolicyKind policy = PolicyKind::cost_aware;  // default cost_aware
  // Steps at which every generation stores its latent, as fractions of the schedule (rounded,
  // at least step 1); default 0.2, 0.4, 0.6.
  std::vector<double> store_fractions{0.2, 0.4, 0.6};
  StartStepTable table = StartStepTable::defaults();  // similarity -> start step; see start_step.hpp
  bool decoupled = true;  // also store and look up backgrounds and objects apart; default true
  bool compress = true;   // per-channel int8 + zstd; false stores exact float32; default true
  bool inserts = true;    // false: look up only; default true
  // Save the nearest-neighbour indexes in the cache directory when the cache closes (and on
  // save_index()), and load them at open instead of rebuilding them from the stored vectors,
  // adding what was stored since the save; see index_snapshot.hpp. Default true.
  bool persist_index = true;
  // With persist_index, also save the indexes once this many entries, and at least a tenth of
  // all entries, are new since the last save (0: only at close), so that a process killed
  // without closing leaves little for the next open to add. A save writes every index (about
  // dim x 4 bytes per entry); the tenth keeps the bytes written linear in the entries. Default 1000.
  uint64_t index_save_every = 1000;
};

enum class HitKind { whole, composed };
[[nodiscard]] const char* hit_kind_name(HitKind kind);

struct Hit {
  HitKind kind = HitKind::whole;
  int start_step = 0;       // the latent is at this step of the schedule
  float similarity = 0.0F;  // of the whole prompt, or the lowest of the parts for a composed hit
  Latent latent;            // [1, C, F, H, W]
  std::vector<uint64_t> entries;     // the entries it came from (background first when composed)
  std::vector<std::string> sources;  // their prompts
};

struct CacheStats {
  uint64_t lookups = 0, whole_hits = 0, composed_hits = 0, misses = 0;
  uint64_t steps_saved = 0;       // sum of the start steps of all hits
  uint64_t entries_inserted = 0;  // entries (whole, object, background) written since open
  uint64_t rescans = 0;           // full scans of the store's metadata (after evictions or drops)
  // How open got its indexes: "loaded" (a saved snapshot that matched the store), "loaded, caught
  // up: A added, R removed" (a saved snapshot brought up to date), "empty" (no entries), or
  // "rebuilt: " and why (no snapshot, a damaged one or one of another dimension, persist_index off).
  std::string index_source;
  StoreStats store;
};

class ApproxCache {
 public:
  // Opens (or creates) the cache at options.path. The embedder's fitted state (an n-gram
  // embedder's IDF table) is read from the store when one was saved. Errors: as EntryStore::open,
  // and invalid_argument for bad options (no path, fractions outside (0, 1)).
  [[nodiscard]] static Expected<std::unique_ptr<ApproxCache>> open(CacheOptions options,
                                                                   std::unique_ptr<Embedder> embedder);
  ~ApproxCache();
  ApproxCache(const ApproxCache&) = delete;
  ApproxCache& operator=(const ApproxCache&) = delete;

  // The steps whose latents a generation of `steps` steps should hand to insert().
  [[nodiscard]] std::vector<int> capture_steps(int steps) const;

  // The best start point for `prompt` under `key`, or nullopt (a miss). Hits and misses are
  // counted; an entry that fails its checksum is dropped and the lookup goes on without it.
  [[nodiscard]] Expected<std::optional<Hit>> lookup(const CompatKey& key, std::string_view prompt);

  // Stores the latents a generation of `prompt` passed through (step -> [1, C, F, H, W]). With
  // decoupling on and an object mask ([F, H, W], non-zero on the objects) for a prompt that
  // splits, the background plate is stored too and, for a prompt with one object, the object
  // layer with its mask. Errors: invalid_argument for mismatched shapes; io_error when the store
  // refuses writes (the caller's job still completes: inserts are best effort).
  [[nodiscard]] Status insert(const CompatKey& key, std::string_view prompt,
                              const std::map<int, Latent>& latents, std::span<const uint8_t> object_mask = {});

  // Whether `prompt` is stored whole under `key` (warming skips what is cached).
  [[nodiscard]] bool contains(const CompatKey& key, std::string_view prompt) const;

  // Fits the n-gram embedder's IDF on `corpus` and saves it with the cache. Only while the cache
  // is empty (stored vectors would stop being comparable): invalid_argument otherwise, and
  // unsupported for an embedder that has nothing to fit.
  [[nodiscard]] Status fit_embedder(std::span<const std::string> corpus);

  // The embedder's name with its fitted state: what CompatKey::embedder is set to.
  [[nodiscard]] std::string embedder_id() const;

  [[nodiscard]] CacheStats stats() const;

  // Saves the indexes now (the destructor does it too, when persist_index is on and anything
  // changed since open). A crash after later inserts leaves a stale snapshot, which the next
  // open detects and rebuilds from. Errors: io_error.
  [[nodiscard]] Status save_index();

 private:
  struct State;
  explicit ApproxCache(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace reel::cachestore
