// Opening an EntryStore: RocksDB options, repair of damaged files, loading the metadata into
// memory, and making metadata and blobs agree again after a repair.
//
// How damage is met:
//   - paranoid_checks = true (RocksDB's default, kept on purpose): at open RocksDB checks that
//     every table file the MANIFEST lists exists with its recorded size, and a corruption or
//     I/O error in a flush, compaction or log write stops all writes instead of building new
//     files on damaged ones. The store sees that at its next write and turns inserts off;
//     reads go on. The alternative (false) lets a compaction that keeps failing on one bad
//     block be retried forever while level 0 fills and writes stall.
//   - Damage RocksDB reports at open (MANIFEST, log, a table's footer or index): one
//     rocksdb::RepairDB, which rebuilds the MANIFEST from the table files and sets aside
//     tables it cannot read whole, then a second open. Only if that fails too does open fail.
//   - Damage found while serving (a data block's checksum, or ours): the entry is dropped at
//     once. A data block RocksDB itself reports stays in its table file, where a compaction
//     would meet it again and stop writes, so the store also leaves kRepairMarker next to the
//     database and the next open repairs first.
//   - After any repair, metadata whose blobs or vector were set aside is dropped and blobs
//     whose metadata was set aside are deleted (reconcile), so the budget stays true.
// Repair costs the entries that shared a table file with the damage (at most about
// entries_file_bytes()); a cache refills, and a store that opens beats one that does not.
#include <rocksdb/convenience.h>
#include <rocksdb/env.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>

#include <algorithm>
#include <filesystem>
#include <cstdio>
#include <map>
#include <set>

#include "cachestore/entry_format.hpp"
#include "cachestore/entry_store.hpp"

#include <filesystem>
#include "cachestore/entry_store_state.hpp"

