#include "video/image.hpp"

#include "base/durable.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <system_error>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

namespace reel::video {
namespace {

// Writes `bytes` through a temporary renamed at the end (base/durable.hpp): on failure nothing is left.
Status write_file_via_part(const std::string& path, const std::vector<uint8_t>& bytes) {
  return write_file_atomic(path, std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

}  // namespace

Status write_png(const std::string& path, const Frame& frame) {
  REEL_RETURN_IF_ERROR(check_frame(frame));
  std::vector<uint8_t> png;
  try {
    // OpenCV only reads the frame here; Mat has no const-pointer constructor.
    const cv::Mat rgb(frame.height, frame.width, CV_8UC3, const_cast<uint8_t*>(frame.rgb.data()));
    cv::Mat bgr;
    cv::cvtColor(rgb, bgr, cv::COLOR_RGB2BGR);
    // imencode, not imwrite: imwrite picks the format from the name, and ours ends in .part.
    if (!cv::imencode(".png", bgr, png))
      return make_error(Errc::internal, "OpenCV could not encode a PNG for " + path);
  } catch (const cv::Exception& e) {
    return make_error(Errc::internal, "OpenCV could not encode a PNG for " + path + ": " + e.what());
  }
  return write_file_via_part(path, png);
}

Expected<Frame> read_png(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    if (std::filesystem::exists(path, ec))
      return make_error(Errc::io_error, path + " is not a regular file");
    return make_error(Errc::not_found, "no such image file: " + path);
  }
  std::ifstream file(path, std::ios::binary);
  if (!file) return make_error(Errc::io_error, "cannot read " + path + ": " + std::strerror(errno));
  const std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(file)),
                                   std::istreambuf_iterator<char>());
  if (file.bad()) return make_error(Errc::io_error, "cannot read " + path);

  try {
    const cv::Mat bgr = cv::imdecode(bytes, cv::IMREAD_COLOR);
    if (bgr.empty()) return make_error(Errc::corrupt_data, path + " is not an image OpenCV can decode");
    Frame frame{bgr.cols, bgr.rows, {}};
    frame.rgb.resize(static_cast<size_t>(frame.width) * frame.height * 3);
    cv::Mat rgb(frame.height, frame.width, CV_8UC3, frame.rgb.data());
    cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);  // writes into frame.rgb: sizes already match
    return frame;
  } catch (const cv::Exception& e) {
    return make_error(Errc::corrupt_data, "cannot decode " + path + ": " + e.what());
  }
}

Expected<Frame> contact_sheet(const std::vector<std::vector<Frame>>& rows, int gap) {
  if (gap < 0) return make_error(Errc::invalid_argument, "contact sheet gap " + std::to_string(gap) + " is negative");
  if (rows.empty()) return make_error(Errc::invalid_argument, "contact sheet with no rows");
  int cell_w = 0, cell_h = 0;
  size_t columns = 0;
  for (size_t r = 0; r < rows.size(); ++r) {
    if (rows[r].empty())
      return make_error(Errc::invalid_argument, "contact sheet row " + std::to_string(r) + " has no frames");
    columns = std::max(columns, rows[r].size());
    for (const Frame& f : rows[r]) {
      REEL_RETURN_IF_ERROR(check_frame(f));
      cell_w = std::max(cell_w, f.width);
      cell_h = std::max(cell_h, f.height);
    }
  }
  const int64_t width = static_cast<int64_t>(columns) * (cell_w + gap) - gap;
  const int64_t height = static_cast<int64_t>(rows.size()) * (cell_h + gap) - gap;
  if (width > 65536 || height > 65536)
    return make_error(Errc::invalid_argument, "contact sheet of " + std::to_string(width) + "x" +
                                                  std::to_string(height) + " is too large");

  Frame sheet{static_cast<int>(width), static_cast<int>(height), {}};
  sheet.rgb.assign(static_cast<size_t>(width) * height * 3, 255);
  const size_t sheet_row = static_cast<size_t>(width) * 3;
  for (size_t r = 0; r < rows.size(); ++r) {
    for (size_t c = 0; c < rows[r].size(); ++c) {
      const Frame& f = rows[r][c];
      const size_t x0 = c * static_cast<size_t>(cell_w + gap);
      const size_t y0 = r * static_cast<size_t>(cell_h + gap);
      const size_t frame_row = static_cast<size_t>(f.width) * 3;
      for (int y = 0; y < f.height; ++y)
        std::memcpy(sheet.rgb.data() + (y0 + y) * sheet_row + x0 * 3,
                    f.rgb.data() + y * frame_row, frame_row);
    }
  }
  return sheet;
}

Status write_contact_sheet(const std::string& path, const std::vector<std::vector<Frame>>& rows,
                           int gap) {
  auto sheet = contact_sheet(rows, gap);
  if (!sheet.ok()) return sheet.error();
  return write_png(path, *sheet);
}

}  // namespace reel::video
