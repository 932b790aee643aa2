// The nearest-neighbour indexes saved at close (and every N inserts) and loaded at open
// (index_snapshot.hpp): loaded when they match the store, brought up to date when entries came or
// went since the save, rebuilt, with correct answers, when they are damaged or disagree.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "cachestore/ann_index.hpp"
#include "cachestore/approx_cache.hpp"
#include "cachestore/entry_store.hpp"
#include "cachestore/index_snapshot.hpp"

namespace reel::cachestore {
namespace {

namespace fs = std::filesystem;

CompatKey key() {
  return CompatKey{.model = "shapes-s", .weights_hash = "w1", .scheduler = "unipc", .steps = 20, .shift = 3,
                   .height = 8, .width = 8, .frames = 2, .guidance = 4, .prediction = "sample"};
}

std::map<int, Latent> latents(int seed) {
  Latent l{{1, 2, 2, 8, 8}, std::vector<float>(2 * 2 * 8 * 8)};
  for (size_t i = 0; i < l.values.size(); ++i) l.values[i] = float(std::sin(0.1 * double(i) + seed));
  return {{4, l}};
}

const char* const kColors[] = {"red", "blue", "green", "yellow", "purple", "orange", "white", "black"};
const char* const kShapes[] = {"circle", "square", "triangle", "star", "ring"};
const char* const kPlaces[] = {"sand", "navy", "grass", "snow"};

std::string prompt(int i) {
  return std::string("a ") + kColors[i % 8] + " " + kShapes[(i / 8) % 5] + " moving on a " + kPlaces[(i / 40) % 4] +
         " background";
}

class IndexSnapshotTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("reel_snapshot_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::unique_ptr<ApproxCache> open(bool persist = true, uint64_t save_every = 0) {
    CacheOptions o;
    o.path = dir_.string();
    o.decoupled = false;
    o.store_fractions = {0.2};
    o.persist_index = persist;
    o.index_save_every = save_every;
    auto cache = ApproxCache::open(o, std::make_unique<NgramEmbedder>(NgramOptions{.dim = 64}));
    EXPECT_TRUE(cache.ok()) << cache.error().message;
    return cache.ok() ? std::move(*cache) : nullptr;
  }

  void fill(ApproxCache& cache, int from, int to) {
    for (int i = from; i < to; ++i) ASSERT_TRUE(cache.insert(key(), prompt(i), latents(i)).ok()) << i;
  }

  // Every stored prompt finds itself, with similarity 1; prompts in `absent` find anything but.
  void expect_correct(ApproxCache& cache, int from, int to, std::vector<int> absent = {}) {
    for (int i = from; i < to; ++i) {
      auto r = cache.lookup(key(), prompt(i));
      ASSERT_TRUE(r.ok());
      ASSERT_TRUE(r->has_value()) << prompt(i);
      EXPECT_EQ((*r)->sources, std::vector<std::string>{prompt(i)});
      EXPECT_NEAR((*r)->similarity, 1.0F, 1e-5F);
      EXPECT_TRUE(cache.contains(key(), prompt(i)));
    }
    for (int i : absent) {
      auto r = cache.lookup(key(), prompt(i));
      ASSERT_TRUE(r.ok());
      if (r->has_value()) {
        EXPECT_NE((*r)->sources, std::vector<std::string>{prompt(i)});
      }
      EXPECT_FALSE(cache.contains(key(), prompt(i)));
    }
  }

  fs::path index_file() const { return dir_ / detail::kSnapshotDir / "0.hnsw"; }
  fs::path manifest() const { return dir_ / detail::kSnapshotDir / "MANIFEST"; }

