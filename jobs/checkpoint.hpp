// The checkpoint of a long job (FIFO or clips) in a folder of its own, so that a stopped or
// crashed job continues where it was: `reel generate --job-dir` (cli/long_job.hpp, which adds
// job.json) and the coordinator of `reel serve` (one folder per job id) write the same files.
//
//   DIR/state.safetensors  the checkpoint (written via a temporary, fsynced and renamed, so a
//                          kill or a power loss never leaves half of it, and written only once
//                          frames.rgb is on disk; its metadata holds a checksum of its tensors)
//                          FIFO: the queue, each frame's solver state and the next frame index;
//                          clips: every clip's latent and solver state and the step index
//   DIR/frames.rgb         FIFO: the frames written so far, raw RGB at model resolution, in order
//
// FIFO. A checkpoint is taken between frames: state.safetensors says the queue is about to
// produce frame N, and frames.rgb then holds at least N frames (later ones, written after the
// checkpoint before a kill, are cut off on resume). Resuming re-encodes frames 0..N-1 from
// frames.rgb and continues the queue, so the video equals, frame for frame, an uninterrupted one.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/expected.hpp"
#include "pipeline/clips.hpp"
#include "pipeline/fifo.hpp"
#include "video/frame.hpp"

namespace reel::jobs {

// DIR/state.safetensors and DIR/frames.rgb.
[[nodiscard]] std::string state_file(const std::string& dir);
[[nodiscard]] std::string frames_file(const std::string& dir);

// Writes the queue's state (atomically).
[[nodiscard]] Status save_fifo_state(const std::string& dir, const pipeline::FifoState& state);
// Reads it back; `options` are the run's (from job.json). not_found when there is no checkpoint.
[[nodiscard]] Expected<pipeline::FifoState> load_fifo_state(const std::string& dir,
                                                            const pipeline::FifoOptions& options);

// Writes the clips' state (atomically).
[[nodiscard]] Status save_clips_state(const std::string& dir, const pipeline::ClipsState& state);
// Reads it back; `options` are the run's (from job.json) and every clip latent must be shaped
// `clip_shape` [B, Ch, n, H, W]. not_found when there is no checkpoint; corrupt_data when the file
// is damaged (its checksum, a missing entry) or is not a clips state of this job's shape. The
// result still goes through pipeline::VideoClips::from_state, which checks its consistency.
[[nodiscard]] Expected<pipeline::ClipsState> load_clips_state(const std::string& dir,
                                                              const pipeline::ClipsOptions& options,
                                                              const std::vector<int64_t>& clip_shape);

// Appends one frame to DIR/frames.rgb.
[[nodiscard]] Status append_job_frame(const std::string& dir, const video::Frame& frame);
// The first `count` frames of DIR/frames.rgb (each width x height), cutting the file there.
// corrupt_data when it holds fewer.
[[nodiscard]] Expected<std::vector<video::Frame>> read_job_frames(const std::string& dir, int64_t count,
                                                                  int width, int height);

}  // namespace reel::jobs
