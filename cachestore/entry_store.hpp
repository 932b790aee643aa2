// Cache entries in RocksDB: latents by step, prompt vectors and metadata, under a byte budget
// kept by a replacement policy. Everything it serves is checksummed; what fails a check is
// dropped and reported as corrupt_data, which callers treat as a miss.
//
// On disk, one RocksDB database with four column families:
//   entries  be64(id) be32(step) -> checksum64(bytes, id ^ step) (8 bytes, LE) + bytes;
//            the mask blob is stored at step 0xFFFFFFFF
//   meta     be64(id) -> EntryMeta in a compact binary form with its own checksum
//   vectors  be64(id) -> checksum + little-endian float32 values
//   default  "next_id", "format", and "global/<name>" -> checksum + bytes
// Metadata is read into memory at open; lookups never touch the disk for it.
//
// Thread safety: every public method may be called from any thread. One mutex guards the
// in-memory metadata, the counters and every write, so that the order of writes on disk is the
// order of the in-memory changes. Blob and vector reads run outside the mutex (RocksDB reads
// are thread-safe): readers do not wait for each other's I/O.
//
// Failures: the first RocksDB write error (disk full, I/O error, a DB stopped by a background
// error) turns inserts off for the life of this object, with one line on stderr
// ("reel: warning: cache inserts disabled: ..."); reads keep working. Reopen to turn them on.
// Corruption reported by RocksDB also leaves a marker file in the directory: the next open runs
// RocksDB's repair, which sets aside the damaged table files (their entries are lost; the cache
// refills) so that compaction never runs into the damage again.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/expected.hpp"
#include "cachestore/entry_meta.hpp"
#include "cachestore/policy.hpp"

namespace rocksdb {
class Env;
}

namespace reel::cachestore {
namespace detail {
struct StoreState;  // entry_store_state.hpp, private to cachestore
}

struct StoreOptions {
  // Payload bytes (EntryMeta::bytes, summed) the store keeps at most; an insert evicts by
  // `policy` to stay under it. RocksDB's own overhead comes on top. Default: 1 GiB.
  uint64_t budget_bytes = 1ull << 30;
  // Which entries leave first. Default: cost_aware.
  PolicyKind policy = PolicyKind::cost_aware;
  // Create the database when the directory holds none; otherwise open fails with not_found.
  // Default: true.
  bool create_if_missing = true;
  // The Env RocksDB runs on; not owned, must outlive the store. Tests pass one that fails
  // writes on demand. Default: nullptr (rocksdb::Env::Default()).
  rocksdb::Env* env = nullptr;
};

struct StoreStats {
  uint64_t entries = 0;          // entries stored now
  uint64_t bytes = 0;            // their payload bytes (EntryMeta::bytes, summed)
  uint64_t inserts = 0;          // successful inserts since open
  uint64_t evictions = 0;        // entries evicted by the policy since open
  uint64_t hits = 0;             // record_hit calls since open
  uint64_t misses = 0;           // record_miss calls since open
  uint64_t corrupted = 0;        // entries dropped because their bytes failed a check
  uint64_t insert_failures = 0;  // inserts refused by a write error or because inserts are off
  bool inserts_enabled = true;
};

class EntryStore {
 public:
  // Opens (or creates) the store in directory `path`. Errors: invalid_argument (empty path),
  // not_found (no database and create_if_missing is false), corrupt_data (damage that repair
  // could not fix), unsupported (a store written by a newer format), io_error.
  [[nodiscard]] static Expected<std::unique_ptr<EntryStore>> open(const std::string& path,
                                                                  StoreOptions options);
  // Flushes memtables (so that reopening replays no log) and closes the database.
  ~EntryStore();
  EntryStore(const EntryStore&) = delete;
  EntryStore& operator=(const EntryStore&) = delete;

  // Stores one entry in a single atomic write: metadata, prompt vector, one blob per step in
  // `blobs_by_step` (at least one; steps >= 0), and the mask blob when not empty. Entries the
  // policy picks are evicted in the same write when the budget needs room. From `meta` the
  // caller sets key, kind, prompt, phrase and optionally hits, compute_saved and
  // created_unix_ms (0 = now); the store sets id, key_hash, steps, bytes, last_access and
  // has_mask. Returns the new id. Errors: invalid_argument (no blobs, a negative step, an entry
  // larger than the budget), io_error (the write failed or inserts are off).
  [[nodiscard]] Expected<uint64_t> insert(EntryMeta meta, std::span<const float> vector,
                                          const std::map<int, std::string>& blobs_by_step,
                                          std::string mask_blob = {});

  // The blob stored for `step` (the mask for read_mask), checksum verified. Errors: not_found
  // (no such entry, step or mask), corrupt_data (the entry failed a check and has been
  // dropped), io_error (RocksDB could not read; the entry is kept).
  [[nodiscard]] Expected<std::string> read_blob(uint64_t id, int step);
  [[nodiscard]] Expected<std::string> read_mask(uint64_t id);

  // hits += 1, compute_saved += steps_saved, last_access = now (logical clock); persisted.
  // An id that is no longer stored is ignored (it may have been evicted since the lookup).
  void record_hit(uint64_t id, double steps_saved);
  void record_miss();

  // All entries' metadata, ascending by id (from memory).
  [[nodiscard]] std::vector<EntryMeta> entries() const;
  // The entry's prompt vector. Errors as read_blob's: a vector that fails its checksum drops
  // its entry too (the store is const for what it serves, not for what it discards).
  [[nodiscard]] Expected<std::vector<float>> vector(uint64_t id) const;

  // Deletes one entry. not_found when it is not stored; io_error when the write failed.
  [[nodiscard]] Status remove(uint64_t id);

  [[nodiscard]] StoreStats stats() const;

  // Small named blobs outside the budget and the policy (e.g. the embedder's IDF table),
  // checksummed like entries. get_blob_global: not_found, corrupt_data, io_error.
  [[nodiscard]] Status put_blob_global(std::string_view name, std::string_view bytes);
  [[nodiscard]] Expected<std::string> get_blob_global(std::string_view name);

 private:
  explicit EntryStore(std::unique_ptr<detail::StoreState> state);
  std::unique_ptr<detail::StoreState> state_;
};

}  // namespace reel::cachestore
