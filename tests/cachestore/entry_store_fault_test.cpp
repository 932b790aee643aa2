// EntryStore under failure: writes that fail, bytes flipped in stored values and in table files
// on disk. The store must never serve damaged bytes, never crash, and keep serving the rest.
#include <gtest/gtest.h>
#include <rocksdb/env.h>
#include <rocksdb/file_system.h>

#include <algorithm>
#include <fstream>
#include <set>

#include "cachestore/entry_format.hpp"
#include "cachestore/entry_store.hpp"
#include "store_test_support.hpp"

namespace reel::cachestore {
namespace {

using testing::insert_entry;
using testing::make_test_entry;
using testing::TempDir;
using testing::TestEntry;
using testing::with_raw_db;

// A file system whose writes fail on demand, as a full or failing disk's would.
class FailingFileSystem : public rocksdb::FileSystemWrapper {
 public:
  explicit FailingFileSystem(std::shared_ptr<rocksdb::FileSystem> base)
      : FileSystemWrapper(std::move(base)) {}
  const char* Name() const override { return "FailingFileSystem"; }

  std::atomic<bool> fail_writes{false};
  rocksdb::IOStatus failure = rocksdb::IOStatus::IOError("injected write failure");

  rocksdb::IOStatus NewWritableFile(const std::string& name, const rocksdb::FileOptions& options,
                                    std::unique_ptr<rocksdb::FSWritableFile>* file,
                                    rocksdb::IODebugContext* dbg) override {
    if (fail_writes) return failure;
    rocksdb::IOStatus status = target()->NewWritableFile(name, options, file, dbg);
    if (status.ok()) *file = std::make_unique<File>(std::move(*file), this);
    return status;
  }

 private:
  class File : public rocksdb::FSWritableFileOwnerWrapper {
   public:
    File(std::unique_ptr<rocksdb::FSWritableFile> base, FailingFileSystem* fs)
        : FSWritableFileOwnerWrapper(std::move(base)), fs_(fs) {}
    rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& options,
                             rocksdb::IODebugContext* dbg) override {
      if (fs_->fail_writes) return fs_->failure;
      return target()->Append(data, options, dbg);
    }
    rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& options,
                             const rocksdb::DataVerificationInfo& info,
                             rocksdb::IODebugContext* dbg) override {
      if (fs_->fail_writes) return fs_->failure;
      return target()->Append(data, options, info, dbg);
    }

   private:
    FailingFileSystem* fs_;
  };
};

std::unique_ptr<EntryStore> open_store(const TempDir& dir, StoreOptions options = {}) {
  auto store = EntryStore::open(dir.str(), options);
  EXPECT_TRUE(store.ok()) << (store.ok() ? "" : store.error().message);
  return store.ok() ? std::move(*store) : nullptr;
}

size_t count_lines_with(const std::string& text, const std::string& needle) {
  size_t count = 0;
  for (size_t pos = text.find(needle); pos != std::string::npos; pos = text.find(needle, pos + 1)) {
    ++count;
  }
  return count;
}

std::vector<std::filesystem::path> table_files(const TempDir& dir) {
  std::vector<std::filesystem::path> files;
  for (const auto& item : std::filesystem::directory_iterator(dir.path())) {
    if (item.path().extension() == ".sst") files.push_back(item.path());
  }
  return files;
}

// XORs `count` bytes at `offset` of a file on disk with 0xFF.
void flip_bytes(const std::filesystem::path& file, uint64_t offset, size_t count) {
  std::fstream stream(file, std::ios::in | std::ios::out | std::ios::binary);
  ASSERT_TRUE(stream.good()) << file;
  std::string bytes(count, '\0');
  stream.seekg(static_cast<std::streamoff>(offset));
  stream.read(bytes.data(), static_cast<std::streamsize>(count));
  for (auto& c : bytes) c = static_cast<char>(c ^ 0xFF);
  stream.seekp(static_cast<std::streamoff>(offset));
  stream.write(bytes.data(), static_cast<std::streamsize>(count));
  ASSERT_TRUE(stream.good());
}

// Reads every stored entry back: each read must give the written bytes or corrupt_data.
// Returns how many entries were served whole.
size_t served_whole(EntryStore& store, const std::map<uint64_t, TestEntry>& written) {
  size_t whole = 0;
  for (const auto& meta : store.entries()) {
    auto it = written.find(meta.id);
    if (it == written.end()) {
      ADD_FAILURE() << "entry " << meta.id << " was never written";
      continue;
    }
    bool ok = true;
    for (const auto& [step, blob] : it->second.blobs) {
      auto read = store.read_blob(meta.id, step);
      if (read.ok()) {
        EXPECT_EQ(*read, blob) << "entry " << meta.id << " served wrong bytes";
      } else {
        EXPECT_TRUE(read.error().code == Errc::corrupt_data ||
                    read.error().code == Errc::not_found)
            << read.error().message;
        ok = false;
        break;
      }
    }
    whole += ok ? 1 : 0;
  }
  return whole;
}

