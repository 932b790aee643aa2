#include "video/mp4_reader.hpp"

#include <cerrno>
#include <filesystem>
#include <system_error>
#include <utility>

#include "video/detail/ffmpeg.hpp"

extern "C" {
#include <libavutil/pixdesc.h>
}

namespace reel::video {
namespace {

// A demuxer opened on a file, with the stream we read.
struct Input {
  detail::InputPtr format;
  int stream = -1;
};

Expected<Input> open_input(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec))
    return make_error(Errc::not_found, "no such video file: " + path);
  detail::quiet_ffmpeg_logs();

  AVFormatContext* raw = nullptr;  // freed by FFmpeg itself when opening fails
  int rc = avformat_open_input(&raw, path.c_str(), nullptr, nullptr);
  if (rc == AVERROR(EACCES) || rc == AVERROR(EISDIR))
    return detail::av_error(Errc::io_error, "cannot read " + path, rc);
  if (rc < 0) return detail::av_error(Errc::corrupt_data, "cannot open " + path + " as a video", rc);
  Input input;
  input.format.reset(raw);

  rc = avformat_find_stream_info(raw, nullptr);
  if (rc < 0) return detail::av_error(Errc::corrupt_data, "cannot read the streams of " + path, rc);
  rc = av_find_best_stream(raw, AVMEDIA_TYPE_VIDEO, -1, -1, nullptr, 0);
  if (rc < 0) return make_error(Errc::corrupt_data, path + " has no video stream");
  input.stream = rc;
  return input;
}

int sws_colorspace(AVColorSpace space) {
  switch (space) {
    case AVCOL_SPC_BT709: return SWS_CS_ITU709;
    case AVCOL_SPC_FCC: return SWS_CS_FCC;
    case AVCOL_SPC_SMPTE240M: return SWS_CS_SMPTE240M;
    case AVCOL_SPC_BT2020_NCL:
    case AVCOL_SPC_BT2020_CL: return SWS_CS_BT2020;
    default: return SWS_CS_ITU601;  // FFmpeg's enum, not ours; untagged video is BT.601 by convention
  }
}

bool is_full_range(const AVFrame& frame) {
  switch (frame.format) {
    case AV_PIX_FMT_YUVJ420P:
    case AV_PIX_FMT_YUVJ422P:
    case AV_PIX_FMT_YUVJ444P:
    case AV_PIX_FMT_YUVJ440P:
    case AV_PIX_FMT_YUVJ411P: return true;
    default: return frame.color_range == AVCOL_RANGE_JPEG;
  }
}

// Converts decoded pictures to RGB24, rebuilding the converter only when the input changes.
class RgbConverter {
 public:
  Expected<Frame> convert(const AVFrame& in) {
    const Key key{in.width, in.height, in.format, sws_colorspace(in.colorspace),
                  is_full_range(in) ? 1 : 0};
    if (!sws_ || key != key_) {
      const auto format = static_cast<AVPixelFormat>(in.format);
      sws_.reset(sws_getContext(in.width, in.height, format, in.width, in.height,
                                AV_PIX_FMT_RGB24,
                                SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT, nullptr,
                                nullptr, nullptr));
      if (!sws_) {
        const char* name = av_get_pix_fmt_name(format);
        return make_error(Errc::unsupported, std::string("cannot convert pixel format ") +
                                                 (name ? name : "unknown") + " to RGB24");
      }
      sws_setColorspaceDetails(sws_.get(), sws_getCoefficients(key.space), key.full_range,
                               sws_getCoefficients(SWS_CS_DEFAULT), 1, 0, 1 << 16, 1 << 16);
      key_ = key;
    }

    Frame out;
    out.width = in.width;
    out.height = in.height;
    out.rgb.resize(static_cast<size_t>(in.width) * in.height * 3);
    uint8_t* dst = out.rgb.data();
    const int dst_stride = in.width * 3;
    sws_scale(sws_.get(), in.data, in.linesize, 0, in.height, &dst, &dst_stride);
    return out;
  }

 private:
  struct Key {
    int width = 0, height = 0, format = -1, space = -1, full_range = -1;
    bool operator==(const Key&) const = default;
  };
  detail::SwsPtr sws_;
  Key key_;
};

