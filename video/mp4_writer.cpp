#include "video/mp4_writer.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <filesystem>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "video/detail/ffmpeg.hpp"

extern "C" {
#include <libavutil/dict.h>
}

namespace reel::video {
namespace {

constexpr int kMaxSide = 16384;

constexpr std::array<std::string_view, 10> kPresets = {
    "ultrafast", "superfast", "veryfast", "faster", "fast",
    "medium",    "slow",      "slower",   "veryslow", "placebo"};

Status check_open_arguments(int width, int height, const Mp4Options& opts) {
  if (width <= 0 || height <= 0 || width > kMaxSide || height > kMaxSide)
    return make_error(Errc::invalid_argument, "video size " + std::to_string(width) + "x" +
                                                  std::to_string(height) + " is not in 1.." +
                                                  std::to_string(kMaxSide));
  if (opts.fps < 1 || opts.fps > 1000)
    return make_error(Errc::invalid_argument,
                      "fps " + std::to_string(opts.fps) + " is not in 1..1000");
  if (opts.crf < 0 || opts.crf > 51)
    return make_error(Errc::invalid_argument,
                      "crf " + std::to_string(opts.crf) + " is not in 0..51");
  if (std::find(kPresets.begin(), kPresets.end(), opts.preset) == kPresets.end())
    return make_error(Errc::invalid_argument,
                      "unknown x264 preset '" + opts.preset +
                          "' (ultrafast, superfast, veryfast, faster, fast, medium, slow, "
                          "slower, veryslow, placebo)");
  return {};
}

// Owns an AVDictionary for the duration of one call that takes options.
struct Dict {
  AVDictionary* d = nullptr;
  Dict() = default;
  Dict(const Dict&) = delete;
  Dict& operator=(const Dict&) = delete;
  ~Dict() { av_dict_free(&d); }
  void set(const char* key, const std::string& value) { av_dict_set(&d, key, value.c_str(), 0); }
};

}  // namespace

struct Mp4Writer::Impl {
  std::string path;
  std::string part_path;
  int width = 0;   // of the frames appended
  int height = 0;
  int enc_width = 0;  // of the encoded pictures: even, padded
  int enc_height = 0;
  detail::OutputPtr out;
  detail::CodecContextPtr enc;
  AVStream* stream = nullptr;  // owned by `out`
  detail::SwsPtr sws;
  detail::FramePtr yuv;
  detail::PacketPtr packet;
  std::vector<uint8_t> padded;  // RGB scratch for odd sizes
  int64_t frames = 0;
  bool created_part = false;  // only a .part file we opened is ours to remove
  bool finished = false;
  bool failed = false;

  Impl() = default;
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  // No half-written output: whatever did not reach finish() is closed and removed.
  ~Impl() {
    if (finished || !created_part) return;
    out.reset();
    std::error_code ec;
    std::filesystem::remove(part_path, ec);
  }

  Error fail(Error error) {
    failed = true;
    return error;
  }

  Status check_usable(const char* call) const {
    if (finished)
      return make_error(Errc::invalid_argument,
                        std::string("Mp4Writer::") + call + " after finish() for " + path);
    if (failed)
      return make_error(Errc::invalid_argument, std::string("Mp4Writer::") + call +
                                                    " after an earlier error for " + path);
    return {};
  }