class EntryStoreWriteFailure : public ::testing::TestWithParam<rocksdb::IOStatus> {};

TEST_P(EntryStoreWriteFailure, TurnsInsertsOffWithOneWarningAndReadsGoOn) {
  TempDir dir;
  auto fs = std::make_shared<FailingFileSystem>(rocksdb::FileSystem::Default());
  fs->failure = GetParam();
  std::unique_ptr<rocksdb::Env> env = rocksdb::NewCompositeEnv(fs);
  StoreOptions options;
  options.env = env.get();
  TestEntry first = make_test_entry(1, 4000, {5, 10});
  uint64_t first_id = 0;
  {
    auto store = open_store(dir, options);
    ASSERT_NE(store, nullptr);
    auto id = insert_entry(*store, first);
    ASSERT_TRUE(id.ok());
    first_id = *id;

    fs->fail_writes = true;
    ::testing::internal::CaptureStderr();
    auto failed = insert_entry(*store, make_test_entry(2, 4000));
    auto refused = insert_entry(*store, make_test_entry(3, 4000));
    store->record_hit(first_id, 5);
    std::string warnings = ::testing::internal::GetCapturedStderr();

    ASSERT_FALSE(failed.ok());
    EXPECT_EQ(failed.error().code, Errc::io_error) << failed.error().message;
    ASSERT_FALSE(refused.ok());
    EXPECT_EQ(refused.error().code, Errc::io_error);
    EXPECT_EQ(count_lines_with(warnings, "reel: warning: cache inserts disabled: "), 1u)
        << warnings;
    StoreStats stats = store->stats();
    EXPECT_FALSE(stats.inserts_enabled);
    EXPECT_EQ(stats.inserts, 1u);
    EXPECT_EQ(stats.insert_failures, 2u);
    EXPECT_EQ(stats.entries, 1u);

    // Reads keep working.
    EXPECT_EQ(*store->read_blob(first_id, 10), first.blobs.at(10));
    EXPECT_EQ(*store->vector(first_id), first.vector);
    fs->fail_writes = false;
    // Still off until reopened, even though the disk is back.
    EXPECT_FALSE(insert_entry(*store, make_test_entry(4, 100)).ok());
  }
  auto store = open_store(dir, options);
  ASSERT_NE(store, nullptr);
  EXPECT_TRUE(store->stats().inserts_enabled);
  ASSERT_EQ(store->entries().size(), 1u);
  EXPECT_EQ(store->entries()[0].id, first_id);
  EXPECT_EQ(*store->read_blob(first_id, 5), first.blobs.at(5));
  EXPECT_TRUE(insert_entry(*store, make_test_entry(5, 100)).ok());
}

INSTANTIATE_TEST_SUITE_P(EntryStore, EntryStoreWriteFailure,
                         ::testing::Values(rocksdb::IOStatus::IOError("injected write failure"),
                                           rocksdb::IOStatus::NoSpace("injected: disk full")),
                         [](const auto& info) {
                           return info.param.IsNoSpace() ? std::string("DiskFull")
                                                         : std::string("IoError");
                         });

TEST(EntryStore, AStoredValueWithFlippedBytesIsDroppedNotServed) {
  TempDir dir;
  TestEntry damaged = make_test_entry(1, 3000, {5, 10});
  TestEntry intact = make_test_entry(2, 3000, {5, 10});
  uint64_t damaged_id = 0;
  uint64_t intact_id = 0;
  {
    auto store = open_store(dir);
    ASSERT_NE(store, nullptr);
    damaged_id = *insert_entry(*store, damaged);
    intact_id = *insert_entry(*store, intact);
  }
  with_raw_db(dir.str(), [&](rocksdb::DB& db, std::vector<rocksdb::ColumnFamilyHandle*>& cfs) {
    std::string key = detail::blob_key(damaged_id, 10);
    std::string value;
    ASSERT_TRUE(db.Get({}, cfs[1], key, &value).ok());
    ASSERT_EQ(value.size(), 8 + damaged.blobs.at(10).size());
    for (size_t i = 1000; i < 1004; ++i) value[i] = static_cast<char>(value[i] ^ 0x5A);
    ASSERT_TRUE(db.Put({}, cfs[1], key, value).ok());
  });
  {
    auto store = open_store(dir);
    ASSERT_NE(store, nullptr);
    ::testing::internal::CaptureStderr();
    auto read = store->read_blob(damaged_id, 10);
    std::string warnings = ::testing::internal::GetCapturedStderr();
    ASSERT_FALSE(read.ok());
    EXPECT_EQ(read.error().code, Errc::corrupt_data);
    EXPECT_NE(warnings.find("dropping corrupted"), std::string::npos);
    // The whole entry is gone, its undamaged step too.
    EXPECT_EQ(store->read_blob(damaged_id, 5).error().code, Errc::not_found);
    EXPECT_EQ(store->vector(damaged_id).error().code, Errc::not_found);
    EXPECT_EQ(store->stats().corrupted, 1u);
    EXPECT_EQ(store->stats().entries, 1u);
    EXPECT_EQ(*store->read_blob(intact_id, 10), intact.blobs.at(10));
    EXPECT_TRUE(store->stats().inserts_enabled);
  }
  // The drop is persisted; our checksum caught it, RocksDB's files are sound: no repair.
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "REEL_REPAIR_NEEDED"));
  auto store = open_store(dir);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->entries().size(), 1u);
  EXPECT_EQ(store->entries()[0].id, intact_id);
}