namespace reel::cachestore {
namespace detail {
namespace {

// Memtable and table file size of the entries column family: 1/64 of the budget, between 1 and
// 16 MiB. Deleted entries hold disk until compaction rewrites their files, and the logs and
// level-0 files RocksDB keeps before it compacts are a few of these: sized by the budget, a
// small store does not carry a large store's overhead. Small files also keep what a repair
// sets aside small.
uint64_t entries_file_bytes(const StoreOptions& options) {
  return std::clamp<uint64_t>(options.budget_bytes / 64, 1ull << 20, 16ull << 20);
}

rocksdb::DBOptions db_options(const StoreState& s) {
  rocksdb::DBOptions options;
  options.create_if_missing = s.options.create_if_missing;
  options.create_missing_column_families = true;
  options.paranoid_checks = true;  // see the top of this file
  options.keep_log_file_num = 4;   // RocksDB's info LOG files, not the write-ahead log
  // A log file is deleted only once every column family with data in it has been flushed. The
  // small families (meta, vectors) would otherwise hold every log, and with it every blob
  // written since, for as long as their memtables take to fill: gigabytes of logs for a store
  // of a few hundred megabytes. Past this total RocksDB flushes them.
  options.max_total_wal_size = 4 * entries_file_bytes(s.options);
  options.env = s.env;
  return options;
}

std::vector<rocksdb::ColumnFamilyDescriptor> column_families(const StoreState& s) {
  rocksdb::ColumnFamilyOptions entries;
  // Latents arrive compressed by codecs; a second compression would cost time for nothing.
  entries.compression = rocksdb::kNoCompression;
  entries.bottommost_compression = rocksdb::kNoCompression;
  entries.write_buffer_size = entries_file_bytes(s.options);
  entries.target_file_size_base = entries_file_bytes(s.options);
  // Level sizes follow the data actually stored, which bounds the space deleted entries hold
  // to about a tenth of the last level (RocksDB's advice for new databases).
  entries.level_compaction_dynamic_level_bytes = true;
  return {
      {rocksdb::kDefaultColumnFamilyName, rocksdb::ColumnFamilyOptions()},
      {"entries", entries},
      {"meta", rocksdb::ColumnFamilyOptions()},
      {"vectors", rocksdb::ColumnFamilyOptions()},
  };
}

std::string marker_path(const StoreState& s) { return s.path + "/" + std::string(kRepairMarker); }

rocksdb::Status open_db(StoreState& s) {
  rocksdb::DB* db = nullptr;
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::Status status = rocksdb::DB::Open(db_options(s), s.path, column_families(s),
                                             &handles, &db);
  if (!status.ok()) return status;
  s.db.reset(db);
  s.cfs = std::move(handles);
  return status;
}

// Runs RocksDB's repair and removes what it set aside (a cache keeps no salvage).
Status repair(StoreState& s, std::string_view why) {
  std::fprintf(stderr, "reel: warning: repairing cache store %s: %.*s\n", s.path.c_str(),
               static_cast<int>(why.size()), why.data());
  rocksdb::Status status = rocksdb::RepairDB(s.path, db_options(s), column_families(s));
  if (!status.ok()) return to_error(status, "repairing cache store " + s.path);
  std::string lost = s.path + "/lost";
  std::vector<std::string> children;
  if (s.env->GetChildren(lost, &children).ok()) {
    rocksdb::Status ignored;  // best effort: leftovers only cost disk space
    for (const auto& child : children) {
      if (child != "." && child != "..") ignored = s.env->DeleteFile(lost + "/" + child);
    }
    ignored = s.env->DeleteDir(lost);
  }
  rocksdb::Status ignored = s.env->DeleteFile(marker_path(s));
  (void)ignored;
  return {};
}

// Reads the format tag, the id counter and every entry's metadata into memory. Metadata that
// fails its checksum is dropped with its entry. A RocksDB error is returned as it came (the
// caller repairs on corruption).
rocksdb::Status load(StoreState& s) {
  rocksdb::ReadOptions read_options;
  std::string value;
  rocksdb::Status status = s.db->Get(read_options, s.cfs[kDefaultCf], kFormatKey, &value);
  if (status.IsNotFound()) {
    rocksdb::WriteBatch batch;
    rocksdb::Status written = batch.Put(s.cfs[kDefaultCf], kFormatKey, kFormatValue);
    if (written.ok()) written = s.write(batch);  // a failure turns inserts off; reads go on
  } else if (!status.ok()) {
    return status;
  } else if (value != kFormatValue) {
    return rocksdb::Status::NotSupported("cache store format '" + value + "', this build reads '" +
                                         std::string(kFormatValue) + "'");
  }
  status = s.db->Get(read_options, s.cfs[kDefaultCf], kNextIdKey, &value);
  if (status.ok()) {
    s.next_id = decode_u64(value).value_or(1);
  } else if (!status.IsNotFound()) {
    return status;
  }

  std::vector<std::string> bad_keys;
  std::unique_ptr<rocksdb::Iterator> it(s.db->NewIterator(read_options, s.cfs[kMetaCf]));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    auto meta = decode_meta(it->value().ToStringView());
    std::optional<uint64_t> id = key_id(it->key().ToStringView());
    if (!meta.ok() || !id || meta->id != *id || s.find(*id) != nullptr) {
      bad_keys.push_back(it->key().ToString());
      continue;
    }
    s.next_id = std::max(s.next_id, meta->id + 1);
    s.clock = std::max(s.clock, meta->last_access);
    s.add(std::move(*meta));
  }
  if (!it->status().ok()) return it->status();
  it.reset();

