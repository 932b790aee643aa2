// Writes frames to an H.264 MP4 file as they arrive, so a long video never sits in memory.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "base/expected.hpp"
#include "video/frame.hpp"

namespace reel::video {

struct Mp4Options {
  // Frames per second, 1..1000. Default 8.
  int fps = 8;
  // x264 constant rate factor, 0 (lossless) .. 51 (worst); lower is better and larger. Default 18.
  int crf = 18;
  // x264 speed/size trade-off: ultrafast, superfast, veryfast, faster, fast, medium, slow,
  // slower, veryslow or placebo. Default "medium".
  std::string preset = "medium";
  // Fragmented MP4: the movie header first, then a fragment (starting with a keyframe) about
  // every second, so a file that is still growing already plays. Default false.
  bool fragmented = false;
};

// H.264 (libx264), yuv420p with BT.709 colour tags, in an MP4 container. Frame i gets
// pts = i in time base 1/fps, so demuxers report exactly `fps` and the number of frames appended.
//
// The file is written as `<path>.part` in the same folder and renamed to `path` by finish(), so
// `path` is either absent or complete. A writer destroyed before finish() succeeded removes its
// .part file. Movable, not copyable; one thread at a time (the encoder's own threads are inside).
//
// yuv420p needs even sizes: an odd width or height is padded by one column or row that repeats
// the last one, so the file (and what probe/read_video report) is that much larger.
class Mp4Writer {
 public:
  // Errors: invalid_argument (width or height not in 1..16384, bad option), io_error (the
  // folder is missing or not writable), unsupported (this FFmpeg has no libx264), internal
  // (FFmpeg failed otherwise; the message carries FFmpeg's text).
  [[nodiscard]] static Expected<Mp4Writer> open(const std::string& path, int width, int height,
                                                const Mp4Options& opts = {});

  Mp4Writer(Mp4Writer&& other) noexcept;
  Mp4Writer& operator=(Mp4Writer&& other) noexcept;
  Mp4Writer(const Mp4Writer&) = delete;
  Mp4Writer& operator=(const Mp4Writer&) = delete;
  ~Mp4Writer();

  // Encodes one frame. invalid_argument when its size is not the opened size or the writer is
  // finished, moved from or failed earlier; internal or io_error when encoding or writing fails
  // (the writer is then failed: every later call errors and nothing is left on disk).
  [[nodiscard]] Status append(const Frame& frame);

  // Flushes the encoder, writes the trailer and renames `<path>.part` to `path`.
  // invalid_argument when no frame was appended (no file is left) or finish() already ran.
  [[nodiscard]] Status finish();

  // Frames accepted by append() so far.
  [[nodiscard]] int64_t frames_written() const;

 private:
  struct Impl;
  explicit Mp4Writer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace reel::video
