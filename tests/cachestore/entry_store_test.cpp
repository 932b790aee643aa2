#include "cachestore/entry_store.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "store_test_support.hpp"

namespace reel::cachestore {
namespace {

using testing::insert_entry;
using testing::make_test_entry;
using testing::TempDir;
using testing::TestEntry;

std::unique_ptr<EntryStore> open_store(const TempDir& dir, StoreOptions options = {}) {
  auto store = EntryStore::open(dir.str(), options);
  EXPECT_TRUE(store.ok()) << (store.ok() ? "" : store.error().message);
  return store.ok() ? std::move(*store) : nullptr;
}

std::set<uint64_t> ids_of(const EntryStore& store) {
  std::set<uint64_t> ids;
  for (const auto& meta : store.entries()) ids.insert(meta.id);
  return ids;
}

TEST(EntryStore, InsertedBlobsMaskAndVectorReadBackExactly) {
  TempDir dir;
  auto store = open_store(dir);
  ASSERT_NE(store, nullptr);
  TestEntry entry = make_test_entry(7, 5000, {5, 10, 20}, /*with_mask=*/true);
  auto id = insert_entry(*store, entry);
  ASSERT_TRUE(id.ok()) << id.error().message;

  for (const auto& [step, blob] : entry.blobs) {
    auto read = store->read_blob(*id, step);
    ASSERT_TRUE(read.ok()) << read.error().message;
    EXPECT_EQ(*read, blob);
  }
  auto mask = store->read_mask(*id);
  ASSERT_TRUE(mask.ok());
  EXPECT_EQ(*mask, entry.mask);
  auto vector = store->vector(*id);
  ASSERT_TRUE(vector.ok());
  EXPECT_EQ(*vector, entry.vector);

  auto entries = store->entries();
  ASSERT_EQ(entries.size(), 1u);
  const EntryMeta& meta = entries[0];
  EXPECT_EQ(meta.id, *id);
  EXPECT_EQ(meta.key, testing::test_key().canonical());
  EXPECT_EQ(meta.key_hash, testing::test_key().hash());
  EXPECT_EQ(meta.kind, EntryKind::object);
  EXPECT_EQ(meta.prompt, entry.meta.prompt);
  EXPECT_EQ(meta.phrase, "a red cube");
  EXPECT_EQ(meta.steps, (std::vector<int>{5, 10, 20}));
  EXPECT_TRUE(meta.has_mask);
  EXPECT_EQ(meta.bytes, 3 * 5000 + entry.mask.size() + 4 * entry.vector.size() +
                            meta.key.size() + meta.prompt.size() + meta.phrase.size());
  EXPECT_GT(meta.created_unix_ms, 0);
  EXPECT_EQ(store->stats().bytes, meta.bytes);
}

TEST(EntryStore, UnknownIdsStepsAndMasksAreNotFound) {
  TempDir dir;
  auto store = open_store(dir);
  ASSERT_NE(store, nullptr);
  auto id = insert_entry(*store, make_test_entry(1, 100, {10}));
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(store->read_blob(*id + 1, 10).error().code, Errc::not_found);
  EXPECT_EQ(store->read_blob(*id, 11).error().code, Errc::not_found);
  EXPECT_EQ(store->read_blob(*id, -1).error().code, Errc::not_found);
  EXPECT_EQ(store->read_mask(*id).error().code, Errc::not_found);
  EXPECT_EQ(store->vector(*id + 1).error().code, Errc::not_found);
  EXPECT_EQ(store->remove(*id + 1).error().code, Errc::not_found);
  EXPECT_EQ(store->get_blob_global("idf").error().code, Errc::not_found);
  EXPECT_EQ(store->stats().corrupted, 0u);
}

TEST(EntryStore, RefusesEntriesWithoutBlobsWithNegativeStepsOrOverTheBudget) {
  TempDir dir;
  StoreOptions options;
  options.budget_bytes = 10'000;
  auto store = open_store(dir, options);
  ASSERT_NE(store, nullptr);
  TestEntry entry = make_test_entry(1, 100);
  auto none = store->insert(entry.meta, entry.vector, {});
  EXPECT_EQ(none.error().code, Errc::invalid_argument);
  auto negative = store->insert(entry.meta, entry.vector, {{-2, "x"}});
  EXPECT_EQ(negative.error().code, Errc::invalid_argument);
  auto huge = insert_entry(*store, make_test_entry(2, 20'000));
  EXPECT_EQ(huge.error().code, Errc::invalid_argument);
  EXPECT_EQ(store->stats().entries, 0u);
  EXPECT_TRUE(store->stats().inserts_enabled);
}

TEST(EntryStore, EverythingSurvivesCloseAndReopen) {
  TempDir dir;
  std::vector<TestEntry> written;
  std::vector<uint64_t> ids;
  {
    auto store = open_store(dir);
    ASSERT_NE(store, nullptr);
    for (uint64_t i = 0; i < 4; ++i) {
      written.push_back(make_test_entry(i + 1, 3000, {4, 12}, /*with_mask=*/i % 2 == 1));
      auto id = insert_entry(*store, written.back());
      ASSERT_TRUE(id.ok());
      ids.push_back(*id);
    }
    store->record_hit(ids[1], 12);
    store->record_hit(ids[1], 4);
    store->record_hit(ids[3], 12);
    ASSERT_TRUE(store->remove(ids[2]).ok());
    ASSERT_TRUE(store->put_blob_global("idf", "document frequencies").ok());
  }
  auto store = open_store(dir);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(ids_of(*store), (std::set<uint64_t>{ids[0], ids[1], ids[3]}));
  for (size_t i : {0u, 1u, 3u}) {
    for (const auto& [step, blob] : written[i].blobs) {
      EXPECT_EQ(*store->read_blob(ids[i], step), blob);
    }
    EXPECT_EQ(*store->vector(ids[i]), written[i].vector);
    if (!written[i].mask.empty()) {
      EXPECT_EQ(*store->read_mask(ids[i]), written[i].mask);
    }
  }
  auto entries = store->entries();
  auto second = std::find_if(entries.begin(), entries.end(),
                             [&](const EntryMeta& m) { return m.id == ids[1]; });
  ASSERT_NE(second, entries.end());
  EXPECT_EQ(second->hits, 2u);
  EXPECT_DOUBLE_EQ(second->compute_saved, 16.0);
  EXPECT_EQ(second->prompt, written[1].meta.prompt);
  EXPECT_TRUE(second->has_mask);
  auto fourth = std::find_if(entries.begin(), entries.end(),
                             [&](const EntryMeta& m) { return m.id == ids[3]; });
  EXPECT_GT(fourth->last_access, second->last_access);  // the logical clock survives too
  EXPECT_EQ(*store->get_blob_global("idf"), "document frequencies");

  // The id counter survives: the removed entry's id is not handed out again.
  auto next = insert_entry(*store, make_test_entry(9, 100));
  ASSERT_TRUE(next.ok());
  EXPECT_GT(*next, ids[3]);
  EXPECT_GT(store->entries().back().last_access, fourth->last_access);
}

TEST(EntryStore, OpeningAMissingStoreWithoutCreateIsNotFound) {
  TempDir dir;
  StoreOptions options;
  options.create_if_missing = false;
  auto store = EntryStore::open(dir.str(), options);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.error().code, Errc::not_found);
  EXPECT_EQ(EntryStore::open("", {}).error().code, Errc::invalid_argument);
}

TEST(EntryStore, AFolderOfOtherFilesOrAFileIsNotTakenOver) {
  TempDir dir;
  std::filesystem::create_directories(dir.path());
  { std::ofstream(dir.path() / "holiday.jpg") << "not a store"; }
  auto store = EntryStore::open(dir.str(), {});
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.error().code, Errc::invalid_argument);
  EXPECT_NE(store.error().message.find("holiday.jpg"), std::string::npos) << store.error().message;
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "CURRENT"));  // nothing was created there
  auto on_file = EntryStore::open((dir.path() / "holiday.jpg").string(), {});
  ASSERT_FALSE(on_file.ok());
  EXPECT_EQ(on_file.error().code, Errc::invalid_argument);