TEST(EntryStore, DamagedMetadataVectorAndGlobalBlobAreDroppedOrReported) {
  TempDir dir;
  uint64_t meta_damaged = 0;
  uint64_t vector_damaged = 0;
  uint64_t intact = 0;
  {
    auto store = open_store(dir);
    ASSERT_NE(store, nullptr);
    meta_damaged = *insert_entry(*store, make_test_entry(1, 500));
    vector_damaged = *insert_entry(*store, make_test_entry(2, 500));
    intact = *insert_entry(*store, make_test_entry(3, 500));
    ASSERT_TRUE(store->put_blob_global("idf", "frequencies").ok());
  }
  auto flip_last = [](std::string& value) { value.back() = static_cast<char>(value.back() ^ 1); };
  with_raw_db(dir.str(), [&](rocksdb::DB& db, std::vector<rocksdb::ColumnFamilyHandle*>& cfs) {
    std::string value;
    ASSERT_TRUE(db.Get({}, cfs[2], detail::id_key(meta_damaged), &value).ok());
    flip_last(value);
    ASSERT_TRUE(db.Put({}, cfs[2], detail::id_key(meta_damaged), value).ok());
    ASSERT_TRUE(db.Get({}, cfs[3], detail::id_key(vector_damaged), &value).ok());
    flip_last(value);
    ASSERT_TRUE(db.Put({}, cfs[3], detail::id_key(vector_damaged), value).ok());
    ASSERT_TRUE(db.Get({}, cfs[0], "global/idf", &value).ok());
    flip_last(value);
    ASSERT_TRUE(db.Put({}, cfs[0], "global/idf", value).ok());
  });
  ::testing::internal::CaptureStderr();
  auto store = open_store(dir);
  ASSERT_NE(store, nullptr);
  // Damaged metadata is found at open.
  EXPECT_EQ(store->stats().corrupted, 1u);
  EXPECT_EQ(store->read_blob(meta_damaged, 10).error().code, Errc::not_found);
  // A damaged vector drops its entry when read.
  EXPECT_EQ(store->vector(vector_damaged).error().code, Errc::corrupt_data);
  EXPECT_EQ(store->read_blob(vector_damaged, 10).error().code, Errc::not_found);
  EXPECT_EQ(store->stats().corrupted, 2u);
  EXPECT_EQ(store->get_blob_global("idf").error().code, Errc::corrupt_data);
  ::testing::internal::GetCapturedStderr();
  EXPECT_TRUE(store->vector(intact).ok());
  // A rewritten global blob is whole again.
  ASSERT_TRUE(store->put_blob_global("idf", "rebuilt").ok());
  EXPECT_EQ(*store->get_blob_global("idf"), "rebuilt");
}

// Seven entries of 64 KiB each, flushed into one table file of the entries family.
std::map<uint64_t, TestEntry> write_seven_entries(const TempDir& dir) {
  std::map<uint64_t, TestEntry> written;
  auto store = open_store(dir);
  EXPECT_NE(store, nullptr);
  if (store == nullptr) return written;
  for (uint64_t i = 0; i < 7; ++i) {
    TestEntry entry = make_test_entry(i + 1, 64 << 10);
    auto id = insert_entry(*store, entry);
    EXPECT_TRUE(id.ok());
    if (id.ok()) written[*id] = std::move(entry);
  }
  return written;
}

