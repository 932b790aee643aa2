// The job directory of a resumable FIFO generation (reel generate --mode fifo --job-dir DIR
// --checkpoint-every K, then reel generate --resume DIR).
//
//   DIR/job.json           what was asked: prompt, model identity, every setting of the run
//   DIR/state.safetensors  the FIFO queue, each frame's solver state and the next frame index
//                          (written via a temporary and renamed, so a kill never leaves half of it)
//   DIR/frames.rgb         the frames written so far, raw RGB at model resolution, in order
//
// A checkpoint is taken between frames: state.safetensors says the queue is about to produce
// frame N, and frames.rgb then holds at least N frames (later ones, written after the checkpoint
// before a kill, are cut off on resume). Resuming re-encodes frames 0..N-1 from frames.rgb into
// a fresh MP4 and continues the queue, so the video equals, frame for frame, the one an
// uninterrupted run writes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/expected.hpp"
#include "pipeline/fifo.hpp"
#include "video/frame.hpp"

namespace reel::cli {

struct FifoJob {
  std::string prompt;
  std::string model;           // as given (zoo name or path)
  std::string model_source;    // what it resolved to
  std::string model_checksum;  // FNV-1a of the weights file ("builtin" for built-in models)
  int frames = 0, width = 0, height = 0, steps = 0, fps = 0, partitions = 1;
  bool lookahead = true;
  double guidance = 0, shift = 0;
  std::string solver;
  uint64_t seed = 0;
  int crf = 18, upscale = 1;
  std::string upscale_filter = "nearest";
  std::string out;
  int checkpoint_every = 0;
};

// FNV-1a 64 of a file's bytes as 16 hex digits; "builtin" for sources "builtin:*".
[[nodiscard]] Expected<std::string> model_checksum(const std::string& source);

// Creates DIR (it must not hold a job already) and writes job.json. invalid_argument when DIR
// exists with a job in it or cannot be created.
[[nodiscard]] Status create_job(const std::string& dir, const FifoJob& job);
// Reads DIR/job.json. not_found when DIR has no job, corrupt_data when it is unreadable.
[[nodiscard]] Expected<FifoJob> read_job(const std::string& dir);

// Writes the queue's state (atomically).
[[nodiscard]] Status save_fifo_state(const std::string& dir, const pipeline::FifoState& state);
// Reads it back; `options` are the run's (from job.json). not_found when there is no checkpoint.
[[nodiscard]] Expected<pipeline::FifoState> load_fifo_state(const std::string& dir,
                                                            const pipeline::FifoOptions& options);

// Appends one frame to DIR/frames.rgb.
[[nodiscard]] Status append_job_frame(const std::string& dir, const video::Frame& frame);
// The first `count` frames of DIR/frames.rgb (each width x height), cutting the file there.
// corrupt_data when it holds fewer.
[[nodiscard]] Expected<std::vector<video::Frame>> read_job_frames(const std::string& dir, int64_t count,
                                                                  int width, int height);

}  // namespace reel::cli
