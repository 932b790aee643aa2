#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "test_frames.hpp"
#include "video/image.hpp"

namespace reel::video {
namespace {

using testing::noise;
using testing::pixel;
using testing::solid;
using testing::TempDir;

TEST(Png, RoundTripsEveryPixelExactly) {
  TempDir dir;
  const Frame f = noise(37, 21, 3);
  const std::string path = dir.file("frame.png");
  const Status written = write_png(path, f);
  ASSERT_TRUE(written.ok()) << written.error().message;
  const auto back = read_png(path);
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->width, 37);
  EXPECT_EQ(back->height, 21);
  EXPECT_EQ(back->rgb, f.rgb);
}

TEST(Png, WriteLeavesOnlyTheFinalFileBehind) {
  TempDir dir;
  ASSERT_TRUE(write_png(dir.file("a.png"), solid(4, 4, 1, 2, 3)).ok());
  EXPECT_TRUE(std::filesystem::exists(dir.file("a.png")));
  EXPECT_FALSE(std::filesystem::exists(dir.file("a.png.tmp")));
}

TEST(Png, WriteIntoAMissingFolderIsAnIoErrorAndLeavesNothing) {
  TempDir dir;
  const std::string path = dir.file("missing/a.png");
  const Status s = write_png(path, solid(4, 4, 1, 2, 3));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, Errc::io_error);
  EXPECT_NE(s.error().message.find("missing"), std::string::npos) << s.error().message;
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST(Png, WriteRejectsAnInvalidFrame) {
  TempDir dir;
  const Status s = write_png(dir.file("a.png"), Frame{2, 2, {1, 2, 3}});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, Errc::invalid_argument);
  EXPECT_FALSE(std::filesystem::exists(dir.file("a.png")));
}

TEST(Png, ReadOfAMissingFileIsNotFound) {
  TempDir dir;
  const auto f = read_png(dir.file("nope.png"));
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.error().code, Errc::not_found);
}

TEST(Png, ReadOfAFileThatIsNotAnImageIsCorruptData) {
  TempDir dir;
  const std::string path = dir.file("text.png");
  std::ofstream(path) << "this is not a PNG";
  const auto f = read_png(path);
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.error().code, Errc::corrupt_data);
}

TEST(ContactSheet, IsAsWideAsTheLongestRowAndAsTallAsAllRowsWithGaps) {
  const std::vector<std::vector<Frame>> rows{
      {solid(10, 6, 255, 0, 0), solid(10, 6, 255, 0, 0), solid(10, 6, 255, 0, 0)},
      {solid(10, 6, 0, 255, 0)}};
  const auto sheet = contact_sheet(rows, 3);
  ASSERT_TRUE(sheet.ok()) << sheet.error().message;
  EXPECT_EQ(sheet->width, 3 * 10 + 2 * 3);
  EXPECT_EQ(sheet->height, 2 * 6 + 1 * 3);
  EXPECT_EQ(sheet->rgb.size(), static_cast<size_t>(sheet->width) * sheet->height * 3);
}

TEST(ContactSheet, PlacesEachFrameInItsCellWithWhiteBetween) {
  const std::vector<std::vector<Frame>> rows{{solid(4, 4, 255, 0, 0), solid(4, 4, 0, 0, 255)},
                                             {solid(4, 4, 0, 255, 0)}};
  const auto sheet = contact_sheet(rows, 2);
  ASSERT_TRUE(sheet.ok());
  EXPECT_EQ(pixel(*sheet, 0, 0), (std::vector<int>{255, 0, 0}));
  EXPECT_EQ(pixel(*sheet, 4, 0), (std::vector<int>{255, 255, 255}));  // gap
  EXPECT_EQ(pixel(*sheet, 6, 3), (std::vector<int>{0, 0, 255}));
  EXPECT_EQ(pixel(*sheet, 3, 6), (std::vector<int>{0, 255, 0}));
  EXPECT_EQ(pixel(*sheet, 8, 8), (std::vector<int>{255, 255, 255}));  // short row
}

TEST(ContactSheet, GivesEveryCellTheLargestFrameSize) {
  const auto sheet = contact_sheet({{solid(8, 2, 0, 0, 0)}, {solid(3, 5, 0, 0, 0)}}, 0);
  ASSERT_TRUE(sheet.ok());
  EXPECT_EQ(sheet->width, 8);
  EXPECT_EQ(sheet->height, 10);
}

TEST(ContactSheet, RejectsNoRowsAnEmptyRowAndANegativeGap) {
  EXPECT_EQ(contact_sheet({}).error().code, Errc::invalid_argument);
  EXPECT_EQ(contact_sheet({{solid(2, 2, 0, 0, 0)}, {}}).error().code, Errc::invalid_argument);
  EXPECT_EQ(contact_sheet({{solid(2, 2, 0, 0, 0)}}, -1).error().code, Errc::invalid_argument);
}

TEST(ContactSheet, WritesAPngOfTheSheetsSize) {
  TempDir dir;
  const std::string path = dir.file("sheet.png");
  const std::vector<std::vector<Frame>> rows{{solid(6, 4, 9, 9, 9), solid(6, 4, 9, 9, 9)},
                                             {solid(6, 4, 9, 9, 9)}};
  ASSERT_TRUE(write_contact_sheet(path, rows).ok());
  const auto back = read_png(path);
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->width, 2 * 6 + 2);
  EXPECT_EQ(back->height, 2 * 4 + 2);
}

}  // namespace
}  // namespace reel::video