  Status open(const Mp4Options& opts);
  Status drain();
};

Status Mp4Writer::Impl::open(const Mp4Options& opts) {
  const AVCodec* codec = avcodec_find_encoder_by_name("libx264");
  if (!codec)
    return make_error(Errc::unsupported, "this FFmpeg was built without libx264 (H.264 encoder)");

  // The format is named because `.part` tells FFmpeg nothing.
  AVFormatContext* raw_out = nullptr;
  int rc = avformat_alloc_output_context2(&raw_out, nullptr, "mp4", part_path.c_str());
  if (rc < 0) return detail::av_error(Errc::internal, "cannot create an MP4 muxer", rc);
  out.reset(raw_out);

  enc.reset(avcodec_alloc_context3(codec));
  yuv.reset(av_frame_alloc());
  packet.reset(av_packet_alloc());
  if (!enc || !yuv || !packet) return make_error(Errc::internal, "out of memory");

  enc->width = enc_width;
  enc->height = enc_height;
  enc->pix_fmt = AV_PIX_FMT_YUV420P;
  enc->time_base = AVRational{1, opts.fps};
  enc->framerate = AVRational{opts.fps, 1};
  enc->sample_aspect_ratio = AVRational{1, 1};
  // Frames are sRGB, whose primaries are BT.709's; tagging all three keeps players from guessing.
  enc->color_range = AVCOL_RANGE_MPEG;
  enc->colorspace = AVCOL_SPC_BT709;
  enc->color_primaries = AVCOL_PRI_BT709;
  enc->color_trc = AVCOL_TRC_BT709;
  enc->thread_count = 0;  // x264 picks; its threaded output is still deterministic
  if (opts.fragmented) {
    // A keyframe a second starts each fragment, so a growing file can be joined at any second.
    enc->gop_size = opts.fps;
    // Fragments cannot carry the edit list that hides B-frame reordering delay: without
    // B-frames the first frame shows at 0 s, not a few frames late.
    enc->max_b_frames = 0;
  }
  if (out->oformat->flags & AVFMT_GLOBALHEADER) enc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;

  Dict enc_opts;
  enc_opts.set("preset", opts.preset);
  enc_opts.set("crf", std::to_string(opts.crf));
  // x264 holds back up to 40 frames to plan rates; a file meant to be watched while it grows
  // should lag generation by about a second at most.
  if (opts.fragmented) enc_opts.set("rc-lookahead", std::to_string(std::min(opts.fps, 40)));
  rc = avcodec_open2(enc.get(), codec, &enc_opts.d);
  if (rc < 0) return detail::av_error(Errc::internal, "cannot open the libx264 encoder", rc);
  // FFmpeg hands back the options nobody took: a silently ignored crf would be a quiet bug.
  if (const AVDictionaryEntry* left = av_dict_get(enc_opts.d, "", nullptr, AV_DICT_IGNORE_SUFFIX))
    return make_error(Errc::internal, std::string("libx264 did not accept the option ") + left->key);

  stream = avformat_new_stream(out.get(), nullptr);
  if (!stream) return make_error(Errc::internal, "cannot add a video stream to the MP4 muxer");
  rc = avcodec_parameters_from_context(stream->codecpar, enc.get());
  if (rc < 0) return detail::av_error(Errc::internal, "cannot copy encoder parameters", rc);
  stream->time_base = enc->time_base;
  stream->avg_frame_rate = enc->framerate;
  stream->r_frame_rate = enc->framerate;

  rc = avio_open(&out->pb, part_path.c_str(), AVIO_FLAG_WRITE);
  if (rc < 0) return detail::av_error(Errc::io_error, "cannot open " + part_path + " for writing", rc);
  created_part = true;

  Dict mux_opts;
  if (opts.fragmented) {
    mux_opts.set("movflags", "frag_keyframe+empty_moov+default_base_moof");
    // Else finished fragments wait in FFmpeg's 32 KiB write buffer and readers see no frames.
    out->flush_packets = 1;
  }
  rc = avformat_write_header(out.get(), &mux_opts.d);
  if (rc < 0) return detail::av_error(Errc::internal, "cannot write the MP4 header to " + part_path, rc);

  sws.reset(sws_getContext(enc_width, enc_height, AV_PIX_FMT_RGB24, enc_width, enc_height,
                           AV_PIX_FMT_YUV420P, SWS_BICUBIC | SWS_ACCURATE_RND, nullptr, nullptr,
                           nullptr));
  if (!sws) return make_error(Errc::internal, "cannot create the RGB to YUV converter");
  // Full-range RGB in, limited-range BT.709 YUV out, matching the tags above.
  const int* bt709 = sws_getCoefficients(SWS_CS_ITU709);
  sws_setColorspaceDetails(sws.get(), bt709, 1, bt709, 0, 0, 1 << 16, 1 << 16);

  yuv->format = AV_PIX_FMT_YUV420P;
  yuv->width = enc_width;
  yuv->height = enc_height;
  yuv->color_range = enc->color_range;
  yuv->colorspace = enc->colorspace;
  yuv->color_primaries = enc->color_primaries;
  yuv->color_trc = enc->color_trc;
  rc = av_frame_get_buffer(yuv.get(), 0);
  if (rc < 0) return detail::av_error(Errc::internal, "cannot allocate a YUV frame", rc);
  return {};
}

// Moves every packet the encoder has ready into the muxer.
Status Mp4Writer::Impl::drain() {
  for (;;) {
    int rc = avcodec_receive_packet(enc.get(), packet.get());
    if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF) return {};
    if (rc < 0) return fail(detail::av_error(Errc::internal, "H.264 encoding failed", rc));
    // One frame per packet; without a duration the last frame would count for nothing in the
    // average frame rate.
    if (packet->duration == 0) packet->duration = 1;
    av_packet_rescale_ts(packet.get(), enc->time_base, stream->time_base);
    packet->stream_index = stream->index;
    rc = av_interleaved_write_frame(out.get(), packet.get());
    av_packet_unref(packet.get());
    if (rc < 0) return fail(detail::av_error(Errc::io_error, "cannot write to " + part_path, rc));
  }
}