  if (!bad_keys.empty()) {
    // The steps of a damaged record are unknown: its blobs go by range.
    rocksdb::WriteBatch batch;
    rocksdb::Status ignored;
    for (const auto& key : bad_keys) {
      ignored = batch.Delete(s.cfs[kMetaCf], key);
      if (auto id = key_id(key)) {
        ignored = batch.DeleteRange(s.cfs[kEntriesCf], id_key(*id), id_key(*id + 1));
        ignored = batch.Delete(s.cfs[kVectorsCf], id_key(*id));
      }
    }
    ignored = s.write(batch);
    s.counters.corrupted += bad_keys.size();
    std::fprintf(stderr, "reel: warning: dropped %zu cache entries with damaged metadata\n",
                 bad_keys.size());
  }
  return rocksdb::Status::OK();
}

// After a repair: drops entries whose blobs or vector are gone, deletes blobs and vectors no
// entry owns, and moves the id counter past every id still on disk (the counter itself may
// have been set aside), so that no new entry meets an old one's leftovers. Reads the whole
// entries column family, which only a repair warrants.
void reconcile(StoreState& s) {
  rocksdb::ReadOptions read_options;
  read_options.fill_cache = false;
  rocksdb::WriteBatch batch;
  rocksdb::Status ignored;
  std::map<uint64_t, std::set<int>> present;  // id -> steps found (kMaskStep for the mask)
  std::set<uint64_t> with_vector;
  bool complete = true;
  uint64_t largest_id = 0;
  {
    std::unique_ptr<rocksdb::Iterator> it(s.db->NewIterator(read_options, s.cfs[kEntriesCf]));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      auto id = key_id(it->key().ToStringView());
      auto step = key_step(it->key().ToStringView());
      if (id) largest_id = std::max(largest_id, *id);
      if (!id || !step || s.find(*id) == nullptr) {
        ignored = batch.Delete(s.cfs[kEntriesCf], it->key());
        continue;
      }
      present[*id].insert(*step);
    }
    complete = complete && it->status().ok();
    it.reset(s.db->NewIterator(read_options, s.cfs[kVectorsCf]));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      auto id = key_id(it->key().ToStringView());
      if (id) largest_id = std::max(largest_id, *id);
      if (!id || s.find(*id) == nullptr) {
        ignored = batch.Delete(s.cfs[kVectorsCf], it->key());
        continue;
      }
      with_vector.insert(*id);
    }
    complete = complete && it->status().ok();
  }
  std::vector<uint64_t> incomplete;
  if (complete) {  // an unreadable scan proves nothing missing
    for (const auto& meta : s.metas) {
      const std::set<int>& steps = present[meta.id];
      bool whole = with_vector.count(meta.id) > 0 &&
                   std::all_of(meta.steps.begin(), meta.steps.end(),
                               [&](int step) { return steps.count(step) > 0; }) &&
                   (!meta.has_mask || steps.count(kMaskStep) > 0);
      if (!whole) incomplete.push_back(meta.id);
    }
  }
  for (uint64_t id : incomplete) {
    s.delete_entry(batch, *s.find(id));
    s.erase(id);
  }
  s.counters.corrupted += incomplete.size();
  s.next_id = std::max(s.next_id, largest_id + 1);
  ignored = batch.Put(s.cfs[kDefaultCf], kNextIdKey, encode_u64(s.next_id));
  ignored = s.write(batch);
  if (!incomplete.empty()) {
    std::fprintf(stderr, "reel: warning: repair lost %zu cache entries\n", incomplete.size());
  }
}

// A store reopened with a smaller budget (or grown by a repair) evicts down to it.
void evict_to_budget(StoreState& s) {
  if (s.bytes <= s.options.budget_bytes) return;
  std::vector<uint64_t> victims =
      choose_victims(s.metas, s.bytes - s.options.budget_bytes, s.options.policy);
  rocksdb::WriteBatch batch;
  for (uint64_t victim : victims) s.delete_entry(batch, *s.find(victim));
  if (!s.write(batch).ok()) return;
  for (uint64_t victim : victims) s.erase(victim);
  s.counters.evictions += victims.size();
}

// Clears what a failed load left in memory before the database is opened again.
void reset_memory(StoreState& s) {
  s.metas.clear();
  s.index.clear();
  s.bytes = 0;
  s.next_id = 1;
  s.clock = 0;
}

