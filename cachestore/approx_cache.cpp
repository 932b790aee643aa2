#include "cachestore/approx_cache.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <mutex>
#include <set>
#include <unordered_map>
#include <utility>

#include "cachestore/ann_index.hpp"
#include "cachestore/index_snapshot.hpp"
#include "cachestore/prompt_parts.hpp"
#include "codecs/tensor.hpp"

namespace reel::cachestore {
namespace {

constexpr const char* kIdfBlob = "embedder/idf";

// What the cache keeps in memory per entry, besides the store's own metadata.
struct EntryInfo {
  EntryKind kind = EntryKind::whole;
  uint64_t key_hash = 0;
  std::vector<int> steps;
  std::string prompt;
};

struct Candidate {
  uint64_t id = 0;
  float similarity = 0;
};

// Compressed entries: per-channel int8 codes limited to 6 bits (63 levels a side) for latents
// in the first 30% of the schedule and 5 bits after, then zstd. An early latent's error has more
// steps to grow in, so it keeps a bit more. Measured on shapes-s (`reel bench cache
// --compression 8`): 6.2x at >= 36.9 dB for 6 bits at 20% of the steps, 7.3x at >= 36.7 dB for
// 5 bits from 40%, PSNR of the finished video against one started from the exact latent. The
// frame delta does not help here: latents this far from the end are mostly per-frame noise.
Expected<std::string> encode_latent(const Latent& latent, bool compress, int step, int steps) {
  codecs::EncodeOptions opts;
  if (compress) {
    opts.quant = codecs::Quant::int8_per_channel;
    opts.channel_axis = 1;
    opts.zstd_level = 9;
    opts.int8_bits = step * 10 <= steps * 3 ? 6 : 5;
  }
  auto encoded = codecs::encode(latent.values, latent.shape, opts);
  if (!encoded.ok()) return encoded.error();
  return codecs::serialize(*encoded);
}

Expected<Latent> decode_latent(std::string_view bytes) {
  auto parsed = codecs::parse(bytes);
  if (!parsed.ok()) return parsed.error();
  auto values = codecs::decode(*parsed);
  if (!values.ok()) return values.error();
  Latent latent{parsed->shape, std::move(*values)};
  if (auto st = check_latent(latent); !st.ok()) return make_error(Errc::corrupt_data, st.error().message);
  return latent;
}

std::string encode_mask(std::span<const uint8_t> mask, const Latent& like) {
  std::vector<float> values(mask.size());
  for (size_t i = 0; i < mask.size(); ++i) values[i] = mask[i] != 0 ? 1.0F : 0.0F;
  codecs::EncodeOptions opts;
  opts.zstd_level = 3;
  auto encoded = codecs::encode(values, {1, 1, like.frames(), like.shape[3], like.shape[4]}, opts);
  return encoded.ok() ? codecs::serialize(*encoded) : std::string();
}

Expected<std::vector<uint8_t>> decode_mask(std::string_view bytes) {
  auto parsed = codecs::parse(bytes);
  if (!parsed.ok()) return parsed.error();
  auto values = codecs::decode(*parsed);
  if (!values.ok()) return values.error();
  std::vector<uint8_t> mask(values->size());
  for (size_t i = 0; i < mask.size(); ++i) mask[i] = (*values)[i] > 0.5F ? 1 : 0;
  return mask;
}

std::vector<int> intersect(std::vector<int> a, const std::vector<int>& b) {
  std::vector<int> out;
  std::sort(a.begin(), a.end());
  std::vector<int> sb = b;
  std::sort(sb.begin(), sb.end());
  std::set_intersection(a.begin(), a.end(), sb.begin(), sb.end(), std::back_inserter(out));
  return out;
}

}  // namespace

const char* hit_kind_name(HitKind kind) {
  switch (kind) {
    case HitKind::whole: return "whole";
    case HitKind::composed: return "composed";
  }
  return "?";
}

struct ApproxCache::State {
  CacheOptions options;
  std::unique_ptr<Embedder> embedder;
  std::unique_ptr<EntryStore> store;
  mutable std::mutex mutex;
  std::map<uint64_t, EntryInfo> entries;
  // One index per (key hash, kind): similarity is only ever judged among compatible entries.
  std::map<std::pair<uint64_t, EntryKind>, std::unique_ptr<AnnIndex>> indexes;
  std::set<std::pair<uint64_t, std::string>> whole_prompts;
  CacheStats stats;
  bool index_dirty = false;  // the indexes changed since they were loaded or saved
  uint64_t added_since_save = 0;  // entries added to the indexes since open or the last save