TEST(EntryStore, FlippedBytesInATableFileOnDiskAreAMissAndTheRestIsServed) {
  TempDir dir;
  std::map<uint64_t, TestEntry> written = write_seven_entries(dir);
  ASSERT_EQ(written.size(), 7u);
  // The entries family holds the only large table file; its middle is inside a data block
  // (blobs are stored uncompressed, and the index and footer are at the end).
  auto files = table_files(dir);
  ASSERT_FALSE(files.empty());
  auto largest = *std::max_element(files.begin(), files.end(), [](const auto& a, const auto& b) {
    return std::filesystem::file_size(a) < std::filesystem::file_size(b);
  });
  ASSERT_GT(std::filesystem::file_size(largest), 7u * (64 << 10));
  flip_bytes(largest, std::filesystem::file_size(largest) / 2, 16);

  uint64_t added_id = 0;
  TestEntry added = make_test_entry(50, 1000);
  {
    ::testing::internal::CaptureStderr();
    auto store = open_store(dir);
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(store->entries().size(), 7u);  // nothing is read from table data at open
    size_t whole = served_whole(*store, written);
    ::testing::internal::GetCapturedStderr();
    EXPECT_GE(whole, 5u);
    EXPECT_LE(whole, 6u);
    EXPECT_EQ(store->stats().corrupted, 7u - whole);
    EXPECT_EQ(store->entries().size(), whole);
    // A second pass serves the same entries and finds nothing new.
    EXPECT_EQ(served_whole(*store, written), whole);
    // Writes still work.
    auto id = insert_entry(*store, added);
    ASSERT_TRUE(id.ok());
    added_id = *id;
  }
  EXPECT_TRUE(std::filesystem::exists(dir.path() / "REEL_REPAIR_NEEDED"));
  written[added_id] = added;

  // The next open repairs: the damaged table file is set aside with the entries that shared it,
  // and what is left is whole.
  {
    ::testing::internal::CaptureStderr();
    auto store = open_store(dir);
    std::string warnings = ::testing::internal::GetCapturedStderr();
    ASSERT_NE(store, nullptr);
    EXPECT_NE(warnings.find("repairing cache store"), std::string::npos) << warnings;
    EXPECT_EQ(served_whole(*store, written), store->entries().size());
    EXPECT_EQ(*store->read_blob(added_id, 10), added.blobs.at(10));
    auto id = insert_entry(*store, make_test_entry(51, 1000));
    ASSERT_TRUE(id.ok());
    EXPECT_GT(*id, added_id);  // ids are not reused after a repair either
    EXPECT_TRUE(store->stats().inserts_enabled);
  }
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "REEL_REPAIR_NEEDED"));
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "lost"));
  // Compaction, which reads every block, no longer meets the damage.
  with_raw_db(dir.str(), [&](rocksdb::DB& db, std::vector<rocksdb::ColumnFamilyHandle*>& cfs) {
    for (auto* cf : cfs) {
      rocksdb::Status status = db.CompactRange({}, cf, nullptr, nullptr);
      EXPECT_TRUE(status.ok()) << status.ToString();
    }
  });
}

TEST(EntryStore, DamageInTheMiddleOfEveryTableFileStillOpensAndServesNoWrongBytes) {
  TempDir dir;
  std::map<uint64_t, TestEntry> written = write_seven_entries(dir);
  ASSERT_EQ(written.size(), 7u);
  auto files = table_files(dir);
  ASSERT_GE(files.size(), 3u);
  for (const auto& file : files) flip_bytes(file, std::filesystem::file_size(file) / 2, 16);
  for (int round = 0; round < 2; ++round) {  // the second open repairs what the first found
    auto store = open_store(dir);
    ASSERT_NE(store, nullptr);
    served_whole(*store, written);
    for (const auto& meta : store->entries()) {
      auto vector = store->vector(meta.id);
      if (vector.ok()) {
        EXPECT_EQ(*vector, written[meta.id].vector);
      }
    }
    TestEntry added = make_test_entry(60 + round, 1000);
    auto id = insert_entry(*store, added);
    ASSERT_TRUE(id.ok());
    written[*id] = added;  // an id may come back only when nothing of its old entry is left
  }
}

TEST(EntryStore, ADamagedManifestIsRepairedAtOpen) {
  TempDir dir;
  std::map<uint64_t, TestEntry> written = write_seven_entries(dir);
  ASSERT_EQ(written.size(), 7u);
  std::filesystem::path manifest;
  for (const auto& item : std::filesystem::directory_iterator(dir.path())) {
    if (item.path().filename().string().rfind("MANIFEST-", 0) == 0) manifest = item.path();
  }
  ASSERT_FALSE(manifest.empty());
  flip_bytes(manifest, std::filesystem::file_size(manifest) / 2, 8);
  ::testing::internal::CaptureStderr();
  auto store = open_store(dir);
  std::string warnings = ::testing::internal::GetCapturedStderr();
  ASSERT_NE(store, nullptr);
  // The table files are sound: the repair rebuilds the MANIFEST and every entry survives.
  EXPECT_EQ(served_whole(*store, written), 7u) << warnings;
  EXPECT_TRUE(insert_entry(*store, make_test_entry(70, 1000)).ok());
}

}  // namespace
}  // namespace reel::cachestore
