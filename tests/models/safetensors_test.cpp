#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "models/safetensors.hpp"

namespace reel::models {
namespace {

namespace fs = std::filesystem;

class SafeTensorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("reel_st_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  // Writes raw bytes: an 8-byte header length, the header, then `data`.
  std::string write_raw(const std::string& name, const std::string& header, const std::string& data,
                        uint64_t claimed_len = 0) {
    std::ofstream out(path(name), std::ios::binary);
    uint64_t n = claimed_len ? claimed_len : header.size();
    for (int i = 0; i < 8; ++i) out.put(static_cast<char>(n >> (8 * i)));
    out << header << data;
    return path(name);
  }

  fs::path dir_;
};

TEST_F(SafeTensorsTest, RoundTripsEveryFloatDtypeWithMetadata) {
  auto f32 = torch::randn({3, 4});
  auto f16 = torch::randn({5}).to(torch::kHalf);
  auto bf16 = torch::randn({2, 2, 2}).to(torch::kBFloat16);
  auto i64 = torch::arange(6, torch::kLong).view({2, 3});
  auto scalar = torch::tensor(2.5f).reshape({});
  ASSERT_TRUE(save_safetensors(path("a.safetensors"),
                               {{"w", f32}, {"half", f16}, {"brain", bf16}, {"ids", i64}, {"s", scalar}},
                               {{"note", "hello \"world\""}})
                  .ok());
  auto st = SafeTensors::open(path("a.safetensors"));
  ASSERT_TRUE(st.ok()) << st.error().message;
  EXPECT_EQ(st->names(), (std::vector<std::string>{"brain", "half", "ids", "s", "w"}));
  EXPECT_EQ(st->metadata().at("note"), "hello \"world\"");
  EXPECT_TRUE(torch::equal(*st->get("w"), f32));
  EXPECT_TRUE(torch::equal(*st->get("half"), f16));
  EXPECT_TRUE(torch::equal(*st->get("brain"), bf16));
  EXPECT_TRUE(torch::equal(*st->get("ids"), i64));
  EXPECT_EQ(st->get("s")->dim(), 0);
  EXPECT_EQ(st->record("half")->dtype, "F16");
  auto missing = st->get("nope");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, Errc::not_found);
}

TEST_F(SafeTensorsTest, ATruncatedFileIsAnErrorNamingTheFile) {
  ASSERT_TRUE(save_safetensors(path("full.safetensors"), {{"w", torch::randn({64})}}).ok());
  auto size = fs::file_size(path("full.safetensors"));
  fs::copy_file(path("full.safetensors"), path("cut.safetensors"));
  fs::resize_file(path("cut.safetensors"), size - 10);
  auto st = SafeTensors::open(path("cut.safetensors"));
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, Errc::corrupt_data);
  EXPECT_NE(st.error().message.find("cut.safetensors"), std::string::npos);
  EXPECT_NE(st.error().message.find("past the end"), std::string::npos) << st.error().message;

  fs::resize_file(path("cut.safetensors"), 20);  // header itself cut
  st = SafeTensors::open(path("cut.safetensors"));
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("header length"), std::string::npos) << st.error().message;

  fs::resize_file(path("cut.safetensors"), 3);
  EXPECT_FALSE(SafeTensors::open(path("cut.safetensors")).ok());
}

TEST_F(SafeTensorsTest, BadJsonIsCorruptData) {
  auto p = write_raw("bad.safetensors", "{\"w\": {\"dtype\": \"F32\", ", "");
  auto st = SafeTensors::open(p);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, Errc::corrupt_data);
  EXPECT_NE(st.error().message.find("invalid JSON"), std::string::npos) << st.error().message;
}

TEST_F(SafeTensorsTest, OffsetsPastTheEndAreRejected) {
  auto p = write_raw("off.safetensors", R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})",
                     std::string(8, '\0'));
  auto st = SafeTensors::open(p);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("past the end"), std::string::npos) << st.error().message;
}

TEST_F(SafeTensorsTest, SizeThatDisagreesWithTheShapeIsRejected) {
  auto p = write_raw("shape.safetensors", R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}})",
                     std::string(16, '\0'));
  auto st = SafeTensors::open(p);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("does not match"), std::string::npos) << st.error().message;
}

TEST_F(SafeTensorsTest, OverlappingTensorsAreRejected) {
  auto p = write_raw("overlap.safetensors",
                     R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                     R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                     std::string(12, '\0'));
  auto st = SafeTensors::open(p);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("overlapping"), std::string::npos) << st.error().message;
}

TEST_F(SafeTensorsTest, UnknownDtypeIsUnsupported) {
  auto p = write_raw("dtype.safetensors", R"({"w":{"dtype":"F8_E4M3","shape":[4],"data_offsets":[0,4]}})",
                     std::string(4, '\0'));
  auto st = SafeTensors::open(p);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, Errc::unsupported);
  EXPECT_NE(st.error().message.find("F8_E4M3"), std::string::npos);
}

TEST_F(SafeTensorsTest, AMissingFileIsNotFound) {
  auto st = SafeTensors::open(path("absent.safetensors"));
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, Errc::not_found);
}

TEST_F(SafeTensorsTest, AFailedSaveLeavesNoFile) {
  auto target = (dir_ / "no_such_dir" / "x.safetensors").string();
  EXPECT_FALSE(save_safetensors(target, {{"w", torch::ones({2})}}).ok());
  EXPECT_FALSE(fs::exists(target));
  EXPECT_FALSE(fs::exists(target + ".tmp"));
}

}  // namespace
}  // namespace reel::models