// A path where a store may be created: missing, an empty folder, or a folder that already holds
// a store (or what is left of one). Errors: invalid_argument for a file, or for a folder whose
// entries are none of RocksDB's or the store's.
Status check_store_folder(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const auto status = fs::status(path, ec);
  if (!fs::exists(status)) return {};
  if (!fs::is_directory(status)) return make_error(Errc::invalid_argument, "the cache path " + path + " is not a folder");
  auto store_file = [](const std::string& name) {
    auto ends = [&](std::string_view tail) {
      return name.size() >= tail.size() && name.compare(name.size() - tail.size(), tail.size(), tail) == 0;
    };
    return name == "CURRENT" || name == "IDENTITY" || name == "LOCK" || name.rfind("LOG", 0) == 0 ||
           name.rfind("MANIFEST-", 0) == 0 || name.rfind("OPTIONS-", 0) == 0 || ends(".sst") || ends(".log") ||
           ends(".blob") || name.rfind("ann-index", 0) == 0 || name == kRepairMarker;
  };
  int others = 0;
  std::string example;
  for (const auto& entry : fs::directory_iterator(path, ec)) {
    const std::string name = entry.path().filename().string();
    if (store_file(name)) return {};
    if (others++ == 0) example = name;
  }
  if (others > 0)
    return make_error(Errc::invalid_argument, "the folder " + path + " holds other files ('" + example +
                                                  "') and no cache store; give a new or empty folder");
  return {};
}

}  // namespace
}  // namespace detail

Expected<std::unique_ptr<EntryStore>> EntryStore::open(const std::string& path,
                                                       StoreOptions options) {
  using detail::StoreState;
  if (path.empty()) return make_error(Errc::invalid_argument, "cache store path is empty");
  auto state = std::make_unique<StoreState>();
  state->path = path;
  state->options = options;
  state->env = options.env != nullptr ? options.env : rocksdb::Env::Default();
  StoreState& s = *state;
  // Only this thread knows the state yet; the lock keeps the helpers' contract.
  std::lock_guard lock(s.mu);

  if (!options.create_if_missing && !s.env->FileExists(path + "/CURRENT").ok()) {
    return make_error(Errc::not_found, "no cache store at " + path);
  }
  if (options.create_if_missing) {
    // A folder that holds other things is not taken over: a typo in --cache must not scatter a
    // store's files among a user's own.
    if (auto st = detail::check_store_folder(path); !st) return st.error();
    // RocksDB creates the store's own directory but not missing parents.
    std::error_code ec;
    std::filesystem::create_directories(path, ec);
    if (ec) return make_error(Errc::io_error, "cannot create the cache directory " + path + ": " + ec.message());
  }
  bool repaired = false;
  if (s.env->FileExists(detail::marker_path(s)).ok()) {
    REEL_RETURN_IF_ERROR(detail::repair(s, "damage was found while serving"));
    repaired = true;
  }
  rocksdb::Status status = detail::open_db(s);
  if (status.IsCorruption() && !repaired) {
    REEL_RETURN_IF_ERROR(detail::repair(s, status.ToString()));
    repaired = true;
    status = detail::open_db(s);
  }
  if (!status.ok()) return detail::to_error(status, "opening cache store " + path);
  status = detail::load(s);
  if (status.IsCorruption() && !repaired) {
    s.close_db();
    detail::reset_memory(s);
    REEL_RETURN_IF_ERROR(detail::repair(s, status.ToString()));
    repaired = true;
    status = detail::open_db(s);
    if (status.ok()) status = detail::load(s);
  }
  if (!status.ok()) return detail::to_error(status, "loading cache store " + path);
  if (repaired) detail::reconcile(s);
  detail::evict_to_budget(s);
  return std::unique_ptr<EntryStore>(new EntryStore(std::move(state)));
}

}  // namespace reel::cachestore