  // An empty folder, and a folder holding a store, are fine.
  std::filesystem::remove(dir.path() / "holiday.jpg");
  ASSERT_NE(open_store(dir), nullptr);
  ASSERT_NE(open_store(dir), nullptr);
}

TEST(EntryStore, InsertsPastTheBudgetEvictByPolicyAndTheEvictionIsPersisted) {
  TempDir dir;
  StoreOptions options;
  options.policy = PolicyKind::lru;
  options.budget_bytes = 0;
  uint64_t entry_bytes = 0;
  std::set<uint64_t> kept;
  {
    // Learn one entry's size, then allow four.
    auto probe = open_store(dir);
    ASSERT_NE(probe, nullptr);
    ASSERT_TRUE(insert_entry(*probe, make_test_entry(100, 1000)).ok());
    entry_bytes = probe->stats().bytes;
    ASSERT_TRUE(probe->remove(probe->entries()[0].id).ok());
  }
  options.budget_bytes = 4 * entry_bytes + entry_bytes / 2;
  {
    auto store = open_store(dir, options);
    ASSERT_NE(store, nullptr);
    std::vector<uint64_t> ids;
    for (uint64_t i = 0; i < 10; ++i) {
      auto id = insert_entry(*store, make_test_entry(100 + i, 1000));
      ASSERT_TRUE(id.ok());
      ids.push_back(*id);
      EXPECT_LE(store->stats().bytes, options.budget_bytes);
      if (i == 7) store->record_hit(ids[5], 10);  // makes an older entry the most recent
    }
    // LRU keeps the hit entry and the three newest inserts; without the hit, ids[6] would
    // have stayed instead of ids[5].
    kept = {ids[5], ids[7], ids[8], ids[9]};
    EXPECT_EQ(ids_of(*store), kept);
    EXPECT_EQ(store->stats().evictions, 6u);
    EXPECT_EQ(store->read_blob(ids[0], 10).error().code, Errc::not_found);
  }
  auto store = open_store(dir, options);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(ids_of(*store), kept);
  EXPECT_LE(store->stats().bytes, options.budget_bytes);
  for (uint64_t id : kept) EXPECT_TRUE(store->read_blob(id, 10).ok());
}

