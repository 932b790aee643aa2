#include "video/metrics.hpp"

#include <cmath>
#include <limits>
#include <string>
#include <utility>

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

namespace reel::video {
namespace {

std::string size_text(const Frame& f) {
  return std::to_string(f.width) + "x" + std::to_string(f.height);
}

Status check_pair(const std::vector<Frame>& a, const std::vector<Frame>& b) {
  if (a.empty() || b.empty()) return make_error(Errc::invalid_argument, "a video has no frames");
  if (a.size() != b.size())
    return make_error(Errc::invalid_argument, "videos have " + std::to_string(a.size()) +
                                                  " and " + std::to_string(b.size()) + " frames");
  for (size_t i = 0; i < a.size(); ++i) {
    REEL_RETURN_IF_ERROR(check_frame(a[i]));
    REEL_RETURN_IF_ERROR(check_frame(b[i]));
    if (a[i].width != b[i].width || a[i].height != b[i].height)
      return make_error(Errc::invalid_argument, "frame " + std::to_string(i) + " is " +
                                                    size_text(a[i]) + " in one video and " +
                                                    size_text(b[i]) + " in the other");
  }
  return {};
}

// BT.601 luma in 0..255 as doubles: SSIM's variances cancel badly in single precision.
cv::Mat luma(const Frame& f) {
  const cv::Mat rgb(f.height, f.width, CV_8UC3, const_cast<uint8_t*>(f.rgb.data()));
  cv::Mat rgb64, y;
  rgb.convertTo(rgb64, CV_64FC3);
  cv::transform(rgb64, y, cv::Matx13d(0.299, 0.587, 0.114));
  return y;
}

cv::Mat gaussian(const cv::Mat& m) {
  cv::Mat out;
  cv::GaussianBlur(m, out, cv::Size(11, 11), 1.5, 1.5, cv::BORDER_REFLECT);
  return out;
}

// Mean of the SSIM map of two luma images of one size.
double ssim_luma(const cv::Mat& x, const cv::Mat& y) {
  constexpr double c1 = (0.01 * 255) * (0.01 * 255);
  constexpr double c2 = (0.03 * 255) * (0.03 * 255);
  const cv::Mat mu_x = gaussian(x), mu_y = gaussian(y);
  const cv::Mat mu_xx = mu_x.mul(mu_x), mu_yy = mu_y.mul(mu_y), mu_xy = mu_x.mul(mu_y);
  const cv::Mat var_x = gaussian(x.mul(x)) - mu_xx;
  const cv::Mat var_y = gaussian(y.mul(y)) - mu_yy;
  const cv::Mat cov = gaussian(x.mul(y)) - mu_xy;
  cv::Mat num = (2 * mu_xy + c1).mul(2 * cov + c2);
  cv::Mat den = (mu_xx + mu_yy + c1).mul(var_x + var_y + c2);
  cv::Mat map;
  cv::divide(num, den, map);
  return cv::mean(map)[0];
}

}  // namespace

Expected<double> psnr(const std::vector<Frame>& a, const std::vector<Frame>& b) {
  REEL_RETURN_IF_ERROR(check_pair(a, b));
  double squared = 0;
  double count = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const auto& pa = a[i].rgb;
    const auto& pb = b[i].rgb;
    uint64_t frame_squared = 0;  // exact per frame: at most 65025 * 3 * 16384^2 fits
    for (size_t k = 0; k < pa.size(); ++k) {
      const int d = int{pa[k]} - int{pb[k]};
      frame_squared += static_cast<uint64_t>(d * d);
    }
    squared += static_cast<double>(frame_squared);
    count += static_cast<double>(pa.size());
  }
  if (squared == 0) return std::numeric_limits<double>::infinity();
  return 10.0 * std::log10(255.0 * 255.0 / (squared / count));
}

Expected<double> ssim(const std::vector<Frame>& a, const std::vector<Frame>& b) {
  REEL_RETURN_IF_ERROR(check_pair(a, b));
  double total = 0;
  try {
    for (size_t i = 0; i < a.size(); ++i) total += ssim_luma(luma(a[i]), luma(b[i]));
  } catch (const cv::Exception& e) {
    return make_error(Errc::internal, std::string("SSIM failed in OpenCV: ") + e.what());
  }
  return total / static_cast<double>(a.size());
}

Expected<double> temporal_consistency(const std::vector<Frame>& video) {
  if (video.size() < 2)
    return make_error(Errc::invalid_argument,
                      "temporal consistency needs at least 2 frames, got " +
                          std::to_string(video.size()));
  for (size_t i = 0; i < video.size(); ++i) {
    REEL_RETURN_IF_ERROR(check_frame(video[i]));
    if (video[i].width != video[0].width || video[i].height != video[0].height)
      return make_error(Errc::invalid_argument, "frame " + std::to_string(i) + " is " +
                                                    size_text(video[i]) + ", frame 0 is " +
                                                    size_text(video[0]));
  }
  double total = 0;
  try {
    cv::Mat previous = luma(video[0]);  // each frame's luma is computed once
    for (size_t i = 1; i < video.size(); ++i) {
      cv::Mat current = luma(video[i]);
      total += ssim_luma(previous, current);
      previous = std::move(current);
    }
  } catch (const cv::Exception& e) {
    return make_error(Errc::internal, std::string("SSIM failed in OpenCV: ") + e.what());
  }
  return total / static_cast<double>(video.size() - 1);
}

}  // namespace reel::video
