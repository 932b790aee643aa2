#include "video/frame.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

namespace reel::video {

Status check_frame(const Frame& frame) {
  if (frame.width <= 0 || frame.height <= 0)
    return make_error(Errc::invalid_argument, "frame size " + std::to_string(frame.width) + "x" +
                                                  std::to_string(frame.height) +
                                                  " is not positive");
  const size_t expected = static_cast<size_t>(frame.width) * frame.height * 3;
  if (frame.rgb.size() != expected)
    return make_error(Errc::invalid_argument,
                      "a " + std::to_string(frame.width) + "x" + std::to_string(frame.height) +
                          " frame holds " + std::to_string(frame.rgb.size()) +
                          " bytes, expected " + std::to_string(expected));
  return {};
}

namespace {

constexpr int64_t kMaxUpscaledSide = 65536;

Frame upscale_nearest(const Frame& in, int factor) {
  Frame out{in.width * factor, in.height * factor, {}};
  const size_t out_row = static_cast<size_t>(out.width) * 3;
  out.rgb.resize(out_row * out.height);
  for (int y = 0; y < in.height; ++y) {
    const uint8_t* src = in.rgb.data() + static_cast<size_t>(y) * in.width * 3;
    uint8_t* first = out.rgb.data() + out_row * y * factor;
    uint8_t* dst = first;
    for (int x = 0; x < in.width; ++x, src += 3)
      for (int k = 0; k < factor; ++k, dst += 3) std::memcpy(dst, src, 3);
    for (int k = 1; k < factor; ++k) std::memcpy(first + out_row * k, first, out_row);
  }
  return out;
}

Frame upscale_bicubic(const Frame& in, int factor) {
  Frame out{in.width * factor, in.height * factor, {}};
  out.rgb.resize(static_cast<size_t>(out.width) * out.height * 3);
  // OpenCV only reads `in` here; Mat has no const-pointer constructor.
  const cv::Mat src(in.height, in.width, CV_8UC3, const_cast<uint8_t*>(in.rgb.data()));
  cv::Mat dst(out.height, out.width, CV_8UC3, out.rgb.data());
  try {
    cv::resize(src, dst, dst.size(), 0, 0, cv::INTER_CUBIC);
  } catch (const cv::Exception&) {
    return {};  // only out of memory gets here: the sizes were checked
  }
  return out;
}

}  // namespace

Frame upscale(const Frame& frame, int factor, Interp interp) {
  if (!check_frame(frame).ok()) return {};
  if (factor <= 1) return frame;
  if (static_cast<int64_t>(factor) * std::max(frame.width, frame.height) > kMaxUpscaledSide) return {};
  switch (interp) {
    case Interp::nearest: return upscale_nearest(frame, factor);
    case Interp::bicubic: return upscale_bicubic(frame, factor);
  }
  return {};
}

}  // namespace reel::video
