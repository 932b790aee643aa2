// Reads video files back: what a file holds (probe) and its frames (read_video).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/expected.hpp"
#include "video/frame.hpp"

namespace reel::video {

struct VideoInfo {
  int width = 0;
  int height = 0;
  double fps = 0;       // the stream's average frame rate (its nominal rate when that is absent)
  int64_t frames = 0;   // packets in the video stream; one per frame for the codecs we write
  std::string codec;    // FFmpeg's short name: "h264", "vp9", ...
};

// Reads the container only (no decoding beyond what FFmpeg needs for the stream parameters).
// Errors: not_found (no such file), io_error (unreadable), corrupt_data (not a video FFmpeg can
// demux, or no video stream).
[[nodiscard]] Expected<VideoInfo> probe(const std::string& path);

// Decodes every frame of the best video stream to RGB24, honouring the stream's colour matrix
// and range. Holds the whole video in memory. Errors as probe, plus unsupported (no decoder for
// the codec) and corrupt_data (decoding failed).
[[nodiscard]] Expected<std::vector<Frame>> read_video(const std::string& path);

}  // namespace reel::video