// Receives every frame the decoder has ready and appends it to `frames`.
Status receive_frames(AVCodecContext& dec, AVFrame& picture, RgbConverter& rgb,
                      std::vector<Frame>& frames, const std::string& path) {
  for (;;) {
    int rc = avcodec_receive_frame(&dec, &picture);
    if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF) return {};
    if (rc < 0) return detail::av_error(Errc::corrupt_data, "cannot decode " + path, rc);
    auto frame = rgb.convert(picture);
    av_frame_unref(&picture);
    if (!frame.ok()) return frame.error();
    frames.push_back(std::move(*frame));
  }
}

}  // namespace

Expected<VideoInfo> probe(const std::string& path) {
  auto input = open_input(path);
  if (!input.ok()) return input.error();
  AVFormatContext* format = input->format.get();
  const AVStream* stream = format->streams[input->stream];

  VideoInfo info;
  info.width = stream->codecpar->width;
  info.height = stream->codecpar->height;
  AVRational rate = stream->avg_frame_rate;
  if (rate.num <= 0 || rate.den <= 0) rate = stream->r_frame_rate;
  info.fps = (rate.num > 0 && rate.den > 0) ? av_q2d(rate) : 0.0;
  info.codec = avcodec_get_name(stream->codecpar->codec_id);

  // Counting packets works for fragmented files too, whose headers hold no frame count.
  detail::PacketPtr packet(av_packet_alloc());
  if (!packet) return make_error(Errc::internal, "out of memory");
  for (;;) {
    int rc = av_read_frame(format, packet.get());
    if (rc == AVERROR_EOF) break;
    if (rc < 0) return detail::av_error(Errc::corrupt_data, "cannot read " + path, rc);
    if (packet->stream_index == input->stream) ++info.frames;
    av_packet_unref(packet.get());
  }
  return info;
}

Expected<std::vector<Frame>> read_video(const std::string& path) {
  auto input = open_input(path);
  if (!input.ok()) return input.error();
  AVFormatContext* format = input->format.get();
  const AVCodecParameters* par = format->streams[input->stream]->codecpar;

  const AVCodec* codec = avcodec_find_decoder(par->codec_id);
  if (!codec)
    return make_error(Errc::unsupported,
                      std::string("no decoder for ") + avcodec_get_name(par->codec_id));
  detail::CodecContextPtr dec(avcodec_alloc_context3(codec));
  detail::PacketPtr packet(av_packet_alloc());
  detail::FramePtr picture(av_frame_alloc());
  if (!dec || !packet || !picture) return make_error(Errc::internal, "out of memory");
  int rc = avcodec_parameters_to_context(dec.get(), par);
  if (rc < 0) return detail::av_error(Errc::internal, "cannot configure the decoder", rc);
  dec->thread_count = 0;
  rc = avcodec_open2(dec.get(), codec, nullptr);
  if (rc < 0) return detail::av_error(Errc::unsupported, "cannot open the decoder", rc);

  RgbConverter rgb;
  std::vector<Frame> frames;
  for (;;) {
    rc = av_read_frame(format, packet.get());
    if (rc == AVERROR_EOF) break;
    if (rc < 0) return detail::av_error(Errc::corrupt_data, "cannot read " + path, rc);
    if (packet->stream_index == input->stream) {
      rc = avcodec_send_packet(dec.get(), packet.get());
      av_packet_unref(packet.get());
      if (rc < 0) return detail::av_error(Errc::corrupt_data, "cannot decode " + path, rc);
      REEL_RETURN_IF_ERROR(receive_frames(*dec, *picture, rgb, frames, path));
    } else {
      av_packet_unref(packet.get());
    }
  }
  rc = avcodec_send_packet(dec.get(), nullptr);  // drain frames the decoder still holds
  if (rc < 0) return detail::av_error(Errc::corrupt_data, "cannot decode " + path, rc);
  REEL_RETURN_IF_ERROR(receive_frames(*dec, *picture, rgb, frames, path));
  return frames;
}

}  // namespace reel::video
