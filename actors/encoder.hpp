// The encoder actor: finished frames in, an MP4 out, written progressively as the frames arrive
// (step 5 of "the path of one job": FIFO pops a frame per iteration and it is encoded then, so a
// long video never sits in memory and its <out>.part grows while the job runs).
//
// Frames cross as WireFrame (plain bytes, no LibTorch), so an encoder can run on another node
// than the job that feeds it. Frames arrive at model resolution and are upscaled here: what
// crosses is the small frame.
//
// The final file appears only when finish() succeeds: video::Mp4Writer writes <path>.part and
// renames it. An encoder that fails (a bad frame, a full disk), is aborted or dies before finish
// leaves neither the file nor the .part behind.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/atom.hpp>
#include <caf/meta/type_name.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include "base/expected.hpp"
#include "video/frame.hpp"

namespace reel::actors {

// One RGB24 frame on the wire: `height` rows of `width` pixels, 3 bytes each, rows packed.
struct WireFrame {
  int32_t width = 0;
  int32_t height = 0;
  std::string rgb;  // width * height * 3 bytes
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, WireFrame& x) {
  return f(caf::meta::type_name("reel.WireFrame"), x.width, x.height, x.rgb);
}

[[nodiscard]] WireFrame to_wire_frame(const video::Frame& frame);
// invalid_argument when the size is not positive or rgb is not width * height * 3 bytes.
[[nodiscard]] Expected<video::Frame> from_wire_frame(const WireFrame& wire);

// What one encoder writes.
struct EncodeSpec {
  std::string path;      // the MP4; written as <path>.part and renamed by finish
  int32_t width = 0;     // of the frames appended (before upscaling), 1..16384
  int32_t height = 0;
  int32_t fps = 8;       // 1..1000; default 8
  int32_t crf = 18;      // x264 constant rate factor 0..51; default 18
  int32_t upscale = 1;   // integer factor applied to every frame, 1..16; default 1
  std::string upscale_filter = "nearest";  // nearest or bicubic; default nearest
  bool fragmented = false;  // fragmented MP4 (the .part plays while it grows); default false
  std::string sheet;     // contact sheet PNG written by finish; "" = none (default)
  int32_t sheet_every = 1;  // every k-th frame (0, k, 2k ...) goes on the sheet, at most 16; default 1
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, EncodeSpec& x) {
  return f(caf::meta::type_name("reel.EncodeSpec"), x.path, x.width, x.height, x.fps, x.crf, x.upscale,
           x.upscale_filter, x.fragmented, x.sheet, x.sheet_every);
}

using encode_open_atom = caf::atom_constant<caf::atom("encopen")>;
using encode_frame_atom = caf::atom_constant<caf::atom("encframe")>;
using encode_finish_atom = caf::atom_constant<caf::atom("encfinish")>;
using encode_abort_atom = caf::atom_constant<caf::atom("encabort")>;

// One encoder writes one file, in a detached actor of its own (FFmpeg blocks):
//  - open: checks the spec and creates <path>.part; replies with the path. Errors
//    (to_caf_error): invalid_argument for a bad spec or a second open, io_error for a folder
//    that is missing or not writable, unsupported without libx264;
//  - frame: upscales and encodes one frame; replies with the frames written so far. The first
//    error fails the encoder: its .part is removed and every later message errors;
//  - finish: flushes, writes the sheet if asked, renames <path>.part to path; replies with the
//    frame count, then the actor quits. invalid_argument before open or without a frame;
//  - abort: removes the .part, replies with the frames discarded (once the file is gone), and
//    the actor quits.
// An encoder that exits without finish (killed, its job gone) also removes the .part.
using encoder_actor = caf::typed_actor<
    caf::replies_to<encode_open_atom, EncodeSpec>::with<std::string>,
    caf::replies_to<encode_frame_atom, WireFrame>::with<int64_t>,
    caf::replies_to<encode_finish_atom>::with<int64_t>,
    caf::replies_to<encode_abort_atom>::with<int64_t>>;

[[nodiscard]] encoder_actor spawn_encoder(caf::actor_system& system);

}  // namespace reel::actors
