// serialize / parse: the byte layout documented in tensor.hpp, and the f32 convenience pair.
#include <bit>
#include <cstring>
#include <string>

#include "codecs/checksum.hpp"
#include "codecs/tensor.hpp"
#include "codecs/tensor_detail.hpp"

namespace reel::codecs {
namespace {

constexpr char kMagic[4] = {'R', 'L', 'T', '1'};
constexpr uint16_t kVersion = 1;
constexpr size_t kFixedBytes = 32;  // magic .. payload checksum
constexpr size_t kChecksumBytes = 8;

void put_le(std::string& out, uint64_t v, int bytes) {
  for (int k = 0; k < bytes; ++k) out.push_back(static_cast<char>((v >> (8 * k)) & 0xFFu));
}

uint64_t get_le(std::string_view in, size_t offset, int bytes) {
  uint64_t v = 0;
  for (int k = bytes - 1; k >= 0; --k) v = (v << 8) | static_cast<uint8_t>(in[offset + k]);
  return v;
}

uint8_t axis_byte(int axis) {
  return axis < 0 ? detail::kAxisUnused : static_cast<uint8_t>(axis);
}

int axis_from_byte(uint8_t b) { return b == detail::kAxisUnused ? -1 : b; }

Error corrupt(std::string what) { return make_error(Errc::corrupt_data, std::move(what)); }

}  // namespace

std::string serialize(const EncodedTensor& t) {
  std::string out;
  out.reserve(t.stored_bytes());
  out.append(kMagic, sizeof kMagic);
  put_le(out, kVersion, 2);
  put_le(out, static_cast<uint8_t>(t.dtype), 1);
  put_le(out, static_cast<uint8_t>(t.quant), 1);
  put_le(out, (t.zstd ? detail::kFlagZstd : 0) | (t.frame_delta ? detail::kFlagFrameDelta : 0), 1);
  put_le(out, axis_byte(t.channel_axis), 1);
  put_le(out, axis_byte(t.frame_axis), 1);
  put_le(out, t.shape.size(), 1);
  put_le(out, t.scales.size(), 4);
  put_le(out, t.payload.size(), 8);
  put_le(out, t.checksum, 8);
  for (int64_t dim : t.shape) put_le(out, static_cast<uint64_t>(dim), 8);
  for (float scale : t.scales) put_le(out, std::bit_cast<uint32_t>(scale), 4);
  put_le(out, checksum64(out, kHeaderSeed), 8);
  out.append(t.payload);
  return out;
}

Expected<EncodedTensor> parse(std::string_view bytes) {
  if (bytes.size() < kFixedBytes + kChecksumBytes) return corrupt("truncated tensor header");
  if (std::memcmp(bytes.data(), kMagic, sizeof kMagic) != 0) return corrupt("not a tensor (magic)");
  const uint64_t version = get_le(bytes, 4, 2);
  if (version != kVersion) {
    return make_error(Errc::unsupported, "tensor format version " + std::to_string(version) +
                                             " (this build reads version 1)");
  }
  const uint64_t rank = get_le(bytes, 11, 1);
  const uint64_t scale_count = get_le(bytes, 12, 4);
  const uint64_t payload_bytes = get_le(bytes, 16, 8);
  // At most 32 + 8 * 255 + 4 * (2^32 - 1): no overflow in 64 bits.
  const uint64_t header_end = kFixedBytes + 8 * rank + 4 * scale_count;
  if (bytes.size() < header_end + kChecksumBytes) return corrupt("truncated tensor header");
  if (get_le(bytes, header_end, 8) != checksum64(bytes.substr(0, header_end), kHeaderSeed)) {
    return corrupt("tensor header checksum mismatch");
  }
  const uint64_t payload_offset = header_end + kChecksumBytes;
  if (payload_bytes != bytes.size() - payload_offset) {
    return corrupt("payload length " + std::to_string(payload_bytes) + " but " +
                   std::to_string(bytes.size() - payload_offset) + " bytes follow the header");
  }
  const auto flags = static_cast<uint8_t>(get_le(bytes, 8, 1));
  if ((flags & ~(detail::kFlagZstd | detail::kFlagFrameDelta)) != 0) {
    return corrupt("unknown tensor flags");
  }

  EncodedTensor t;
  t.dtype = static_cast<DType>(get_le(bytes, 6, 1));
  t.quant = static_cast<Quant>(get_le(bytes, 7, 1));
  t.zstd = (flags & detail::kFlagZstd) != 0;
  t.frame_delta = (flags & detail::kFlagFrameDelta) != 0;
  t.channel_axis = axis_from_byte(static_cast<uint8_t>(get_le(bytes, 9, 1)));
  t.frame_axis = axis_from_byte(static_cast<uint8_t>(get_le(bytes, 10, 1)));
  t.checksum = get_le(bytes, 24, 8);
  t.shape.resize(rank);
  for (size_t d = 0; d < rank; ++d) {
    t.shape[d] = static_cast<int64_t>(get_le(bytes, kFixedBytes + 8 * d, 8));
  }
  t.scales.resize(scale_count);
  const size_t scales_at = kFixedBytes + 8 * rank;
  for (size_t c = 0; c < scale_count; ++c) {
    t.scales[c] = std::bit_cast<float>(static_cast<uint32_t>(get_le(bytes, scales_at + 4 * c, 4)));
  }
  t.payload.assign(bytes.substr(payload_offset));
  if (checksum64(t.payload) != t.checksum) return corrupt("payload checksum mismatch");
  REEL_RETURN_IF_ERROR(detail::validate(t));
  return t;
}

Expected<std::string> pack_f32(std::span<const float> values, std::vector<int64_t> shape) {
  Expected<EncodedTensor> encoded = encode(values, std::move(shape));
  if (!encoded) return encoded.error();
  return serialize(*encoded);
}

Expected<std::pair<std::vector<int64_t>, std::vector<float>>> unpack_f32(std::string_view bytes) {
  Expected<EncodedTensor> parsed = parse(bytes);
  if (!parsed) return parsed.error();
  Expected<std::vector<float>> values = decode(*parsed);
  if (!values) return values.error();
  return std::pair{std::move(parsed->shape), std::move(*values)};
}

}  // namespace reel::codecs
