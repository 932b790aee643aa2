// base/durable.hpp: fsync of files and of the folder that names them.
#include "base/durable.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <iterator>

namespace reel {
namespace {

namespace fs = std::filesystem;

class DurableTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("reel_durable_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(DurableTest, SyncsAWrittenFileAndLeavesItsBytes) {
  const auto path = (dir_ / "a.bin").string();
  { std::ofstream(path, std::ios::binary) << "twelve bytes"; }
  auto st = sync_file(path);
  ASSERT_TRUE(st.ok()) << st.error().message;
  EXPECT_EQ(fs::file_size(path), 12u);
  sync_parent(path);  // the folder that names it
  EXPECT_TRUE(fs::exists(path));
}

TEST_F(DurableTest, AMissingFileIsNotFoundAndNamesThePath) {
  const auto path = (dir_ / "missing.bin").string();
  auto st = sync_file(path);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, Errc::not_found);
  EXPECT_NE(st.error().message.find("missing.bin"), std::string::npos) << st.error().message;
  EXPECT_FALSE(fs::exists(path));  // nothing created
}

TEST_F(DurableTest, SyncingTheFolderOfAMissingFolderIsHarmless) {
  sync_parent((dir_ / "no" / "such" / "file").string());
  sync_parent("relative-name-in-the-working-folder");
  SUCCEED();
}

std::string read_all(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

TEST_F(DurableTest, AnAtomicWriteReplacesTheFileAndLeavesNoTemporary) {
  const auto path = (dir_ / "out.txt").string();
  { std::ofstream(path) << "old contents, longer than the new"; }
  ASSERT_TRUE(write_file_atomic(path, "new\n").ok());
  EXPECT_EQ(read_all(path), "new\n");
  EXPECT_FALSE(fs::exists(path + ".tmp"));
}

TEST_F(DurableTest, AnAtomicWriteThroughASymlinkReplacesItsTargetAndKeepsTheLink) {
  const auto target = (dir_ / "target.txt").string(), link = (dir_ / "link.txt").string();
  { std::ofstream(target) << "old"; }
  fs::create_symlink(target, link);
  ASSERT_TRUE(write_file_atomic(link, "new").ok());
  EXPECT_TRUE(fs::is_symlink(fs::symlink_status(link)));
  EXPECT_EQ(read_all(target), "new");
  EXPECT_FALSE(fs::exists(target + ".tmp"));
  EXPECT_FALSE(fs::exists(link + ".tmp"));
}

TEST_F(DurableTest, AnAtomicWriteToAPipeWritesInPlaceAndKeepsThePipe) {
  // As for /dev/stdout or /dev/null: a rename would replace the special file with a plain one.
  const auto pipe = (dir_ / "pipe").string();
  ASSERT_EQ(::mkfifo(pipe.c_str(), 0600), 0);
  auto reader = std::async(std::launch::async, [&] { return read_all(pipe); });
  ASSERT_TRUE(write_file_atomic(pipe, "through the pipe").ok());
  EXPECT_EQ(reader.get(), "through the pipe");
  EXPECT_TRUE(fs::is_fifo(fs::status(pipe)));
  EXPECT_FALSE(fs::exists(pipe + ".tmp"));
}

TEST_F(DurableTest, AnAtomicWriteToAFolderOrIntoAMissingFolderFailsAndLeavesNothing) {
  auto st = write_file_atomic(dir_.string(), "x");
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, Errc::io_error);
  const auto missing = (dir_ / "no" / "out.txt").string();
  st = write_file_atomic(missing, "x");
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find(missing), std::string::npos) << st.error().message;
  EXPECT_FALSE(fs::exists(dir_ / "no"));
}

}  // namespace
}  // namespace reel
