// Still images: PNG frames and contact sheets, through OpenCV.
#pragma once

#include <string>
#include <vector>

#include "base/expected.hpp"
#include "video/frame.hpp"

namespace reel::video {

// Writes `frame` as an 8-bit RGB PNG through `<path>.part` and a rename, so `path` is never
// half-written. Errors: invalid_argument (bad frame), io_error (cannot write the folder),
// internal (OpenCV failed to encode).
[[nodiscard]] Status write_png(const std::string& path, const Frame& frame);

// Reads a PNG (or any image OpenCV decodes) as RGB24; grey and alpha are converted, 16-bit is
// scaled to 8-bit. Errors: not_found, io_error, corrupt_data (not a decodable image).
[[nodiscard]] Expected<Frame> read_png(const std::string& path);

// Lays frames out in a grid: one row per entry of `rows` (one video each), its frames left to
// right. Every cell is as large as the largest frame; a smaller frame sits at its cell's top
// left. Cells are separated by `gap` pixels of white; rows shorter than the longest leave white.
// Errors: invalid_argument (no rows, an empty row, a bad frame, gap < 0).
[[nodiscard]] Expected<Frame> contact_sheet(const std::vector<std::vector<Frame>>& rows,
                                            int gap = 2);

// contact_sheet() written as a PNG with write_png().
[[nodiscard]] Status write_contact_sheet(const std::string& path,
                                         const std::vector<std::vector<Frame>>& rows, int gap = 2);

}  // namespace reel::video