  fs::path dir_;
};

TEST_F(IndexSnapshotTest, SavedAtCloseAndLoadedAtOpen) {
  {
    auto cache = open();
    EXPECT_EQ(cache->stats().index_source, "empty");
    fill(*cache, 0, 60);
  }
  ASSERT_TRUE(fs::exists(index_file()));
  ASSERT_TRUE(fs::exists(manifest()));
  {
    auto cache = open();
    EXPECT_EQ(cache->stats().index_source, "loaded");
    expect_correct(*cache, 0, 60);
  }
  // Lookups only: nothing changed, the snapshot is not rewritten, and still loads.
  EXPECT_EQ(open()->stats().index_source, "loaded");
}

TEST_F(IndexSnapshotTest, LoadedAndRebuiltIndexesAnswerAlike) {
  { fill(*open(), 0, 80); }
  std::vector<std::optional<Hit>> loaded_hits, rebuilt_hits;
  const std::vector<std::string> queries{"a red circle moving on a navy background", "a blue star on snow",
                                         "a black ring moving on a grass background", "purple square"};
  {
    auto cache = open();
    ASSERT_EQ(cache->stats().index_source, "loaded");
    for (const auto& q : queries) loaded_hits.push_back(*cache->lookup(key(), q));
  }
  {
    auto cache = open(false);
    ASSERT_EQ(cache->stats().index_source, "rebuilt: persist_index is off");
    for (const auto& q : queries) rebuilt_hits.push_back(*cache->lookup(key(), q));
  }
  ASSERT_EQ(loaded_hits.size(), rebuilt_hits.size());
  for (size_t i = 0; i < queries.size(); ++i) {
    ASSERT_EQ(loaded_hits[i].has_value(), rebuilt_hits[i].has_value()) << queries[i];
    if (!loaded_hits[i]) continue;
    EXPECT_EQ(loaded_hits[i]->sources, rebuilt_hits[i]->sources) << queries[i];
    EXPECT_NEAR(loaded_hits[i]->similarity, rebuilt_hits[i]->similarity, 1e-5F);
  }
}

TEST_F(IndexSnapshotTest, MissingSnapshotIsRebuilt) {
  { fill(*open(), 0, 30); }
  fs::remove_all(dir_ / detail::kSnapshotDir);
  {
    auto cache = open();
    EXPECT_EQ(cache->stats().index_source, "rebuilt: no saved index");
    expect_correct(*cache, 0, 30);
  }
  // The rebuilt index was saved at close.
  EXPECT_EQ(open()->stats().index_source, "loaded");
}

TEST_F(IndexSnapshotTest, CorruptIndexFileIsRebuilt) {
  { fill(*open(), 0, 30); }
  {
    std::fstream f(index_file(), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(fs::file_size(index_file()) / 2));
    char c = 0x5A;
    f.write(&c, 1);
  }
  auto cache = open();
  EXPECT_NE(cache->stats().index_source.find("rebuilt: saved index is damaged"), std::string::npos)
      << cache->stats().index_source;
  expect_correct(*cache, 0, 30);
}

TEST_F(IndexSnapshotTest, ADamagedListOfCoveredEntriesIsRebuilt) {
  { fill(*open(), 0, 30); }
  const fs::path covered = dir_ / detail::kSnapshotDir / "covered.bin";
  ASSERT_TRUE(fs::exists(covered));
  {
    std::fstream f(covered, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(20);  // inside the first entry's hash
    char c = 0x5A;
    f.write(&c, 1);
  }
  auto cache = open();
  EXPECT_NE(cache->stats().index_source.find("rebuilt: saved index is damaged: covered.bin"), std::string::npos)
      << cache->stats().index_source;
  expect_correct(*cache, 0, 30);
}

TEST_F(IndexSnapshotTest, TruncatedIndexFileIsRebuilt) {
  { fill(*open(), 0, 30); }
  fs::resize_file(index_file(), fs::file_size(index_file()) - 100);
  auto cache = open();
  EXPECT_NE(cache->stats().index_source.find("damaged"), std::string::npos) << cache->stats().index_source;
  expect_correct(*cache, 0, 30);
}

TEST_F(IndexSnapshotTest, DamagedManifestIsRebuilt) {
  { fill(*open(), 0, 30); }
  for (int variant = 0; variant < 3; ++variant) {
    std::string text;
    {
      std::ifstream in(manifest(), std::ios::binary);
      text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    const std::string original = text;
    if (variant == 0) text.resize(text.size() / 2);               // truncated
    if (variant == 1) text[text.find("entries ") + 8] = '9';      // edited without its checksum
    if (variant == 2) text.clear();                               // empty
    { std::ofstream(manifest(), std::ios::binary | std::ios::trunc) << text; }
    {
      auto cache = open(true);
      EXPECT_NE(cache->stats().index_source.find("damaged"), std::string::npos)
          << variant << ": " << cache->stats().index_source;
      expect_correct(*cache, 0, 30);
    }
    // Nothing changed since the rebuild's open... but the rebuild is saved all the same.
    EXPECT_EQ(open()->stats().index_source, "loaded") << variant;
  }
}

// Replaces the saved index with `copy` (taken earlier): as if the process died before its close.
void restore(const fs::path& dir, const fs::path& copy) {
  fs::remove_all(dir / detail::kSnapshotDir);
  fs::copy(copy, dir / detail::kSnapshotDir, fs::copy_options::recursive);
  fs::remove_all(copy);
}

TEST_F(IndexSnapshotTest, EntriesAddedAfterTheSaveAreAddedToTheLoadedIndex) {
  fs::path saved = dir_.string() + "_saved";
  fs::remove_all(saved);
  {
    auto cache = open();
    fill(*cache, 0, 30);
    ASSERT_TRUE(cache->save_index().ok());
    fs::copy(dir_ / detail::kSnapshotDir, saved, fs::copy_options::recursive);
    fill(*cache, 30, 40);  // a crash here would leave the snapshot of 30 entries
  }
  restore(dir_, saved);
  {
    auto cache = open();
    EXPECT_EQ(cache->stats().index_source, "loaded, caught up: 10 added, 0 removed");
    expect_correct(*cache, 0, 40);
  }
  EXPECT_EQ(open()->stats().index_source, "loaded");  // the caught-up index was saved at close
}

TEST_F(IndexSnapshotTest, SavedEveryNInsertsSoAKilledProcessLeavesLittleToAdd) {
  fs::path saved = dir_.string() + "_saved";
  fs::remove_all(saved);
  {
    auto cache = open(true, /*save_every=*/10);
    fill(*cache, 0, 25);  // saves after the 10th and the 20th entry
    fs::copy(dir_ / detail::kSnapshotDir, saved, fs::copy_options::recursive);
  }
  restore(dir_, saved);
  auto cache = open();
  EXPECT_EQ(cache->stats().index_source, "loaded, caught up: 5 added, 0 removed");
  expect_correct(*cache, 0, 25);
}

TEST_F(IndexSnapshotTest, PeriodicSavesWaitForATenthOfTheEntries) {
  fs::path saved = dir_.string() + "_saved";
  fs::remove_all(saved);
  {
    // Every entry may trigger a save, but only once a tenth of the entries are new: saves at
    // 1, 2, ..., 10, 12, 14, ..., 20, 23, 26, 29 entries, so one entry is left after the 30th.
    auto cache = open(true, /*save_every=*/1);
    fill(*cache, 0, 30);
    fs::copy(dir_ / detail::kSnapshotDir, saved, fs::copy_options::recursive);
  }
  restore(dir_, saved);
  auto cache = open();
  EXPECT_EQ(cache->stats().index_source, "loaded, caught up: 1 added, 0 removed");
  expect_correct(*cache, 0, 30);
}

TEST_F(IndexSnapshotTest, EntriesRemovedAfterTheSaveAreNotServed) {
  { fill(*open(), 0, 30); }
  std::vector<EntryMeta> metas;
  {
    // Another writer (or a crash after an eviction) removes entries behind the snapshot's back.
    auto store = EntryStore::open(dir_.string(), StoreOptions{});
    ASSERT_TRUE(store.ok()) << store.error().message;
    metas = (*store)->entries();
    ASSERT_EQ(metas.size(), 30u);
    ASSERT_TRUE((*store)->remove(metas[3].id).ok());
    ASSERT_TRUE((*store)->remove(metas[17].id).ok());
  }
  auto cache = open();
  EXPECT_EQ(cache->stats().index_source, "loaded, caught up: 0 added, 2 removed");
  std::vector<int> present;
  for (int i = 0; i < 30; ++i)
    if (prompt(i) != metas[3].prompt && prompt(i) != metas[17].prompt) present.push_back(i);
  for (int i : present) expect_correct(*cache, i, i + 1);
  int a = -1, b = -1;
  for (int i = 0; i < 30; ++i) {
    if (prompt(i) == metas[3].prompt) a = i;
    if (prompt(i) == metas[17].prompt) b = i;
  }
  expect_correct(*cache, 0, 0, {a, b});
}

TEST_F(IndexSnapshotTest, OneEntryOutAndAnotherInIsCaughtUp) {
  { fill(*open(), 0, 30); }
  std::string removed;
  {
    // One entry out and another in behind the snapshot's back: the count is unchanged.
    auto store = EntryStore::open(dir_.string(), StoreOptions{});
    ASSERT_TRUE(store.ok()) << store.error().message;
    const auto metas = (*store)->entries();
    removed = metas[5].prompt;
    ASSERT_TRUE((*store)->remove(metas[5].id).ok());
    EntryMeta meta;
    meta.key = metas[0].key;
    meta.kind = EntryKind::whole;
    meta.prompt = meta.phrase = prompt(100);
    const auto vector = NgramEmbedder(NgramOptions{.dim = 64}).embed(prompt(100));
    ASSERT_TRUE((*store)->insert(meta, vector, {{4, "x"}}).ok());
    ASSERT_EQ((*store)->entries().size(), 30u);
  }
  auto cache = open();
  EXPECT_EQ(cache->stats().index_source, "loaded, caught up: 1 added, 1 removed");
  EXPECT_TRUE(cache->contains(key(), prompt(100)));
  EXPECT_FALSE(cache->contains(key(), removed));
  auto r = cache->lookup(key(), removed);
  ASSERT_TRUE(r.ok());
  if (r->has_value()) {
    EXPECT_NE((*r)->sources, std::vector<std::string>{removed});
  }
}

TEST_F(IndexSnapshotTest, AnIndexOfAnotherStoreWithTheSameIdsIsRebuilt) {
  fs::path saved = dir_.string() + "_saved";
  fs::remove_all(saved);
  { fill(*open(), 0, 10); }
  fs::copy(dir_ / detail::kSnapshotDir, saved, fs::copy_options::recursive);
  fs::remove_all(dir_);
  { fill(*open(false), 50, 60); }  // a new store: its ids are the old ones, its entries are not
  restore(dir_, saved);
  auto cache = open();
  EXPECT_NE(cache->stats().index_source.find("rebuilt: saved index disagrees with the store about entry"),
            std::string::npos)
      << cache->stats().index_source;
  std::vector<int> absent;
  for (int i = 0; i < 10; ++i) absent.push_back(i);
  expect_correct(*cache, 50, 60, absent);
}

TEST_F(IndexSnapshotTest, AnOlderFormatIsRebuilt) {
  { fill(*open(), 0, 10); }
  {
    std::ofstream m(manifest(), std::ios::trunc);
    m << "reel-ann-snapshot 1\ndim 64\n";
  }
  auto cache = open();
  EXPECT_EQ(cache->stats().index_source.rfind("rebuilt: saved index has another format", 0), 0u)
      << cache->stats().index_source;
  expect_correct(*cache, 0, 10);
}

TEST_F(IndexSnapshotTest, AnotherDimensionIsRebuilt) {
  { fill(*open(), 0, 10); }
  CacheOptions o;
  o.path = dir_.string();
  o.decoupled = false;
  o.store_fractions = {0.2};
  auto cache = ApproxCache::open(o, std::make_unique<NgramEmbedder>(NgramOptions{.dim = 32}));
  ASSERT_TRUE(cache.ok());
  EXPECT_NE((*cache)->stats().index_source.find("32"), std::string::npos) << (*cache)->stats().index_source;
  // Entries of the 64-d embedder are under another key: a 32-d cache sees none of them.
  auto r = (*cache)->lookup(key(), prompt(0));
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->has_value());
}

TEST(AnnIndexSaveLoad, RoundTripKeepsIdsVectorsAndRemovals) {
  const fs::path path = fs::temp_directory_path() / ("reel_ann_" + std::to_string(::getpid()) + ".hnsw");
  AnnIndex index(8);
  for (uint64_t id = 1; id <= 50; ++id) {
    std::vector<float> v(8);
    for (int k = 0; k < 8; ++k) v[size_t(k)] = float(std::sin(double(id) * (k + 1)));
    ASSERT_TRUE(index.add(id * 7, v).ok());
  }
  ASSERT_TRUE(index.remove(14));
  ASSERT_TRUE(index.save(path.string()).ok());
  auto loaded = AnnIndex::load(path.string(), 8);
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  EXPECT_EQ((*loaded)->ids(), index.ids());
  EXPECT_FALSE((*loaded)->contains(14));
  EXPECT_EQ((*loaded)->size(), 49u);
  for (uint64_t id : index.ids()) EXPECT_EQ(*(*loaded)->stored_vector(id), *index.stored_vector(id));
  std::vector<float> q(8, 0.3F);
  EXPECT_EQ(*(*loaded)->search(q, 5), *index.search(q, 5));
  // Another dimension is refused, not misread.
  EXPECT_FALSE(AnnIndex::load(path.string(), 16).ok());
  EXPECT_FALSE(AnnIndex::load(path.string() + ".missing", 8).ok());
  fs::remove(path);
}

// A one-off timing (not a benchmark): REEL_SNAPSHOT_TIMING=N opens a cache of N entries with
// and without its saved index.
TEST_F(IndexSnapshotTest, OpenTiming) {
  const char* env = std::getenv("REEL_SNAPSHOT_TIMING");
  if (env == nullptr) GTEST_SKIP() << "set REEL_SNAPSHOT_TIMING=N to time an open of N entries";
  const int n = std::atoi(env);
  CacheOptions o;
  o.path = dir_.string();
  o.decoupled = false;
  o.store_fractions = {0.2};
  o.compress = false;
  o.budget_bytes = 8ull << 30;
  o.index_save_every = 0;
  const int saved_at = n - n / 20;  // a process killed after 95% of the entries had been saved
  const fs::path copy = dir_.string() + "_saved";
  fs::remove_all(copy);
  {
    auto cache = ApproxCache::open(o, std::make_unique<NgramEmbedder>());
    ASSERT_TRUE(cache.ok());
    Latent l{{1, 1, 1, 2, 2}, {0.1F, 0.2F, 0.3F, 0.4F}};
    for (int i = 0; i < n; ++i) {
      if (i == saved_at) {
        ASSERT_TRUE((*cache)->save_index().ok());
        fs::copy(dir_ / detail::kSnapshotDir, copy, fs::copy_options::recursive);
      }
      ASSERT_TRUE((*cache)->insert(key(), prompt(i) + " number " + std::to_string(i), {{4, l}}).ok());
    }
  }
  auto time_open = [&](bool persist) {
    o.persist_index = persist;
    auto t0 = std::chrono::steady_clock::now();
    auto cache = ApproxCache::open(o, std::make_unique<NgramEmbedder>());
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_TRUE(cache.ok());
    std::printf("open of %d entries (%s): %.3f s\n", n, (*cache)->stats().index_source.c_str(), s);
    return s;
  };
  time_open(false);
  time_open(true);
  restore(dir_, copy);
  time_open(true);
}

}  // namespace
}  // namespace reel::cachestore
