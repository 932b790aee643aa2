// The one binary format of a tensor, on the wire (data plane) and on disk (cache entries):
// optional quantisation (fp16, bf16, per-channel int8), optional closed-loop frame delta,
// optional zstd, and checksums over both header and payload. Values cross as a span of floats
// plus a shape; nothing here knows about LibTorch.
//
// Serialized layout (version 1). Every integer is little-endian on every machine; floats are
// IEEE binary32 bit patterns stored the same way. r = rank, s = scale count, p = payload bytes.
//
//   offset        size  field
//   0             4     magic "RLT1" (0x52 0x4C 0x54 0x31)
//   4             2     version, u16 = 1 (anything else: Errc::unsupported)
//   6             1     dtype, u8 (DType: 0 f32, 1 f16, 2 bf16, 3 i8); must match quant
//   7             1     quant, u8 (Quant: 0 none, 1 fp16, 2 bf16, 3 int8_per_channel)
//   8             1     flags, u8: bit 0 zstd, bit 1 frame_delta; other bits must be 0
//   9             1     channel_axis, u8; 0xFF when quant is not int8_per_channel
//   10            1     frame_axis, u8; 0xFF when frame_delta is off
//   11            1     rank r, u8 (at most kMaxRank)
//   12            4     scale count s, u32 (shape[channel_axis] for int8_per_channel, else 0)
//   16            8     payload length p, u64
//   24            8     payload checksum, u64: checksum64(payload as stored, seed 0)
//   32            8*r   shape, int64 each (each >= 0)
//   32+8r         4*s   scales, f32 each (finite, >= 0)
//   32+8r+4s      8     header checksum, u64: checksum64(bytes [0, 32+8r+4s), kHeaderSeed)
//   40+8r+4s      p     payload; nothing may follow it
//
// Payload before zstd: numel elements in row-major (C) order of `shape`, each little-endian:
// f32 4 bytes, f16/bf16 2 bytes, i8 1 byte. With zstd, multi-byte elements are first laid out
// byte-planar (every element's byte 0, then every element's byte 1, ...), which lets zstd find
// the runs in the high bytes, and the result is one zstd frame that records its content size.
//
// frame_delta, along frame_axis (frame 0 is always stored as itself):
//   none (f32):       frame f stores bits(x_f) - bits(x_{f-1}) modulo 2^32, element by element;
//                     the round trip stays bit-exact.
//   fp16, bf16:       frame f stores h(x_f - r_{f-1}), where r_{f-1} is the *reconstructed*
//                     previous frame (r_f = r_{f-1} + h(...), in float), so rounding errors do
//                     not accumulate: each frame's error is that of one rounding of a difference.
//   int8_per_channel: with the same per-channel scales as without delta, frame f stores
//                     q_f - q_{f-1} modulo 256, where q are the int8 codes round(x / scale); the
//                     previous codes are exactly what the decoder reconstructs, so the result
//                     equals plain int8 (error <= scale/2) for any number of frames, and the
//                     small differences compress far better.
//
// Numbers the encoder refuses (Errc::invalid_argument): a shape with a negative dimension, more
// than kMaxRank dimensions or more than kMaxElements elements (zero-size dimensions count as 1
// for that limit); a value count that does not match the shape; an axis outside [-rank, rank)
// when it is used (negative axes count from the end); zstd_level outside [0, 19]; for the lossy
// quantisations, any NaN or infinity in the input and any finite value (or fp16/bf16 frame
// difference) that would round to infinity. Quant::none carries every f32 bit pattern, NaN and
// infinities included, unchanged: it is the transport of whatever a model produced.
// int8: scale = max|x| / 127 per channel (rounded to f32, at least the smallest subnormal when the
// channel is non-zero); a channel that is all zeros gets scale 0 and decodes to zeros.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/expected.hpp"

namespace reel::codecs {

// Element type stored in the payload; follows from Quant.
enum class DType : uint8_t { f32, f16, bf16, i8 };
enum class Quant : uint8_t { none, fp16, bf16, int8_per_channel };

inline constexpr size_t kMaxRank = 16;
inline constexpr uint64_t kMaxElements = uint64_t{1} << 36;
inline constexpr uint64_t kHeaderSeed = 0x524C5431;  // "RLT1": keeps header and payload sums apart

struct EncodeOptions {
  Quant quant = Quant::none;  // how values are stored; default none (exact f32)
  int channel_axis = 1;       // axis of the per-channel int8 scales; default 1 (C of [B,C,F,H,W])
  int zstd_level = 0;         // 0 = no zstd; 1..19 compress the payload; default 0
  bool frame_delta = false;   // store frame f minus reconstructed frame f-1; default false
  int frame_axis = 2;         // axis of frames for frame_delta; default 2 (F of [B,C,F,H,W])
  // int8 only: levels used, 2^(bits-1) - 1 on each side of 0, in 2..8. Fewer bits keep the same
  // int8 codes (and format: decoding is code x scale) but leave zstd less entropy to code, so
  // with zstd_level > 0 the payload shrinks about in proportion. Default 8.
  int int8_bits = 8;
};

struct EncodedTensor {
  DType dtype = DType::f32;
  Quant quant = Quant::none;
  bool zstd = false;
  bool frame_delta = false;
  int channel_axis = -1;        // in [0, rank) for int8_per_channel, else -1
  int frame_axis = -1;          // in [0, rank) with frame_delta, else -1
  std::vector<int64_t> shape;
  std::vector<float> scales;    // one per channel (int8_per_channel) or empty
  uint64_t checksum = 0;        // checksum64 of the payload as stored (after zstd)
  std::string payload;

  // Product of the shape (1 for rank 0). Meaningful for a tensor that encode or parse produced.
  [[nodiscard]] size_t numel() const;
  // Size of serialize(*this): header plus payload.
  [[nodiscard]] size_t stored_bytes() const;
};

// Errc::invalid_argument for the inputs listed in the comment at the top; Errc::internal if zstd
// itself fails.
[[nodiscard]] Expected<EncodedTensor> encode(std::span<const float> values,
                                             std::vector<int64_t> shape,
                                             const EncodeOptions& options = {});

// Verifies the payload checksum first, then the fields and sizes. Errc::corrupt_data for any
// inconsistency (checksum, lengths, enums, axes, zstd frame); Errc::internal if memory runs out.
[[nodiscard]] Expected<std::vector<float>> decode(const EncodedTensor& tensor);

// Header + payload as one byte string, laid out as above. Expects a tensor from encode or parse
// (a hand-made inconsistent one serializes to bytes that parse rejects).
[[nodiscard]] std::string serialize(const EncodedTensor& tensor);

// Checks magic, version (Errc::unsupported if unknown), header checksum, enums, axes, sizes and
// payload checksum; Errc::corrupt_data for everything else that is wrong, truncation included.
// Never reads outside `bytes`. Does not decompress: decode still checks the zstd frame itself.
[[nodiscard]] Expected<EncodedTensor> parse(std::string_view bytes);

// What the data plane sends: an exact f32 tensor to bytes (encode with default options, then
// serialize). Errc::invalid_argument for a bad shape or a value count that does not match it.
[[nodiscard]] Expected<std::string> pack_f32(std::span<const float> values,
                                             std::vector<int64_t> shape);

// parse + decode. Accepts a tensor in any codec, not only one from pack_f32, so a sender may
// compress without the receiver knowing.
[[nodiscard]] Expected<std::pair<std::vector<int64_t>, std::vector<float>>> unpack_f32(
    std::string_view bytes);

}  // namespace reel::codecs
