// Helpers shared by the EntryStore tests: a temporary directory per test, entries with
// recognisable bytes, and a raw RocksDB handle on a closed store's files.
#pragma once

#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <unistd.h>
#include <vector>

#include "cachestore/cache_key.hpp"
#include "cachestore/entry_store.hpp"

namespace reel::cachestore::testing {

// A directory under the system temp path, unique per test and process, removed at the end.
class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = std::string("reel-store-") + info->test_suite_name() + "-" + info->name() +
                       "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
    std::replace(name.begin(), name.end(), '/', '_');  // parameterised tests' names have '/'
    path_ = std::filesystem::temp_directory_path() / name;
    std::filesystem::remove_all(path_);
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  [[nodiscard]] std::string str() const { return path_.string(); }
  [[nodiscard]] const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

inline CompatKey test_key() {
  CompatKey key;
  key.model = "shapes-s";
  key.weights_hash = "abc123";
  key.scheduler = "flow_euler";
  key.steps = 30;
  key.shift = 3.0;
  key.height = 64;
  key.width = 64;
  key.frames = 16;
  key.guidance = 5.0;
  key.prediction = "flow";
  key.embedder = "tfidf-v1";
  return key;
}

// Bytes that differ from entry to entry and step to step, so a mix-up cannot go unseen.
inline std::string pattern_bytes(uint64_t seed, size_t size) {
  std::mt19937_64 rng(seed);
  std::string bytes(size, '\0');
  for (auto& c : bytes) c = static_cast<char>(rng() & 0xFF);
  return bytes;
}

struct TestEntry {
  EntryMeta meta;
  std::vector<float> vector;
  std::map<int, std::string> blobs;
  std::string mask;
};

inline TestEntry make_test_entry(uint64_t seed, size_t blob_bytes, std::vector<int> steps = {10},
                                 bool with_mask = false) {
  TestEntry entry;
  entry.meta.key = test_key().canonical();
  entry.meta.kind = with_mask ? EntryKind::object : EntryKind::whole;
  entry.meta.prompt = "a red cube rolling on grass #" + std::to_string(seed);
  entry.meta.phrase = with_mask ? "a red cube" : entry.meta.prompt;
  entry.vector = {0.25f * static_cast<float>(seed), -1.5f, 3.0f, 1e-20f};
  for (int step : steps) entry.blobs[step] = pattern_bytes(seed * 1000 + step, blob_bytes);
  if (with_mask) entry.mask = pattern_bytes(seed * 1000 + 999, 64);
  return entry;
}

inline Expected<uint64_t> insert_entry(EntryStore& store, const TestEntry& entry) {
  return store.insert(entry.meta, entry.vector, entry.blobs, entry.mask);
}

// Opens a closed store's database directly (as an operator's tool would) and runs `body`.
inline void with_raw_db(const std::string& path,
                        const std::function<void(rocksdb::DB&,
                                                 std::vector<rocksdb::ColumnFamilyHandle*>&)>& body) {
  std::vector<rocksdb::ColumnFamilyDescriptor> families = {
      {rocksdb::kDefaultColumnFamilyName, {}}, {"entries", {}}, {"meta", {}}, {"vectors", {}}};
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status status = rocksdb::DB::Open(rocksdb::DBOptions(), path, families, &handles, &raw);
  ASSERT_TRUE(status.ok()) << status.ToString();
  std::unique_ptr<rocksdb::DB> db(raw);
  body(*db, handles);
  for (auto* handle : handles) EXPECT_TRUE(db->DestroyColumnFamilyHandle(handle).ok());
  EXPECT_TRUE(db->Close().ok());
}

}  // namespace reel::cachestore::testing