  // Takes the indexes from a saved snapshot that agrees with the store about every entry both
  // hold, and brings them up to date: entries stored since the save are added (`added`), entries
  // gone since are removed (`removed`). Returns false, with `why` set, when the caller must
  // rebuild; on false nothing here has changed.
  bool load_indexes(const std::vector<EntryMeta>& metas, std::string& why, uint64_t& added, uint64_t& removed);

  // ApproxCache::save_index, with `mutex` held.
  Status save_index();

  AnnIndex& index(uint64_t key_hash, EntryKind kind) {
    auto& slot = indexes[{key_hash, kind}];
    if (!slot) slot = std::make_unique<AnnIndex>(embedder->dim());
    return *slot;
  }

  void forget(uint64_t id) {
    auto it = entries.find(id);
    if (it == entries.end()) return;
    auto idx = indexes.find({it->second.key_hash, it->second.kind});
    if (idx != indexes.end()) idx->second->remove(id);
    index_dirty = true;
    if (it->second.kind == EntryKind::whole) whole_prompts.erase({it->second.key_hash, it->second.prompt});
    entries.erase(it);
  }

  // Drops what the store no longer holds (evicted by an insert, or dropped as corrupt).
  void reconcile() {
    if (store->stats().entries == entries.size()) return;
    ++stats.rescans;
    std::set<uint64_t> live;
    for (const auto& meta : store->entries()) live.insert(meta.id);
    std::vector<uint64_t> gone;
    for (const auto& [id, info] : entries)
      if (!live.contains(id)) gone.push_back(id);
    for (uint64_t id : gone) forget(id);
  }

  void add(uint64_t id, EntryInfo info, std::span<const float> vector) {
    if (!index(info.key_hash, info.kind).add(id, vector).ok()) return;
    index_dirty = true;
    if (info.kind == EntryKind::whole) whole_prompts.insert({info.key_hash, info.prompt});
    entries[id] = std::move(info);
  }

  // The most similar live entry of a kind, or nullopt.
  std::optional<Candidate> nearest(uint64_t key_hash, EntryKind kind, const std::vector<float>& query) {
    auto it = indexes.find({key_hash, kind});
    if (it == indexes.end() || it->second->size() == 0) return std::nullopt;
    auto found = it->second->search(query, 1);
    if (!found.ok() || found->empty()) return std::nullopt;
    return Candidate{found->front().id, found->front().similarity};
  }

