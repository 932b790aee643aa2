// Private to codecs/: pieces shared by the tensor encoder (tensor.cpp), the wire format
// (tensor_wire.cpp) and the zstd framing (zstd_frame.cpp). Not part of the public surface.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/expected.hpp"
#include "codecs/tensor.hpp"

namespace reel::codecs::detail {

inline constexpr uint8_t kFlagZstd = 1u << 0;
inline constexpr uint8_t kFlagFrameDelta = 1u << 1;
inline constexpr uint8_t kAxisUnused = 0xFF;

// The stored element type of each quantisation; nullopt for a value outside the enum.
[[nodiscard]] std::optional<DType> dtype_for(Quant quant);
// Bytes per stored element; 0 for a value outside the enum.
[[nodiscard]] size_t element_bytes(DType dtype);

// Elements counted with zero-size dimensions taken as 1 (bounds every partial product), and the
// true count. Fails (with `code`) on a negative dimension or more than kMaxElements.
struct ElementCount {
  uint64_t bounded = 1;
  uint64_t numel = 1;
};
[[nodiscard]] Expected<ElementCount> count_elements(std::span<const int64_t> shape, Errc code);

// A tensor seen as [outer, extent, inner] around one axis (row-major). The whole tensor as one
// run (outer 1, extent 1, inner numel) when no axis is used.
struct AxisSplit {
  size_t outer = 1;
  size_t extent = 1;
  size_t inner = 0;
};
[[nodiscard]] AxisSplit split_at(std::span<const int64_t> shape, int axis, size_t numel);

// Everything decode needs to trust an EncodedTensor, short of the payload checksum and the
// zstd frame contents. Errc::corrupt_data.
[[nodiscard]] Status validate(const EncodedTensor& tensor);

// Element codecs (quantize.cpp). `frames` is the frame_axis split, or the whole tensor as one
// run without frame_delta. Decoders expect a payload of exactly numel elements.
[[nodiscard]] std::string encode_f32(std::span<const float> values, const AxisSplit& frames);
void decode_f32(std::string_view raw, const AxisSplit& frames, std::span<float> out);
// dtype is f16 or bf16. Errc::invalid_argument when a value or difference rounds to infinity.
[[nodiscard]] Expected<std::string> encode_half(std::span<const float> values, DType dtype,
                                                const AxisSplit& frames);
void decode_half(std::string_view raw, DType dtype, const AxisSplit& frames, std::span<float> out);
// Fills `scales` (one per channel of `channels`).
[[nodiscard]] std::string encode_int8(std::span<const float> values, const AxisSplit& channels,
                                      const AxisSplit& frames, std::vector<float>& scales, int bits = 8);
void decode_int8(std::string_view raw, std::span<const float> scales, const AxisSplit& channels,
                 const AxisSplit& frames, std::span<float> out);

// Byte-planar layout for `width`-byte elements: byte k of element i goes to k * n + i.
[[nodiscard]] std::string to_byte_planar(std::string_view interleaved, size_t width);
[[nodiscard]] std::string from_byte_planar(std::string_view planar, size_t width);

// One zstd frame with its content size recorded. Errc::internal if zstd fails.
[[nodiscard]] Expected<std::string> zstd_compress(std::string_view raw, int level);
// Checks the frame header only: a single frame, exactly `frame`'s size, recording a content size
// of `expected_bytes`. Errc::corrupt_data.
[[nodiscard]] Status check_zstd_frame(std::string_view frame, size_t expected_bytes);
// check_zstd_frame, then decompression to exactly `expected_bytes`. Errc::corrupt_data.
[[nodiscard]] Expected<std::string> zstd_decompress(std::string_view frame, size_t expected_bytes);

}  // namespace reel::codecs::detail
