// EntryStore's state and the helpers its two source files share. Private to cachestore.
#pragma once

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/expected.hpp"
#include "cachestore/entry_meta.hpp"
#include "cachestore/entry_store.hpp"

namespace reel::cachestore::detail {

// Column family handles, in the order open() passes their descriptors.
enum ColumnFamily : size_t { kDefaultCf = 0, kEntriesCf, kMetaCf, kVectorsCf, kColumnFamilies };

// Written next to the database when RocksDB reports corruption; the next open repairs first.
inline constexpr std::string_view kRepairMarker = "REEL_REPAIR_NEEDED";

struct StoreState {
  ~StoreState();

  std::string path;
  StoreOptions options;
  rocksdb::Env* env = nullptr;
  std::unique_ptr<rocksdb::DB> db;
  std::vector<rocksdb::ColumnFamilyHandle*> cfs;  // indexed by ColumnFamily

  // Guards everything below, and every write to `db`.
  mutable std::mutex mu;
  std::vector<EntryMeta> metas;                // unordered; swap-and-pop on erase
  std::unordered_map<uint64_t, size_t> index;  // id -> position in metas
  uint64_t bytes = 0;                          // sum of metas[i].bytes
  uint64_t next_id = 1;
  uint64_t clock = 0;                          // logical clock for last_access
  StoreStats counters;                         // entries and bytes are filled in by stats()
  bool repair_marked = false;

  // The helpers below expect `mu` held.
  [[nodiscard]] EntryMeta* find(uint64_t id);
  void add(EntryMeta meta);
  void erase(uint64_t id);
  // Deletes of every key an entry owns.
  void delete_entry(rocksdb::WriteBatch& batch, const EntryMeta& meta) const;
  // Writes the batch; a failure turns inserts off (once, with the warning line).
  rocksdb::Status write(rocksdb::WriteBatch& batch);
  void disable_inserts(std::string_view why);
  // Drops an entry whose bytes failed a check: deletes it, counts it, and returns the
  // corrupt_data error to hand to the caller. `by_rocksdb`: RocksDB itself reported the damage,
  // so its files need a repair at the next open.
  Error drop_corrupted(uint64_t id, std::string_view why, bool by_rocksdb);
  void mark_for_repair(std::string_view why);

  // Flushes and closes the database (safe to call twice).
  void close_db();
};

[[nodiscard]] Error to_error(const rocksdb::Status& status, std::string_view context);

}  // namespace reel::cachestore::detail
