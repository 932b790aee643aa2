#include "actors/encoder.hpp"

#include <optional>

#include <caf/all.hpp>

#include "actors/job_store.hpp"  // to_caf_error
#include "video/image.hpp"
#include "video/mp4_writer.hpp"

namespace reel::actors {

WireFrame to_wire_frame(const video::Frame& frame) {
  WireFrame w;
  w.width = frame.width;
  w.height = frame.height;
  w.rgb.assign(reinterpret_cast<const char*>(frame.rgb.data()), frame.rgb.size());
  return w;
}

Expected<video::Frame> from_wire_frame(const WireFrame& wire) {
  video::Frame f;
  f.width = wire.width;
  f.height = wire.height;
  f.rgb.assign(reinterpret_cast<const uint8_t*>(wire.rgb.data()),
               reinterpret_cast<const uint8_t*>(wire.rgb.data()) + wire.rgb.size());
  REEL_RETURN_IF_ERROR(video::check_frame(f));
  return f;
}

namespace {

constexpr size_t kMaxSheetFrames = 16;

struct EncoderState {
  // Not an aggregate: CAF would try to build the state from the actor pointer (C++20
  // parenthesised aggregate initialisation).
  EncoderState() = default;
  EncodeSpec spec;
  video::Interp interp = video::Interp::nearest;
  // Destroying the writer before finish() removes its .part: the state dies with the actor, so
  // an encoder that exits early never leaves a file behind.
  std::optional<video::Mp4Writer> writer;
  std::vector<video::Frame> sheet;
  int64_t frames = 0;
  std::optional<Error> failure;  // the first error; the encoder is useless after it
  static inline const char* name = "reel.encoder";

  caf::error fail(Error e) {
    writer.reset();
    sheet.clear();
    failure = std::move(e);
    return to_caf_error(*failure);
  }
};

Status check_spec(const EncodeSpec& s) {
  auto bad = [](const std::string& m) { return make_error(Errc::invalid_argument, "encoder: " + m); };
  if (s.path.empty()) return bad("no output path");
  if (s.width < 1 || s.height < 1) return bad("frame size " + std::to_string(s.width) + "x" + std::to_string(s.height) + " is not positive");
  if (s.upscale < 1 || s.upscale > 16) return bad("upscale " + std::to_string(s.upscale) + " is not in 1..16");
  if (s.upscale_filter != "nearest" && s.upscale_filter != "bicubic")
    return bad("upscale filter '" + s.upscale_filter + "' is not nearest or bicubic");
  if (s.sheet_every < 1) return bad("sheet_every must be >= 1");
  return {};
}

encoder_actor::behavior_type encoder(encoder_actor::stateful_pointer<EncoderState> self) {
  return {
      [=](encode_open_atom, EncodeSpec& spec) -> caf::result<std::string> {
        auto& st = self->state;
        if (st.failure) return to_caf_error(*st.failure);
        if (st.writer) return to_caf_error(make_error(Errc::invalid_argument, "encoder: already open for " + st.spec.path));
        if (auto ok = check_spec(spec); !ok) return st.fail(ok.error());
        video::Mp4Options mp4;
        mp4.fps = spec.fps;
        mp4.crf = spec.crf;
        mp4.fragmented = spec.fragmented;
        auto w = video::Mp4Writer::open(spec.path, spec.width * spec.upscale, spec.height * spec.upscale, mp4);
        if (!w) return st.fail(w.error());
        st.writer.emplace(std::move(*w));
        st.interp = spec.upscale_filter == "bicubic" ? video::Interp::bicubic : video::Interp::nearest;
        st.spec = std::move(spec);
        return st.spec.path;
      },
      [=](encode_frame_atom, const WireFrame& wire) -> caf::result<int64_t> {
        auto& st = self->state;
        if (st.failure) return to_caf_error(*st.failure);
        if (!st.writer) return to_caf_error(make_error(Errc::invalid_argument, "encoder: frame before open"));
        if (wire.width != st.spec.width || wire.height != st.spec.height) {
          return st.fail(make_error(Errc::invalid_argument,
                                    "encoder: frame " + std::to_string(st.frames) + " is " + std::to_string(wire.width) +
                                        "x" + std::to_string(wire.height) + ", the video is " +
                                        std::to_string(st.spec.width) + "x" + std::to_string(st.spec.height)));
        }
        auto small = from_wire_frame(wire);
        if (!small) return st.fail(small.error());
        video::Frame big = st.spec.upscale > 1 ? video::upscale(*small, st.spec.upscale, st.interp) : std::move(*small);
        if (auto ok = st.writer->append(big); !ok) return st.fail(ok.error());
        if (!st.spec.sheet.empty() && st.frames % st.spec.sheet_every == 0 && st.sheet.size() < kMaxSheetFrames)
          st.sheet.push_back(std::move(big));
        return ++st.frames;
      },
      [=](encode_finish_atom) -> caf::result<int64_t> {
        auto& st = self->state;
        if (st.failure) return to_caf_error(*st.failure);
        if (!st.writer) return to_caf_error(make_error(Errc::invalid_argument, "encoder: finish before open"));
        // The sheet first: if it cannot be written the video is not renamed either, so a job
        // either has all it asked for or nothing.
        if (!st.spec.sheet.empty() && !st.sheet.empty()) {
          if (auto ok = video::write_contact_sheet(st.spec.sheet, {st.sheet}); !ok) return st.fail(ok.error());
        }
        if (auto ok = st.writer->finish(); !ok) return st.fail(ok.error());
        const int64_t frames = st.frames;
        st.writer.reset();
        self->quit();
        return frames;
      },
      [=](encode_abort_atom) -> int64_t {
        const int64_t discarded = self->state.frames;
        self->state.writer.reset();
        self->quit();
        return discarded;
      },
  };
}

}  // namespace

encoder_actor spawn_encoder(caf::actor_system& system) { return system.spawn<caf::detached>(encoder); }

}  // namespace reel::actors
