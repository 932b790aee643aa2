#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <utility>

#include "test_frames.hpp"
#include "video/mp4_reader.hpp"
#include "video/mp4_writer.hpp"

namespace reel::video {
namespace {

using testing::moving_gradient;
using testing::solid;
using testing::TempDir;
namespace fs = std::filesystem;

// Writes `frames` gradient frames and finishes; fails the test on any error.
void write_gradient(const std::string& path, int width, int height, int frames,
                    const Mp4Options& opts = {}) {
  auto writer = Mp4Writer::open(path, width, height, opts);
  ASSERT_TRUE(writer.ok()) << writer.error().message;
  for (int i = 0; i < frames; ++i) {
    const Status s = writer->append(moving_gradient(width, height, i));
    ASSERT_TRUE(s.ok()) << s.error().message;
  }
  EXPECT_EQ(writer->frames_written(), frames);
  const Status s = writer->finish();
  ASSERT_TRUE(s.ok()) << s.error().message;
}

// What `command` prints on stdout; empty when it cannot run.
std::string run(const std::string& command) {
  std::string out;
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) return out;
  char buf[256];
  while (fgets(buf, sizeof buf, pipe)) out += buf;
  pclose(pipe);
  return out;
}

bool have_ffprobe() { return std::system("ffprobe -version >/dev/null 2>&1") == 0; }

TEST(Mp4Writer, WritesFramesThatTheDemuxerCountsBack) {
  TempDir dir;
  const std::string path = dir.file("out.mp4");
  write_gradient(path, 64, 48, 10, Mp4Options{.fps = 12});
  const auto info = probe(path);
  ASSERT_TRUE(info.ok()) << info.error().message;
  EXPECT_EQ(info->frames, 10);
  EXPECT_EQ(info->width, 64);
  EXPECT_EQ(info->height, 48);
  EXPECT_DOUBLE_EQ(info->fps, 12.0);
  EXPECT_EQ(info->codec, "h264");
}

TEST(Mp4Writer, LeavesOnlyTheFinalFileAfterFinish) {
  TempDir dir;
  const std::string path = dir.file("out.mp4");
  write_gradient(path, 32, 32, 3);
  EXPECT_TRUE(fs::exists(path));
  EXPECT_FALSE(fs::exists(path + ".part"));
}

TEST(Mp4Writer, WritesToThePartFileUntilFinish) {
  TempDir dir;
  const std::string path = dir.file("out.mp4");
  auto writer = Mp4Writer::open(path, 32, 32);
  ASSERT_TRUE(writer.ok());
  ASSERT_TRUE(writer->append(solid(32, 32, 1, 2, 3)).ok());
  EXPECT_TRUE(fs::exists(path + ".part"));
  EXPECT_FALSE(fs::exists(path));
  ASSERT_TRUE(writer->finish().ok());
  EXPECT_TRUE(fs::exists(path));
}

TEST(Mp4Writer, DestroyedWithoutFinishLeavesNoFileAndNoPartFile) {
  TempDir dir;
  const std::string path = dir.file("out.mp4");
  {
    auto writer = Mp4Writer::open(path, 32, 32);
    ASSERT_TRUE(writer.ok());
    for (int i = 0; i < 5; ++i) ASSERT_TRUE(writer->append(moving_gradient(32, 32, i)).ok());
  }
  EXPECT_FALSE(fs::exists(path));
  EXPECT_FALSE(fs::exists(path + ".part"));
}

TEST(Mp4Writer, FailsWithAClearIoErrorInAFolderThatDoesNotExistAndLeavesNoFile) {
  TempDir dir;
  const std::string path = dir.file("no/such/folder/out.mp4");
  const auto writer = Mp4Writer::open(path, 32, 32);
  ASSERT_FALSE(writer.ok());
  EXPECT_EQ(writer.error().code, Errc::io_error);
  EXPECT_NE(writer.error().message.find(path), std::string::npos) << writer.error().message;
  EXPECT_NE(writer.error().message.find("No such file"), std::string::npos)
      << writer.error().message;
  EXPECT_FALSE(fs::exists(path));
  EXPECT_FALSE(fs::exists(path + ".part"));
}

TEST(Mp4Writer, FailsWithAnIoErrorWhenTheFolderIsAFile) {
  TempDir dir;
  const std::string file = dir.file("plain-file");
  std::ofstream(file) << "x";
  const auto writer = Mp4Writer::open(file + "/out.mp4", 32, 32);
  ASSERT_FALSE(writer.ok());
  EXPECT_EQ(writer.error().code, Errc::io_error);
  EXPECT_EQ(fs::file_size(file), 1u);
}

TEST(Mp4Writer, FailsWithAnIoErrorInAFolderItCannotWriteTo) {
  TempDir dir;
  const fs::path locked = dir.path() / "locked";
  fs::create_directory(locked);
  fs::permissions(locked, fs::perms::owner_read | fs::perms::owner_exec);
  // root (as in many containers) may write anywhere: then there is nothing to test.
  if (access(locked.c_str(), W_OK) == 0) {
    fs::permissions(locked, fs::perms::owner_all);
    GTEST_SKIP() << "this user can write to read-only folders";
  }
  const auto writer = Mp4Writer::open((locked / "out.mp4").string(), 32, 32);
  fs::permissions(locked, fs::perms::owner_all);
  ASSERT_FALSE(writer.ok());
  EXPECT_EQ(writer.error().code, Errc::io_error);
  EXPECT_TRUE(fs::is_empty(locked));
}

TEST(Mp4Writer, DecodesASolidColourWithinAFewLevels) {
  TempDir dir;
  const std::string path = dir.file("solid.mp4");
  const Frame colour = solid(48, 32, 200, 60, 30);
  {
    auto writer = Mp4Writer::open(path, 48, 32);
    ASSERT_TRUE(writer.ok());
    for (int i = 0; i < 4; ++i) ASSERT_TRUE(writer->append(colour).ok());
    ASSERT_TRUE(writer->finish().ok());
  }
  const auto frames = read_video(path);
  ASSERT_TRUE(frames.ok()) << frames.error().message;
  ASSERT_EQ(frames->size(), 4u);
  for (const Frame& f : *frames) {
    ASSERT_EQ(f.width, 48);
    ASSERT_EQ(f.height, 32);
    for (size_t i = 0; i < f.rgb.size(); ++i)
      ASSERT_NEAR(f.rgb[i], colour.rgb[i], 4) << "byte " << i;
  }
}

TEST(Mp4Writer, PadsAnOddSizeByRepeatingTheLastRowAndColumn) {
  TempDir dir;
  const std::string path = dir.file("odd.mp4");
  // Left part dark, last column bright: the padding column must come out bright too.
  Frame f = solid(33, 17, 20, 20, 20);
  for (int y = 0; y < 17; ++y)
    for (int c = 0; c < 3; ++c) f.rgb[(static_cast<size_t>(y) * 33 + 32) * 3 + c] = 230;
  {
    auto writer = Mp4Writer::open(path, 33, 17, Mp4Options{.crf = 0});
    ASSERT_TRUE(writer.ok()) << writer.error().message;
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(writer->append(f).ok());
    ASSERT_TRUE(writer->finish().ok());
  }
  const auto info = probe(path);
  ASSERT_TRUE(info.ok()) << info.error().message;
  EXPECT_EQ(info->width, 34);
  EXPECT_EQ(info->height, 18);
  EXPECT_EQ(info->frames, 3);
  const auto frames = read_video(path);
  ASSERT_TRUE(frames.ok()) << frames.error().message;
  ASSERT_EQ(frames->size(), 3u);
  const Frame& back = frames->front();
  EXPECT_NEAR(testing::pixel(back, 33, 5)[0], 230, 8);
  EXPECT_NEAR(testing::pixel(back, 33, 17)[0], 230, 8);
  EXPECT_NEAR(testing::pixel(back, 10, 17)[0], 20, 8);
}

TEST(Mp4Writer, FragmentedFileHasItsMovieHeaderFirstAndProbesBack) {
  TempDir dir;
  const std::string path = dir.file("frag.mp4");
  write_gradient(path, 64, 32, 20, Mp4Options{.fps = 4, .fragmented = true});
  std::ifstream file(path, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  const size_t moov = bytes.find("moov");
  const size_t moof = bytes.find("moof");
  ASSERT_NE(moov, std::string::npos);
  ASSERT_NE(moof, std::string::npos);
  EXPECT_LT(moov, moof);
  EXPECT_NE(bytes.find("moof", moof + 4), std::string::npos) << "expected a fragment a second";

  const auto info = probe(path);
  ASSERT_TRUE(info.ok()) << info.error().message;
  EXPECT_EQ(info->frames, 20);
  EXPECT_DOUBLE_EQ(info->fps, 4.0);
  const auto frames = read_video(path);
  ASSERT_TRUE(frames.ok()) << frames.error().message;
  EXPECT_EQ(frames->size(), 20u);
}

TEST(Mp4Writer, FragmentedPartFileCanBeReadWhileItIsStillGrowing) {
  TempDir dir;
  const std::string path = dir.file("growing.mp4");
  auto writer = Mp4Writer::open(path, 32, 32, Mp4Options{.fps = 4, .fragmented = true});
  ASSERT_TRUE(writer.ok()) << writer.error().message;
  for (int i = 0; i < 16; ++i) ASSERT_TRUE(writer->append(moving_gradient(32, 32, i)).ok());
  // The encoder holds back about a second; the fragments before that are on disk already.
  const auto info = probe(path + ".part");
  ASSERT_TRUE(info.ok()) << info.error().message;
  EXPECT_GE(info->frames, 4);
  EXPECT_LE(info->frames, 16);
  const auto frames = read_video(path + ".part");
  ASSERT_TRUE(frames.ok()) << frames.error().message;
  EXPECT_EQ(static_cast<int64_t>(frames->size()), info->frames);
}

TEST(Mp4Writer, FfprobeReportsTheFrameRateSizeFrameCountAndAStartAtZero) {
  if (!have_ffprobe()) GTEST_SKIP() << "ffprobe is not installed";
  TempDir dir;
  for (const bool fragmented : {false, true}) {
    const std::string path = dir.file(fragmented ? "frag.mp4" : "plain.mp4");
    write_gradient(path, 40, 24, 9, Mp4Options{.fps = 6, .fragmented = fragmented});
    const std::string out =
        run("ffprobe -v error -select_streams v:0 -count_packets -show_entries "
            "stream=codec_name,width,height,avg_frame_rate,start_time,nb_read_packets -of csv=p=0 '" +
            path + "'");
    EXPECT_EQ(out, "h264,40,24,6/1,0.000000,9\n") << (fragmented ? "fragmented" : "plain");
  }
}

TEST(Mp4Writer, RejectsAFrameOfTheWrongSizeAndKeepsWorking) {
  TempDir dir;
  const std::string path = dir.file("out.mp4");
  auto writer = Mp4Writer::open(path, 32, 32);
  ASSERT_TRUE(writer.ok());
  const Status wrong = writer->append(solid(16, 32, 0, 0, 0));
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.error().code, Errc::invalid_argument);
  ASSERT_TRUE(writer->append(solid(32, 32, 0, 0, 0)).ok());
  ASSERT_TRUE(writer->finish().ok());
  EXPECT_EQ(writer->frames_written(), 1);
}

TEST(Mp4Writer, RejectsBadSizesAndOptionsBeforeTouchingTheDisk) {
  TempDir dir;
  const std::string path = dir.file("out.mp4");
  EXPECT_EQ(Mp4Writer::open(path, 0, 32).error().code, Errc::invalid_argument);
  EXPECT_EQ(Mp4Writer::open(path, 32, -2).error().code, Errc::invalid_argument);
  EXPECT_EQ(Mp4Writer::open(path, 32, 32, Mp4Options{.fps = 0}).error().code,
            Errc::invalid_argument);
  EXPECT_EQ(Mp4Writer::open(path, 32, 32, Mp4Options{.crf = 52}).error().code,
            Errc::invalid_argument);
  const auto preset = Mp4Writer::open(path, 32, 32, Mp4Options{.preset = "warp"});
  ASSERT_FALSE(preset.ok());
  EXPECT_EQ(preset.error().code, Errc::invalid_argument);
  EXPECT_NE(preset.error().message.find("warp"), std::string::npos);
  EXPECT_TRUE(fs::is_empty(dir.path()));
}

TEST(Mp4Writer, FinishWithoutFramesFailsAndLeavesNoFile) {
  TempDir dir;
  const std::string path = dir.file("empty.mp4");
  {
    auto writer = Mp4Writer::open(path, 32, 32);
    ASSERT_TRUE(writer.ok());
    const Status s = writer->finish();
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.error().code, Errc::invalid_argument);
  }
  EXPECT_TRUE(fs::is_empty(dir.path()));
}

