// zstd framing of tensor payloads, and the byte-planar layout applied before it.
#include <zstd.h>

#include <string>

#include "codecs/tensor_detail.hpp"

namespace reel::codecs::detail {

std::string to_byte_planar(std::string_view interleaved, size_t width) {
  const size_t n = interleaved.size() / width;
  std::string planar(interleaved.size(), '\0');
  for (size_t k = 0; k < width; ++k) {
    char* plane = planar.data() + k * n;
    for (size_t i = 0; i < n; ++i) plane[i] = interleaved[i * width + k];
  }
  return planar;
}

std::string from_byte_planar(std::string_view planar, size_t width) {
  const size_t n = planar.size() / width;
  std::string interleaved(planar.size(), '\0');
  for (size_t k = 0; k < width; ++k) {
    const char* plane = planar.data() + k * n;
    for (size_t i = 0; i < n; ++i) interleaved[i * width + k] = plane[i];
  }
  return interleaved;
}

Expected<std::string> zstd_compress(std::string_view raw, int level) {
  std::string frame(ZSTD_compressBound(raw.size()), '\0');
  const size_t written = ZSTD_compress(frame.data(), frame.size(), raw.data(), raw.size(), level);
  if (ZSTD_isError(written)) {
    return make_error(Errc::internal,
                      std::string("zstd compression failed: ") + ZSTD_getErrorName(written));
  }
  frame.resize(written);
  return frame;
}

Status check_zstd_frame(std::string_view frame, size_t expected_bytes) {
  const unsigned long long content = ZSTD_getFrameContentSize(frame.data(), frame.size());
  if (content == ZSTD_CONTENTSIZE_ERROR || content == ZSTD_CONTENTSIZE_UNKNOWN) {
    return make_error(Errc::corrupt_data, "payload is not a zstd frame with a recorded size");
  }
  if (content != expected_bytes) {
    return make_error(Errc::corrupt_data, "zstd frame holds " + std::to_string(content) +
                                              " bytes, the shape needs " +
                                              std::to_string(expected_bytes));
  }
  const size_t frame_bytes = ZSTD_findFrameCompressedSize(frame.data(), frame.size());
  if (ZSTD_isError(frame_bytes) || frame_bytes != frame.size()) {
    return make_error(Errc::corrupt_data, "zstd frame is truncated or followed by other bytes");
  }
  return {};
}

Expected<std::string> zstd_decompress(std::string_view frame, size_t expected_bytes) {
  REEL_RETURN_IF_ERROR(check_zstd_frame(frame, expected_bytes));
  std::string raw(expected_bytes, '\0');
  const size_t got = ZSTD_decompress(raw.data(), raw.size(), frame.data(), frame.size());
  if (ZSTD_isError(got)) {
    return make_error(Errc::corrupt_data,
                      std::string("zstd decompression failed: ") + ZSTD_getErrorName(got));
  }
  if (got != expected_bytes) {
    return make_error(Errc::corrupt_data, "zstd frame decompressed to the wrong size");
  }
  return raw;
}

}  // namespace reel::codecs::detail