TEST(EntryStore, ReopeningWithASmallerBudgetEvictsDownToIt) {
  TempDir dir;
  uint64_t entry_bytes = 0;
  {
    auto store = open_store(dir);
    ASSERT_NE(store, nullptr);
    for (uint64_t i = 0; i < 6; ++i) ASSERT_TRUE(insert_entry(*store, make_test_entry(i, 500)).ok());
    entry_bytes = store->stats().bytes / 6;
  }
  StoreOptions options;
  options.budget_bytes = 3 * entry_bytes;
  auto store = open_store(dir, options);
  ASSERT_NE(store, nullptr);
  EXPECT_LE(store->stats().bytes, options.budget_bytes);
  EXPECT_EQ(store->stats().entries, 3u);
  EXPECT_EQ(store->stats().evictions, 3u);
}

TEST(EntryStore, StatsCountWhatHappened) {
  TempDir dir;
  auto store = open_store(dir);
  ASSERT_NE(store, nullptr);
  auto a = insert_entry(*store, make_test_entry(1, 100));
  auto b = insert_entry(*store, make_test_entry(2, 100));
  ASSERT_TRUE(a.ok() && b.ok());
  store->record_hit(*a, 10);
  store->record_hit(*a + 100, 10);  // evicted meanwhile: counted, otherwise ignored
  store->record_miss();
  ASSERT_TRUE(store->remove(*b).ok());
  StoreStats stats = store->stats();
  EXPECT_EQ(stats.entries, 1u);
  EXPECT_EQ(stats.inserts, 2u);
  EXPECT_EQ(stats.hits, 2u);
  EXPECT_EQ(stats.misses, 1u);
  EXPECT_EQ(stats.evictions, 0u);
  EXPECT_EQ(stats.corrupted, 0u);
  EXPECT_EQ(stats.insert_failures, 0u);
  EXPECT_TRUE(stats.inserts_enabled);
}

TEST(EntryStore, GlobalBlobsOverwriteAndStayOutOfTheBudget) {
  TempDir dir;
  auto store = open_store(dir);
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->put_blob_global("idf", "v1").ok());
  ASSERT_TRUE(store->put_blob_global("idf", "v2").ok());
  ASSERT_TRUE(store->put_blob_global("vocab", std::string(1000, 'x')).ok());
  EXPECT_EQ(*store->get_blob_global("idf"), "v2");
  EXPECT_EQ(store->get_blob_global("vocab")->size(), 1000u);
  EXPECT_EQ(store->stats().bytes, 0u);
  EXPECT_EQ(store->put_blob_global("", "x").error().code, Errc::invalid_argument);
}

TEST(EntryStore, ConcurrentReadersAndWritersSeeOnlyWholeEntries) {
  TempDir dir;
  StoreOptions options;
  options.budget_bytes = 40 * 2200;  // forces evictions while readers read
  auto store = open_store(dir, options);
  ASSERT_NE(store, nullptr);
  std::atomic<bool> done{false};
  std::atomic<int> served{0};
  std::atomic<int> wrong{0};
  std::thread writer([&] {
    for (uint64_t i = 0; i < 200; ++i) {
      auto id = insert_entry(*store, make_test_entry(i, 2000, {3, 6}));
      if (!id.ok()) ++wrong;
    }
    done = true;
  });
  std::vector<std::thread> readers;
  for (int r = 0; r < 2; ++r) {
    readers.emplace_back([&] {
      while (!done) {
        for (const auto& meta : store->entries()) {
          auto blob = store->read_blob(meta.id, 6);
          if (blob.ok()) {
            // The entry made from seed s has id s + 1 (ids start at 1, nothing else inserts).
            if (*blob != testing::pattern_bytes((meta.id - 1) * 1000 + 6, 2000)) ++wrong;
            ++served;
          } else if (blob.error().code != Errc::not_found) {
            ++wrong;
          }
        }
      }
    });
  }
  writer.join();
  for (auto& reader : readers) reader.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_GT(served.load(), 0);
  EXPECT_LE(store->stats().bytes, options.budget_bytes);
  EXPECT_EQ(store->stats().corrupted, 0u);
}

}  // namespace
}  // namespace reel::cachestore
