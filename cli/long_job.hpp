// The job directory of a resumable generation in FIFO or clips mode (reel generate --mode fifo
// or --mode clips, --job-dir DIR --checkpoint-every K, then reel generate --resume DIR).
//
//   DIR/job.json           what was asked: prompt, model identity, the mode and every setting of
//                          the run ("mode": "fifo" or "clips"; a job.json without "mode", as
//                          reel wrote before clips jobs existed, is a FIFO job)
//   DIR/state.safetensors  the checkpoint (written via a temporary, fsynced and renamed, so a
//                          kill or a power loss never leaves half of it, and written only once
//                          frames.rgb is on disk; its metadata holds a checksum of its tensors)
//                          FIFO: the queue, each frame's solver state and the next frame index;
//                          clips: every clip's latent and solver state and the step index
//   DIR/frames.rgb         FIFO: the frames written so far, raw RGB at model resolution, in order
//
// FIFO. A checkpoint is taken between frames, every K frames: state.safetensors says the queue is
// about to produce frame N, and frames.rgb then holds at least N frames (later ones, written after
// the checkpoint before a kill, are cut off on resume). Resuming re-encodes frames 0..N-1 from
// frames.rgb into a fresh MP4 and continues the queue, so the video equals, frame for frame, the
// one an uninterrupted run writes.
//
// Clips. A checkpoint is taken between steps, every K steps (and after the last one): every clip
// at step s with its solver history. Frames exist only once the last step is done, so resuming
// continues the denoising from step s (from the noise when no checkpoint was taken yet) and then
// writes the whole video: the same latent, bit for bit, as an uninterrupted run.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/expected.hpp"
#include "jobs/checkpoint.hpp"
#include "pipeline/clips.hpp"
#include "pipeline/fifo.hpp"
#include "video/frame.hpp"

namespace reel::cli {

// A job of either mode (named for the mode it was first written for).
struct LongJob {
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
  int checkpoint_every = 0;     // FIFO: frames, clips: steps between checkpoints (0 = none)
  std::string mode = "fifo";    // "fifo" or "clips"
  int clips = 2, context_frames = 2, global_frames = 1;  // clips mode: C, k, g
};

// FNV-1a 64 of a file's bytes as 16 hex digits; "builtin" for sources "builtin:*".
[[nodiscard]] Expected<std::string> model_checksum(const std::string& source);

// Creates DIR (it must not hold a job already) and writes job.json (and, for FIFO, an empty
// frames.rgb). invalid_argument when DIR exists with a job in it or cannot be created.
[[nodiscard]] Status create_job(const std::string& dir, const LongJob& job);
// Reads DIR/job.json. not_found when DIR has no job, corrupt_data when it is unreadable or names
// an unknown mode.
[[nodiscard]] Expected<LongJob> read_job(const std::string& dir);

// The checkpoint files (state.safetensors, frames.rgb) are jobs/checkpoint.hpp's.
using jobs::append_job_frame;
using jobs::load_clips_state;
using jobs::load_fifo_state;
using jobs::read_job_frames;
using jobs::save_clips_state;
using jobs::save_fifo_state;

}  // namespace reel::cli
