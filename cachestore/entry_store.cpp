// EntryStore's operations on an open database: insert with eviction, checked reads, hits.
// Opening, repair and loading live in entry_store_open.cpp.
#include "cachestore/entry_store.hpp"

#include <rocksdb/env.h>

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "cachestore/cache_key.hpp"
#include "cachestore/entry_format.hpp"
#include "cachestore/entry_store_state.hpp"
#include "codecs/checksum.hpp"

namespace reel::cachestore {
namespace detail {

StoreState::~StoreState() { close_db(); }

EntryMeta* StoreState::find(uint64_t id) {
  auto it = index.find(id);
  return it == index.end() ? nullptr : &metas[it->second];
}

void StoreState::add(EntryMeta meta) {
  bytes += meta.bytes;
  index[meta.id] = metas.size();
  metas.push_back(std::move(meta));
}

void StoreState::erase(uint64_t id) {
  auto it = index.find(id);
  if (it == index.end()) return;
  size_t pos = it->second;
  bytes -= metas[pos].bytes;
  index.erase(it);
  if (pos + 1 != metas.size()) {
    metas[pos] = std::move(metas.back());
    index[metas[pos].id] = pos;
  }
  metas.pop_back();
}

void StoreState::delete_entry(rocksdb::WriteBatch& batch, const EntryMeta& meta) const {
  // Point deletes, not a range delete: range tombstones slow every later read until compacted.
  // WriteBatch::Delete fails only for keys over 4 GiB; ours are 8 or 12 bytes.
  rocksdb::Status ignored;
  for (int step : meta.steps) ignored = batch.Delete(cfs[kEntriesCf], blob_key(meta.id, step));
  if (meta.has_mask) ignored = batch.Delete(cfs[kEntriesCf], blob_key(meta.id, kMaskStep));
  ignored = batch.Delete(cfs[kVectorsCf], id_key(meta.id));
  ignored = batch.Delete(cfs[kMetaCf], id_key(meta.id));
}

rocksdb::Status StoreState::write(rocksdb::WriteBatch& batch) {
  // sync = false: a crash of the process loses nothing, a crash of the machine may lose the
  // last writes, and the log keeps each batch all-or-nothing. Acceptable for a cache.
  rocksdb::Status status = db->Write(rocksdb::WriteOptions(), &batch);
  if (!status.ok()) disable_inserts(status.ToString());
  return status;
}

void StoreState::disable_inserts(std::string_view why) {
  if (!counters.inserts_enabled) return;
  counters.inserts_enabled = false;
  std::fprintf(stderr, "reel: warning: cache inserts disabled: %.*s\n",
               static_cast<int>(why.size()), why.data());
}

Error StoreState::drop_corrupted(uint64_t id, std::string_view why, bool by_rocksdb) {
  std::string message = "cache entry " + std::to_string(id) + ": " + std::string(why);
  if (by_rocksdb) mark_for_repair(message);
  const EntryMeta* meta = find(id);
  if (meta == nullptr) return make_error(Errc::corrupt_data, message);  // already dropped
  std::fprintf(stderr, "reel: warning: dropping corrupted %s\n", message.c_str());
  rocksdb::WriteBatch batch;
  delete_entry(batch, *meta);
  // Dropped from memory even when the delete fails: it is never served again, and the next
  // open finds the damage again.
  rocksdb::Status ignored = write(batch);
  (void)ignored;
  erase(id);
  ++counters.corrupted;
  return make_error(Errc::corrupt_data, message);
}

void StoreState::mark_for_repair(std::string_view why) {
  if (repair_marked) return;
  repair_marked = true;
  // Best effort: without the marker the damage is found again when it is next read.
  rocksdb::Status ignored = rocksdb::WriteStringToFile(
      env, rocksdb::Slice(why.data(), why.size()), path + "/" + std::string(kRepairMarker),
      /*should_sync=*/true);
  (void)ignored;
}

void StoreState::close_db() {
  if (!db) return;
  // Flushed so that the next open replays no log. A failure (disk full) loses nothing: the
  // log still holds what the memtables did.
  std::vector<rocksdb::ColumnFamilyHandle*> handles(cfs.begin(), cfs.end());
  rocksdb::Status ignored = db->Flush(rocksdb::FlushOptions(), handles);
  for (auto* handle : cfs) ignored = db->DestroyColumnFamilyHandle(handle);
  cfs.clear();
  ignored = db->Close();
  (void)ignored;
  db.reset();
}

Error to_error(const rocksdb::Status& status, std::string_view context) {
  std::string message = std::string(context) + ": " + status.ToString();
  if (status.IsNotFound()) return make_error(Errc::not_found, message);
  if (status.IsCorruption()) return make_error(Errc::corrupt_data, message);
  if (status.IsIOError()) return make_error(Errc::io_error, message);
  if (status.IsInvalidArgument()) return make_error(Errc::invalid_argument, message);
  if (status.IsNotSupported()) return make_error(Errc::unsupported, message);
  return make_error(Errc::internal, message);
}

namespace {

// A blob or mask read outside the mutex, then checked. Reads run unlocked so that
// readers do not queue behind each other's I/O; whether the entry still exists is decided
// under the mutex, after the read, because writes change memory and disk under it together.
Expected<std::string> read_checked(StoreState& s, uint64_t id, int step) {
  {
    std::lock_guard lock(s.mu);
    const EntryMeta* meta = s.find(id);
    if (meta == nullptr) {
      return make_error(Errc::not_found, "no cache entry " + std::to_string(id));
    }
    bool stored = step == kMaskStep
                      ? meta->has_mask
                      : std::binary_search(meta->steps.begin(), meta->steps.end(), step);
    if (!stored) {
      return make_error(Errc::not_found, "cache entry " + std::to_string(id) + " has no " +
                                             (step == kMaskStep ? std::string("mask")
                                                                : "step " + std::to_string(step)));
    }
  }
  rocksdb::ReadOptions read_options;
  read_options.fill_cache = false;  // a latent is read once per hit; the page cache suffices
  rocksdb::PinnableSlice value;
  rocksdb::Status status =
      s.db->Get(read_options, s.cfs[kEntriesCf], blob_key(id, step), &value);
  std::string what = step == kMaskStep ? "mask" : "blob of step " + std::to_string(step);
  if (status.ok()) {
    auto bytes = unseal(value.ToStringView(), blob_seed(id, step));
    if (bytes) return std::string(*bytes);
    std::lock_guard lock(s.mu);
    return s.drop_corrupted(id, what + " failed its checksum", false);
  }
  std::lock_guard lock(s.mu);
  if (status.IsNotFound()) {
    if (s.find(id) == nullptr) {
      return make_error(Errc::not_found, "cache entry " + std::to_string(id) + " was removed");
    }
    return s.drop_corrupted(id, what + " is missing", false);
  }
  if (status.IsCorruption()) return s.drop_corrupted(id, what + ": " + status.ToString(), true);
  return to_error(status, "reading cache entry " + std::to_string(id));
}

int64_t now_unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace
}  // namespace detail

using detail::StoreState;

EntryStore::EntryStore(std::unique_ptr<StoreState> state) : state_(std::move(state)) {}

EntryStore::~EntryStore() = default;

Expected<uint64_t> EntryStore::insert(EntryMeta meta, std::span<const float> vector,
                                      const std::map<int, std::string>& blobs_by_step,
                                      std::string mask_blob) {
  if (blobs_by_step.empty()) {
    return make_error(Errc::invalid_argument, "a cache entry stores at least one step");
  }
  meta.steps.clear();
  uint64_t payload = 0;
  for (const auto& [step, blob] : blobs_by_step) {
    if (step < 0) {
      return make_error(Errc::invalid_argument,
                        "cache entry step " + std::to_string(step) + " is negative");
    }
    meta.steps.push_back(step);
    payload += blob.size();
  }
  payload += mask_blob.size() + sizeof(float) * vector.size() + meta.key.size() +
             meta.prompt.size() + meta.phrase.size();
  meta.bytes = payload;
  meta.has_mask = !mask_blob.empty();
  meta.key_hash = compat_hash(meta.key);
  if (meta.created_unix_ms == 0) meta.created_unix_ms = detail::now_unix_ms();

  StoreState& s = *state_;
  std::lock_guard lock(s.mu);
  if (!s.counters.inserts_enabled) {
    ++s.counters.insert_failures;
    return make_error(Errc::io_error, "cache inserts are off after an earlier write error");
  }
  if (meta.bytes > s.options.budget_bytes) {
    return make_error(Errc::invalid_argument,
                      "cache entry of " + std::to_string(meta.bytes) +
                          " bytes exceeds the budget of " +
                          std::to_string(s.options.budget_bytes) + " bytes");
  }
  meta.id = s.next_id;
  meta.last_access = s.clock + 1;

  std::vector<uint64_t> victims;
  if (s.bytes + meta.bytes > s.options.budget_bytes) {
    victims = choose_victims(s.metas, s.bytes + meta.bytes - s.options.budget_bytes,
                             s.options.policy);
  }
  rocksdb::WriteBatch batch;
  rocksdb::Status built;  // the first failure of a Put (a value over 4 GiB)
  auto keep = [&built](const rocksdb::Status& status) {
    if (built.ok()) built = status;
  };
  for (uint64_t victim : victims) s.delete_entry(batch, *s.find(victim));
  for (const auto& [step, blob] : blobs_by_step) {
    std::string key = detail::blob_key(meta.id, step);
    std::string checksum =
        detail::encode_u64(codecs::checksum64(blob, detail::blob_seed(meta.id, step)));
    // Checksum and bytes as two parts: the blob is copied once, into the batch.
    rocksdb::Slice key_part(key);
    rocksdb::Slice value_parts[2] = {rocksdb::Slice(checksum), rocksdb::Slice(blob)};
    keep(batch.Put(s.cfs[detail::kEntriesCf], rocksdb::SliceParts(&key_part, 1),
                   rocksdb::SliceParts(value_parts, 2)));
  }
  if (meta.has_mask) {
    keep(batch.Put(s.cfs[detail::kEntriesCf], detail::blob_key(meta.id, detail::kMaskStep),
                   detail::seal(mask_blob, detail::blob_seed(meta.id, detail::kMaskStep))));
  }
  keep(batch.Put(s.cfs[detail::kVectorsCf], detail::id_key(meta.id),
                 detail::encode_vector(meta.id, vector)));
  keep(batch.Put(s.cfs[detail::kMetaCf], detail::id_key(meta.id), detail::encode_meta(meta)));
  keep(batch.Put(s.cfs[detail::kDefaultCf], detail::kNextIdKey,
                 detail::encode_u64(meta.id + 1)));
  if (!built.ok()) return detail::to_error(built, "cache insert");
  rocksdb::Status status = s.write(batch);
  if (!status.ok()) {
    ++s.counters.insert_failures;
    return detail::to_error(status, "cache insert");
  }
  for (uint64_t victim : victims) s.erase(victim);
  s.counters.evictions += victims.size();
  ++s.counters.inserts;
  s.next_id = meta.id + 1;
  s.clock = meta.last_access;
  uint64_t id = meta.id;
  s.add(std::move(meta));
  return id;
}

Expected<std::string> EntryStore::read_blob(uint64_t id, int step) {
  if (step < 0) {
    return make_error(Errc::not_found, "cache step " + std::to_string(step) + " is negative");
  }
  return detail::read_checked(*state_, id, step);
}

Expected<std::string> EntryStore::read_mask(uint64_t id) {
  return detail::read_checked(*state_, id, detail::kMaskStep);
}

void EntryStore::record_hit(uint64_t id, double steps_saved) {
  StoreState& s = *state_;
  std::lock_guard lock(s.mu);
  ++s.counters.hits;
  EntryMeta* meta = s.find(id);
  if (meta == nullptr) return;
  ++meta->hits;
  if (steps_saved > 0) meta->compute_saved += steps_saved;  // NaN and negatives add nothing
  meta->last_access = ++s.clock;
  rocksdb::WriteBatch batch;
  rocksdb::Status status =
      batch.Put(s.cfs[detail::kMetaCf], detail::id_key(id), detail::encode_meta(*meta));
  // A failure turns inserts off; the hit still counts in memory for this session.
  if (status.ok()) status = s.write(batch);
  (void)status;
}

void EntryStore::record_miss() {
  std::lock_guard lock(state_->mu);
  ++state_->counters.misses;
}

std::vector<EntryMeta> EntryStore::entries() const {
  std::lock_guard lock(state_->mu);
  std::vector<EntryMeta> out = state_->metas;
  std::sort(out.begin(), out.end(),
            [](const EntryMeta& a, const EntryMeta& b) { return a.id < b.id; });
  return out;
}

Expected<std::vector<float>> EntryStore::vector(uint64_t id) const {
  StoreState& s = *state_;
  {
    std::lock_guard lock(s.mu);
    if (s.find(id) == nullptr) {
      return make_error(Errc::not_found, "no cache entry " + std::to_string(id));
    }
  }
  rocksdb::PinnableSlice value;
  rocksdb::Status status =
      s.db->Get(rocksdb::ReadOptions(), s.cfs[detail::kVectorsCf], detail::id_key(id), &value);
  if (status.ok()) {
    auto values = detail::decode_vector(id, value.ToStringView());
    if (values.ok()) return values;
    std::lock_guard lock(s.mu);
    return s.drop_corrupted(id, "prompt vector failed its checksum", false);
  }
  std::lock_guard lock(s.mu);
  if (status.IsNotFound()) {
    if (s.find(id) == nullptr) {
      return make_error(Errc::not_found, "cache entry " + std::to_string(id) + " was removed");
    }
    return s.drop_corrupted(id, "prompt vector is missing", false);
  }
  if (status.IsCorruption()) return s.drop_corrupted(id, "prompt vector: " + status.ToString(), true);
  return detail::to_error(status, "reading the vector of cache entry " + std::to_string(id));
}

Status EntryStore::remove(uint64_t id) {
  StoreState& s = *state_;
  std::lock_guard lock(s.mu);
  const EntryMeta* meta = s.find(id);
  if (meta == nullptr) return make_error(Errc::not_found, "no cache entry " + std::to_string(id));
  rocksdb::WriteBatch batch;
  s.delete_entry(batch, *meta);
  rocksdb::Status status = s.write(batch);
  if (!status.ok()) return detail::to_error(status, "removing cache entry " + std::to_string(id));
  s.erase(id);
  return {};
}

StoreStats EntryStore::stats() const {
  std::lock_guard lock(state_->mu);
  StoreStats out = state_->counters;
  out.entries = state_->metas.size();
  out.bytes = state_->bytes;
  return out;
}

Status EntryStore::put_blob_global(std::string_view name, std::string_view bytes) {
  if (name.empty()) return make_error(Errc::invalid_argument, "a global blob needs a name");
  StoreState& s = *state_;
  std::string key = std::string(detail::kGlobalPrefix) + std::string(name);
  std::lock_guard lock(s.mu);
  rocksdb::WriteBatch batch;
  rocksdb::Status status =
      batch.Put(s.cfs[detail::kDefaultCf], key, detail::seal(bytes, detail::global_seed(name)));
  if (status.ok()) status = s.write(batch);
  if (!status.ok()) return detail::to_error(status, "writing global blob '" + std::string(name) + "'");
  return {};
}

Expected<std::string> EntryStore::get_blob_global(std::string_view name) {
  StoreState& s = *state_;
  std::string key = std::string(detail::kGlobalPrefix) + std::string(name);
  rocksdb::PinnableSlice value;
  rocksdb::Status status = s.db->Get(rocksdb::ReadOptions(), s.cfs[detail::kDefaultCf], key, &value);
  std::string context = "global blob '" + std::string(name) + "'";
  if (status.IsCorruption()) {
    std::lock_guard lock(s.mu);
    s.mark_for_repair(context + ": " + status.ToString());
  }
  if (!status.ok()) return detail::to_error(status, context);
  auto bytes = detail::unseal(value.ToStringView(), detail::global_seed(name));
  // Left in place: the caller rebuilds it and put_blob_global overwrites it.
  if (!bytes) return make_error(Errc::corrupt_data, context + " failed its checksum");
  return std::string(*bytes);
}

}  // namespace reel::cachestore