  Expected<Latent> read_latent(uint64_t id, int step) {
    auto blob = store->read_blob(id, step);
    if (!blob.ok()) return blob.error();
    auto latent = decode_latent(*blob);
    if (!latent.ok()) {
      // Bytes that passed the store's checksum but not the codec's: drop the entry all the same.
      (void)store->remove(id);
      return latent.error();
    }
    return latent;
  }
};

ApproxCache::ApproxCache(std::unique_ptr<State> state) : state_(std::move(state)) {}
ApproxCache::~ApproxCache() {
  if (!state_ || !state_->options.persist_index) return;
  bool dirty;
  {
    std::lock_guard lock(state_->mutex);
    dirty = state_->index_dirty;
  }
  if (!dirty) return;
  if (auto st = save_index(); !st.ok()) {
    std::fprintf(stderr, "reel: warning: cache index not saved (the next open rebuilds it): %s\n",
                 st.error().message.c_str());
  }
}

Status ApproxCache::save_index() {
  std::lock_guard lock(state_->mutex);
  return state_->save_index();
}

Status ApproxCache::State::save_index() {
  State& s = *this;
  s.reconcile();
  // The metadata now, under the lock that every change to the indexes holds: the snapshot covers
  // exactly these entries. (Entries whose vector the index refused are covered but in no index,
  // as after a rebuild.)
  std::map<uint64_t, uint64_t> covered;
  for (const auto& meta : s.store->entries()) covered[meta.id] = detail::entry_hash(meta);
  std::map<detail::IndexKey, const AnnIndex*> indexes;
  for (const auto& [key, index] : s.indexes) indexes[key] = index.get();
  REEL_RETURN_IF_ERROR(detail::save_snapshot(s.options.path, s.embedder->dim(), covered, indexes));
  s.index_dirty = false;
  s.added_since_save = 0;
  return {};
}

bool ApproxCache::State::load_indexes(const std::vector<EntryMeta>& metas, std::string& why, uint64_t& added,
                                      uint64_t& removed) {
  State& s = *this;
  auto loaded = detail::load_snapshot(s.options.path, s.embedder->dim());
  if (!loaded.ok()) {
    why = loaded.error().message;
    return false;
  }
  std::unordered_map<uint64_t, const EntryMeta*> by_id;
  by_id.reserve(metas.size());
  for (const auto& m : metas) by_id[m.id] = &m;
  std::map<uint64_t, EntryInfo> entries;
  std::set<std::pair<uint64_t, std::string>> whole_prompts;
  std::vector<std::pair<uint64_t, const AnnIndex*>> sample;  // ids to check against the store
  std::vector<std::pair<AnnIndex*, uint64_t>> gone;           // indexed, no longer stored
  for (const auto& [key, index] : loaded->indexes) {
    const std::vector<uint64_t> ids = index->ids();
    for (size_t i = 0; i < ids.size(); ++i) {
      auto cov = loaded->covered.find(ids[i]);
      if (cov == loaded->covered.end() || entries.contains(ids[i])) {
        why = "saved index holds entry " + std::to_string(ids[i]) + " twice or without listing it";
        return false;
      }
      auto it = by_id.find(ids[i]);
      if (it == by_id.end()) {  // evicted or dropped since the save
        gone.emplace_back(index.get(), ids[i]);
        continue;
      }
      const EntryMeta& m = *it->second;
      if (m.key_hash != key.first || m.kind != key.second || detail::entry_hash(m) != cov->second) {
        why = "saved index disagrees with the store about entry " + std::to_string(ids[i]);
        return false;
      }
      entries[m.id] = EntryInfo{m.kind, m.key_hash, m.steps, m.prompt};
      if (m.kind == EntryKind::whole) whole_prompts.insert({m.key_hash, m.prompt});
      // A few vectors per index, spread over it, compared with the store's.
      if (i % std::max<size_t>(1, ids.size() / 8) == 0) sample.emplace_back(ids[i], index.get());
    }
  }
  for (const auto& [id, index] : sample) {
    auto stored = s.store->vector(id);
    auto indexed = index->stored_vector(id);
    if (!stored.ok() || !indexed.ok() || stored->size() != indexed->size()) {
      why = "entry " + std::to_string(id) + "'s vector cannot be checked";
      return false;
    }
    double norm = 0;
    for (float x : *stored) norm += double(x) * x;
    const double scale = norm > 0 ? 1.0 / std::sqrt(norm) : 0.0;
    for (size_t k = 0; k < stored->size(); ++k) {
      if (std::abs((*stored)[k] * scale - (*indexed)[k]) > 1e-5) {
        why = "saved index disagrees with the store's vector of entry " + std::to_string(id);
        return false;
      }
    }
  }
  // Consistent: take it, then bring it up to date with the store.
  for (auto& [index, id] : gone) index->remove(id);
  removed = gone.size();
  for (auto& [key, index] : loaded->indexes) s.indexes[key] = std::move(index);
  s.entries = std::move(entries);
  s.whole_prompts = std::move(whole_prompts);
  added = 0;
  for (const auto& meta : metas) {
    if (loaded->covered.contains(meta.id)) continue;  // indexed, or refused by the index at the save
    auto vector = s.store->vector(meta.id);
    if (!vector.ok()) continue;  // dropped by the store if it failed its check
    s.add(meta.id, EntryInfo{meta.kind, meta.key_hash, meta.steps, meta.prompt}, *vector);
    ++added;
  }
  return true;
}

Expected<std::unique_ptr<ApproxCache>> ApproxCache::open(CacheOptions options, std::unique_ptr<Embedder> embedder) {
  if (options.path.empty()) return make_error(Errc::invalid_argument, "the cache needs a directory (cache.path)");
  if (!embedder) return make_error(Errc::invalid_argument, "the cache needs a prompt embedder");
  if (options.store_fractions.empty()) return make_error(Errc::invalid_argument, "the cache needs at least one step to store");
  for (double f : options.store_fractions) {
    if (!(f > 0.0 && f < 1.0)) {
      return make_error(Errc::invalid_argument, "cache step fractions must lie in (0, 1), got " + std::to_string(f));
    }
  }
  auto store = EntryStore::open(options.path, StoreOptions{.budget_bytes = options.budget_bytes, .policy = options.policy});
  if (!store.ok()) return store.error();
  auto state = std::make_unique<State>();
  state->options = std::move(options);
  state->embedder = std::move(embedder);
  state->store = std::move(*store);
  if (auto* ngram = dynamic_cast<NgramEmbedder*>(state->embedder.get())) {
    auto idf = state->store->get_blob_global(kIdfBlob);
    if (idf.ok()) {
      if (auto st = ngram->load_idf(*idf); !st.ok()) return st.error();
    } else if (idf.error().code != Errc::not_found) {
      return idf.error();
    }
  }
  const std::vector<EntryMeta> metas = state->store->entries();
  std::string why = "persist_index is off";
  uint64_t added = 0, removed = 0;
  if (metas.empty()) {
    state->stats.index_source = "empty";
  } else if (state->options.persist_index && state->load_indexes(metas, why, added, removed)) {
    state->stats.index_source = "loaded";
    if (added + removed > 0) {
      // Entries written or dropped after the last save (the process stopped without closing).
      state->stats.index_source += ", caught up: " + std::to_string(added) + " added, " + std::to_string(removed) + " removed";
      std::fprintf(stderr, "reel: cache index loaded and caught up with the store: %llu entries added, %llu removed\n",
                   static_cast<unsigned long long>(added), static_cast<unsigned long long>(removed));
    }
  } else {
    // "No saved index" is the ordinary first open of an older cache: only a snapshot that was
    // there and did not fit is worth a line.
    if (state->options.persist_index && why != "no saved index") {
      std::fprintf(stderr, "reel: cache index rebuilt: %s\n", why.c_str());
    }
    state->stats.index_source = "rebuilt: " + why;
    for (const auto& meta : metas) {
      auto vector = state->store->vector(meta.id);
      if (!vector.ok()) continue;  // dropped by the store if it failed its check
      state->add(meta.id, EntryInfo{meta.kind, meta.key_hash, meta.steps, meta.prompt}, *vector);
    }
  }
  // A fresh build, or a caught-up one, differs from what is saved (or nothing is saved): save it
  // at close.
  state->index_dirty = state->stats.index_source != "loaded" && !metas.empty();
  state->added_since_save = 0;
  return std::unique_ptr<ApproxCache>(new ApproxCache(std::move(state)));
}

std::vector<int> ApproxCache::capture_steps(int steps) const {
  std::set<int> out;
  for (double f : state_->options.store_fractions) {
    out.insert(std::clamp(static_cast<int>(std::lround(f * steps)), 1, std::max(1, steps - 1)));
  }
  return {out.begin(), out.end()};
}

std::string ApproxCache::embedder_id() const {
  std::string id = state_->embedder->name();
  if (auto* ngram = dynamic_cast<const NgramEmbedder*>(state_->embedder.get()); ngram && ngram->idf_checksum() != 0) {
    id += "+idf:" + std::to_string(ngram->idf_checksum());
  }
  return id;
}

Expected<std::optional<Hit>> ApproxCache::lookup(const CompatKey& given, std::string_view prompt) {
  CompatKey key = given;
  key.embedder = embedder_id();
  const uint64_t key_hash = key.hash();
  State& s = *state_;
  const std::vector<float> query = s.embedder->embed(prompt);
  PromptParts parts;
  std::vector<std::vector<float>> part_queries;
  if (s.options.decoupled) {
    parts = split_prompt(prompt);
    if (parts.split() && parts.objects.size() <= 2) {
      part_queries.push_back(s.embedder->embed(parts.background));
      for (const auto& object : parts.objects) part_queries.push_back(s.embedder->embed(object));
    }
  }

  std::lock_guard lock(s.mutex);
  ++s.stats.lookups;
  // Entries that fail their checksum are dropped; try again without them (a few times at most).
  for (int attempt = 0; attempt < 4; ++attempt) {
    s.reconcile();
    Hit best;
    best.start_step = -1;
    if (auto whole = s.nearest(key_hash, EntryKind::whole, query)) {
      const auto& info = s.entries.at(whole->id);
      int k = s.options.table.start_step(whole->similarity, key.steps, info.steps);
      if (k > 0) best = Hit{HitKind::whole, k, whole->similarity, {}, {whole->id}, {info.prompt}};
    }
    if (!part_queries.empty()) {
      std::vector<Candidate> picks;
      if (auto bg = s.nearest(key_hash, EntryKind::background, part_queries[0])) picks.push_back(*bg);
      for (size_t o = 1; o < part_queries.size() && picks.size() == o; ++o) {
        if (auto obj = s.nearest(key_hash, EntryKind::object, part_queries[o])) picks.push_back(*obj);
      }
      if (picks.size() == part_queries.size()) {
        float similarity = 1.0F;
        std::vector<int> steps = s.entries.at(picks[0].id).steps;
        for (const auto& p : picks) {
          similarity = std::min(similarity, p.similarity);
          steps = intersect(steps, s.entries.at(p.id).steps);
        }
        int k = s.options.table.start_step(similarity, key.steps, steps);
        if (k > best.start_step) {
          best = Hit{HitKind::composed, k, similarity, {}, {}, {}};
          for (const auto& p : picks) {
            best.entries.push_back(p.id);
            best.sources.push_back(s.entries.at(p.id).prompt);
          }
        }
      }
    }
    if (best.start_step <= 0) break;

    bool damaged = false;
    auto latent = s.read_latent(best.entries[0], best.start_step);
    if (!latent.ok()) {
      if (latent.error().code != Errc::corrupt_data) return latent.error();
      damaged = true;
    }
    for (size_t i = 1; !damaged && i < best.entries.size(); ++i) {
      auto object = s.read_latent(best.entries[i], best.start_step);
      auto mask = object.ok() ? s.store->read_mask(best.entries[i]) : Expected<std::string>(object.error());
      auto cells = mask.ok() ? decode_mask(*mask) : Expected<std::vector<uint8_t>>(mask.error());
      if (!cells.ok() || !check_latent(*object, *cells).ok() || object->shape != latent->shape) {
        if (cells.ok() || cells.error().code == Errc::corrupt_data) {
          (void)s.store->remove(best.entries[i]);
          damaged = true;
          continue;
        }
        return cells.error();
      }
      *latent = blend(*latent, *object, *cells);
    }
    if (damaged) continue;
    best.latent = std::move(*latent);
    for (uint64_t id : best.entries) s.store->record_hit(id, best.start_step);
    (best.kind == HitKind::whole ? s.stats.whole_hits : s.stats.composed_hits)++;
    s.stats.steps_saved += static_cast<uint64_t>(best.start_step);
    return std::optional<Hit>(std::move(best));
  }
  s.store->record_miss();
  ++s.stats.misses;
  return std::optional<Hit>();
}

Status ApproxCache::insert(const CompatKey& given, std::string_view prompt, const std::map<int, Latent>& latents,
                           std::span<const uint8_t> object_mask) {
  State& s = *state_;
  if (!s.options.inserts) return {};
  if (latents.empty()) return make_error(Errc::invalid_argument, "nothing to insert: no latents");
  const Latent& first = latents.begin()->second;
  for (const auto& [step, latent] : latents) {
    REEL_RETURN_IF_ERROR(check_latent(latent, object_mask));
    if (latent.shape != first.shape) return make_error(Errc::invalid_argument, "latents of one insert differ in shape");
    if (step < 1 || step >= given.steps) {
      return make_error(Errc::invalid_argument, "cached step " + std::to_string(step) + " outside [1, " +
                                                    std::to_string(given.steps) + ")");
    }
  }
  CompatKey key = given;
  key.embedder = embedder_id();
  const uint64_t key_hash = key.hash();
  const std::string canonical = key.canonical();

  struct Pending {
    EntryKind kind;
    std::string phrase;
    std::map<int, std::string> blobs;
    std::string mask;
  };
  std::vector<Pending> pending;
  auto encode_all = [&](EntryKind kind, std::string phrase, auto transform, std::string mask) -> Status {
    Pending p{kind, std::move(phrase), {}, std::move(mask)};
    for (const auto& [step, latent] : latents) {
      auto blob = encode_latent(transform(latent), s.options.compress, step, given.steps);
      if (!blob.ok()) return blob.error();
      p.blobs[step] = std::move(*blob);
    }
    pending.push_back(std::move(p));
    return {};
  };
  REEL_RETURN_IF_ERROR(encode_all(EntryKind::whole, std::string(prompt), [](const Latent& l) { return l; }, {}));
  if (s.options.decoupled && !object_mask.empty()) {
    PromptParts parts = split_prompt(prompt);
    if (parts.split()) {
      REEL_RETURN_IF_ERROR(encode_all(EntryKind::background, parts.background,
                                      [&](const Latent& l) { return background_plate(l, object_mask); }, {}));
      // A mask covers every object; only a one-object prompt gives an object entry of its own.
      if (parts.objects.size() == 1) {
        REEL_RETURN_IF_ERROR(encode_all(EntryKind::object, parts.objects[0],
                                        [&](const Latent& l) { return object_layer(l, object_mask); },
                                        encode_mask(object_mask, first)));
      }
    }
  }

  std::vector<std::vector<float>> vectors;
  for (const auto& p : pending) vectors.push_back(s.embedder->embed(p.phrase));
  std::lock_guard lock(s.mutex);
  for (size_t i = 0; i < pending.size(); ++i) {
    auto& p = pending[i];
    EntryMeta meta;
    meta.key = canonical;
    meta.kind = p.kind;
    meta.prompt = std::string(prompt);
    meta.phrase = p.phrase;
    auto id = s.store->insert(std::move(meta), vectors[i], p.blobs, std::move(p.mask));
    if (!id.ok()) {
      s.reconcile();
      return id.error();
    }
    std::vector<int> steps;
    for (const auto& [step, blob] : p.blobs) steps.push_back(step);
    // Add first: reconciling before would see one entry missing and rescan the whole store.
    s.add(*id, EntryInfo{p.kind, key_hash, std::move(steps), std::string(prompt)}, vectors[i]);
    s.reconcile();
    ++s.stats.entries_inserted;
    ++s.added_since_save;
  }
  if (s.options.persist_index && s.options.index_save_every > 0 && s.added_since_save >= s.options.index_save_every &&
      s.added_since_save * 10 >= s.entries.size()) {
    // A process killed now leaves the next open at most max(index_save_every, a tenth of the
    // entries) to add; saving only after a tenth keeps the bytes written linear in the entries.
    if (auto st = s.save_index(); !st.ok()) {
      std::fprintf(stderr, "reel: warning: cache index not saved: %s\n", st.error().message.c_str());
      s.added_since_save = 0;  // try again after as many more, not on every insert
    }
  }
  return {};
}

bool ApproxCache::contains(const CompatKey& given, std::string_view prompt) const {
  CompatKey key = given;
  key.embedder = embedder_id();
  std::lock_guard lock(state_->mutex);
  return state_->whole_prompts.contains({key.hash(), std::string(prompt)});
}

Status ApproxCache::fit_embedder(std::span<const std::string> corpus) {
  auto* ngram = dynamic_cast<NgramEmbedder*>(state_->embedder.get());
  if (ngram == nullptr) return make_error(Errc::unsupported, "embedder " + state_->embedder->name() + " has nothing to fit");
  std::lock_guard lock(state_->mutex);
  if (!state_->entries.empty()) {
    return make_error(Errc::invalid_argument, "the embedder can only be fitted while the cache is empty (" +
                                                  std::to_string(state_->entries.size()) + " entries stored)");
  }
  ngram->fit(corpus);
  return state_->store->put_blob_global(kIdfBlob, ngram->serialize_idf());
}

CacheStats ApproxCache::stats() const {
  std::lock_guard lock(state_->mutex);
  CacheStats out = state_->stats;
  out.store = state_->store->stats();
  return out;
}

}  // namespace reel::cachestore