TEST(Mp4Writer, RefusesToAppendOrFinishTwiceAfterFinish) {
  TempDir dir;
  auto writer = Mp4Writer::open(dir.file("out.mp4"), 32, 32);
  ASSERT_TRUE(writer.ok());
  ASSERT_TRUE(writer->append(solid(32, 32, 0, 0, 0)).ok());
  ASSERT_TRUE(writer->finish().ok());
  EXPECT_EQ(writer->append(solid(32, 32, 0, 0, 0)).error().code, Errc::invalid_argument);
  EXPECT_EQ(writer->finish().error().code, Errc::invalid_argument);
  EXPECT_TRUE(fs::exists(dir.file("out.mp4")));  // the finished file survives the writer
}

TEST(Mp4Writer, AMovedWriterKeepsWritingAndTheMovedFromOneRefuses) {
  TempDir dir;
  const std::string path = dir.file("out.mp4");
  auto opened = Mp4Writer::open(path, 32, 32);
  ASSERT_TRUE(opened.ok());
  Mp4Writer writer = std::move(*opened);
  ASSERT_TRUE(writer.append(solid(32, 32, 5, 5, 5)).ok());
  EXPECT_EQ(opened->append(solid(32, 32, 5, 5, 5)).error().code, Errc::invalid_argument);
  EXPECT_EQ(opened->frames_written(), 0);
  ASSERT_TRUE(writer.finish().ok());
  const auto info = probe(path);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->frames, 1);
}

TEST(Mp4Writer, MoveAssigningOverAnUnfinishedWriterRemovesItsPartFile) {
  TempDir dir;
  auto first = Mp4Writer::open(dir.file("first.mp4"), 32, 32);
  auto second = Mp4Writer::open(dir.file("second.mp4"), 32, 32);
  ASSERT_TRUE(first.ok() && second.ok());
  *first = std::move(*second);
  EXPECT_FALSE(fs::exists(dir.file("first.mp4.part")));
  EXPECT_TRUE(fs::exists(dir.file("second.mp4.part")));
}

}  // namespace
}  // namespace reel::video
