#include <gtest/gtest.h>

#include <fstream>

#include "test_frames.hpp"
#include "video/metrics.hpp"
#include "video/mp4_reader.hpp"
#include "video/mp4_writer.hpp"

namespace reel::video {
namespace {

using testing::moving_gradient;
using testing::TempDir;

TEST(Probe, ReportsNotFoundForAMissingFile) {
  TempDir dir;
  const auto info = probe(dir.file("missing.mp4"));
  ASSERT_FALSE(info.ok());
  EXPECT_EQ(info.error().code, Errc::not_found);
}

TEST(Probe, ReportsCorruptDataForAFileThatIsNotAVideo) {
  TempDir dir;
  const std::string path = dir.file("junk.mp4");
  std::ofstream(path) << "definitely not an MP4 file, just some text";
  const auto info = probe(path);
  ASSERT_FALSE(info.ok());
  EXPECT_EQ(info.error().code, Errc::corrupt_data);
  EXPECT_FALSE(info.error().message.empty());
}

TEST(ReadVideo, ReportsNotFoundForAMissingFile) {
  TempDir dir;
  const auto frames = read_video(dir.file("missing.mp4"));
  ASSERT_FALSE(frames.ok());
  EXPECT_EQ(frames.error().code, Errc::not_found);
}

TEST(ReadVideo, DecodesAMovingPictureCloseToWhatWasWritten) {
  TempDir dir;
  const std::string path = dir.file("motion.mp4");
  std::vector<Frame> written;
  for (int i = 0; i < 12; ++i) written.push_back(moving_gradient(64, 48, 3 * i));
  {
    auto writer = Mp4Writer::open(path, 64, 48, Mp4Options{.fps = 24, .crf = 18, .preset = "fast"});
    ASSERT_TRUE(writer.ok()) << writer.error().message;
    for (const Frame& f : written) ASSERT_TRUE(writer->append(f).ok());
    ASSERT_TRUE(writer->finish().ok());
  }
  const auto read = read_video(path);
  ASSERT_TRUE(read.ok()) << read.error().message;
  ASSERT_EQ(read->size(), written.size());
  const auto quality = psnr(written, *read);
  ASSERT_TRUE(quality.ok()) << quality.error().message;
  EXPECT_GT(*quality, 35.0);
  const auto similarity = ssim(written, *read);
  ASSERT_TRUE(similarity.ok());
  EXPECT_GT(*similarity, 0.95);
}

}  // namespace
}  // namespace reel::video