Mp4Writer::Mp4Writer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Mp4Writer::Mp4Writer(Mp4Writer&& other) noexcept = default;
Mp4Writer& Mp4Writer::operator=(Mp4Writer&& other) noexcept = default;
Mp4Writer::~Mp4Writer() = default;

Expected<Mp4Writer> Mp4Writer::open(const std::string& path, int width, int height,
                                    const Mp4Options& opts) {
  REEL_RETURN_IF_ERROR(check_open_arguments(width, height, opts));
  if (path.empty()) return make_error(Errc::invalid_argument, "empty output path");
  detail::quiet_ffmpeg_logs();

  auto impl = std::make_unique<Impl>();
  impl->path = path;
  impl->part_path = path + ".part";
  impl->width = width;
  impl->height = height;
  impl->enc_width = width + (width & 1);
  impl->enc_height = height + (height & 1);
  // On error `impl` dies here and takes any .part file with it.
  REEL_RETURN_IF_ERROR(impl->open(opts));
  return Mp4Writer(std::move(impl));
}

Status Mp4Writer::append(const Frame& frame) {
  if (!impl_) return make_error(Errc::invalid_argument, "Mp4Writer::append on a moved-from writer");
  Impl& w = *impl_;
  REEL_RETURN_IF_ERROR(w.check_usable("append"));
  REEL_RETURN_IF_ERROR(check_frame(frame));
  if (frame.width != w.width || frame.height != w.height)
    return make_error(Errc::invalid_argument,
                      "frame is " + std::to_string(frame.width) + "x" +
                          std::to_string(frame.height) + " but " + w.path + " was opened at " +
                          std::to_string(w.width) + "x" + std::to_string(w.height));

  const uint8_t* src = frame.rgb.data();
  int src_stride = w.width * 3;
  if (w.enc_width != w.width || w.enc_height != w.height) {
    // Repeat the last column and row: an edge that continues itself costs the encoder nothing.
    const size_t row_bytes = static_cast<size_t>(w.enc_width) * 3;
    w.padded.resize(row_bytes * w.enc_height);
    for (int y = 0; y < w.enc_height; ++y) {
      const uint8_t* in = frame.rgb.data() + static_cast<size_t>(std::min(y, w.height - 1)) * src_stride;
      uint8_t* row = w.padded.data() + row_bytes * y;
      std::memcpy(row, in, static_cast<size_t>(src_stride));
      if (w.enc_width != w.width) std::memcpy(row + src_stride, in + src_stride - 3, 3);
    }
    src = w.padded.data();
    src_stride = static_cast<int>(row_bytes);
  }

  int rc = av_frame_make_writable(w.yuv.get());
  if (rc < 0) return w.fail(detail::av_error(Errc::internal, "cannot reuse the YUV frame", rc));
  sws_scale(w.sws.get(), &src, &src_stride, 0, w.enc_height, w.yuv->data, w.yuv->linesize);
  w.yuv->pts = w.frames;
  rc = avcodec_send_frame(w.enc.get(), w.yuv.get());
  if (rc < 0) return w.fail(detail::av_error(Errc::internal, "H.264 encoding failed", rc));
  ++w.frames;
  return w.drain();
}

Status Mp4Writer::finish() {
  if (!impl_) return make_error(Errc::invalid_argument, "Mp4Writer::finish on a moved-from writer");
  Impl& w = *impl_;
  REEL_RETURN_IF_ERROR(w.check_usable("finish"));
  if (w.frames == 0)
    return w.fail(make_error(Errc::invalid_argument, "no frames were appended to " + w.path));

  int rc = avcodec_send_frame(w.enc.get(), nullptr);
  if (rc < 0) return w.fail(detail::av_error(Errc::internal, "cannot flush the H.264 encoder", rc));
  REEL_RETURN_IF_ERROR(w.drain());
  rc = av_write_trailer(w.out.get());
  if (rc < 0) return w.fail(detail::av_error(Errc::io_error, "cannot finish " + w.part_path, rc));
  // Closing flushes the last buffered bytes, so its failure (a full disk) is a failed write.
  rc = avio_closep(&w.out->pb);
  if (rc < 0) return w.fail(detail::av_error(Errc::io_error, "cannot close " + w.part_path, rc));

  std::error_code ec;
  std::filesystem::rename(w.part_path, w.path, ec);
  if (ec)
    return w.fail(make_error(Errc::io_error, "cannot rename " + w.part_path + " to " + w.path +
                                                 ": " + ec.message()));
  w.finished = true;
  return {};
}

int64_t Mp4Writer::frames_written() const { return impl_ ? impl_->frames : 0; }

}  // namespace reel::video
