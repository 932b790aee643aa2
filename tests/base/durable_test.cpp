// base/durable.hpp: fsync of files and of the folder that names them.
#include "base/durable.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

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

}  // namespace
}  // namespace reel
