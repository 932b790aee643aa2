// encode / decode: argument checks, the choice of element codec, and the zstd stage.
#include "codecs/tensor.hpp"

#include <cmath>
#include <new>
#include <string>

#include "codecs/checksum.hpp"
#include "codecs/tensor_detail.hpp"

namespace reel::codecs {
namespace detail {

std::optional<DType> dtype_for(Quant quant) {
  switch (quant) {
    case Quant::none: return DType::f32;
    case Quant::fp16: return DType::f16;
    case Quant::bf16: return DType::bf16;
    case Quant::int8_per_channel: return DType::i8;
  }
  return std::nullopt;
}

size_t element_bytes(DType dtype) {
  switch (dtype) {
    case DType::f32: return 4;
    case DType::f16: return 2;
    case DType::bf16: return 2;
    case DType::i8: return 1;
  }
  return 0;
}

Expected<ElementCount> count_elements(std::span<const int64_t> shape, Errc code) {
  ElementCount count;
  bool has_zero = false;
  for (int64_t dim : shape) {
    if (dim < 0) return make_error(code, "negative dimension " + std::to_string(dim) + " in shape");
    const uint64_t factor = dim == 0 ? 1 : static_cast<uint64_t>(dim);
    if (factor > kMaxElements / count.bounded) {
      return make_error(code, "shape has more than 2^36 elements");
    }
    count.bounded *= factor;
    has_zero |= dim == 0;
  }
  count.numel = has_zero ? 0 : count.bounded;
  return count;
}

AxisSplit split_at(std::span<const int64_t> shape, int axis, size_t numel) {
  if (axis < 0) return AxisSplit{1, 1, numel};
  AxisSplit split;
  for (int d = 0; d < axis; ++d) split.outer *= static_cast<size_t>(shape[d]);
  split.extent = static_cast<size_t>(shape[axis]);
  split.inner = 1;
  for (size_t d = static_cast<size_t>(axis) + 1; d < shape.size(); ++d) {
    split.inner *= static_cast<size_t>(shape[d]);
  }
  return split;
}

Status validate(const EncodedTensor& t) {
  auto corrupt = [](std::string what) { return make_error(Errc::corrupt_data, std::move(what)); };
  const std::optional<DType> dtype = dtype_for(t.quant);
  if (!dtype) return corrupt("unknown quantisation");
  if (*dtype != t.dtype) return corrupt("dtype does not match the quantisation");
  if (t.shape.size() > kMaxRank) return corrupt("rank above " + std::to_string(kMaxRank));
  Expected<ElementCount> count = count_elements(t.shape, Errc::corrupt_data);
  if (!count) return count.error();
  const int rank = static_cast<int>(t.shape.size());
  if (t.quant == Quant::int8_per_channel) {
    if (t.channel_axis < 0 || t.channel_axis >= rank) return corrupt("channel axis out of range");
    if (t.scales.size() != static_cast<uint64_t>(t.shape[t.channel_axis])) {
      return corrupt("scale count does not match the channel dimension");
    }
  } else if (t.channel_axis != -1 || !t.scales.empty()) {
    return corrupt("channel axis or scales without int8 quantisation");
  }
  for (float scale : t.scales) {
    if (!std::isfinite(scale) || scale < 0.0f) return corrupt("scale is negative or not finite");
  }
  if (t.frame_delta ? (t.frame_axis < 0 || t.frame_axis >= rank) : t.frame_axis != -1) {
    return corrupt("frame axis out of range or set without frame_delta");
  }
  const uint64_t raw_bytes = count->numel * element_bytes(t.dtype);
  if (t.zstd) return check_zstd_frame(t.payload, raw_bytes);
  if (t.payload.size() != raw_bytes) {
    return corrupt("payload holds " + std::to_string(t.payload.size()) + " bytes, the shape needs " +
                   std::to_string(raw_bytes));
  }
  return {};
}

}  // namespace detail

namespace {

using detail::AxisSplit;

// Resolves a user axis (negative counts from the end) against the rank.
Expected<int> resolve_axis(int axis, size_t rank, const char* name) {
  const int r = static_cast<int>(rank);
  const int resolved = axis < 0 ? axis + r : axis;
  if (resolved < 0 || resolved >= r) {
    return make_error(Errc::invalid_argument, std::string(name) + " " + std::to_string(axis) +
                                                  " is outside a tensor of rank " +
                                                  std::to_string(r));
  }
  return resolved;
}

Expected<EncodedTensor> encode_checked(std::span<const float> values, std::vector<int64_t> shape,
                                       const EncodeOptions& options) {
  if (shape.size() > kMaxRank) {
    return make_error(Errc::invalid_argument, "rank above " + std::to_string(kMaxRank));
  }
  Expected<detail::ElementCount> count = detail::count_elements(shape, Errc::invalid_argument);
  if (!count) return count.error();
  const size_t numel = count->numel;
  if (values.size() != numel) {
    return make_error(Errc::invalid_argument, std::to_string(values.size()) +
                                                  " values for a shape of " +
                                                  std::to_string(numel) + " elements");
  }
  if (options.zstd_level < 0 || options.zstd_level > 19) {
    return make_error(Errc::invalid_argument, "zstd_level must be in [0, 19]");
  }
  const std::optional<DType> dtype = detail::dtype_for(options.quant);
  if (!dtype) return make_error(Errc::invalid_argument, "unknown quantisation");

  EncodedTensor out;
  out.dtype = *dtype;
  out.quant = options.quant;
  out.zstd = options.zstd_level > 0;
  out.frame_delta = options.frame_delta;
  if (options.quant == Quant::int8_per_channel) {
    if (options.int8_bits < 2 || options.int8_bits > 8) {
      return make_error(Errc::invalid_argument, "int8_bits must be 2..8, got " + std::to_string(options.int8_bits));
    }
    Expected<int> axis = resolve_axis(options.channel_axis, shape.size(), "channel_axis");
    if (!axis) return axis.error();
    out.channel_axis = *axis;
  }
  if (options.frame_delta) {
    Expected<int> axis = resolve_axis(options.frame_axis, shape.size(), "frame_axis");
    if (!axis) return axis.error();
    out.frame_axis = *axis;
  }
  if (options.quant != Quant::none) {
    for (size_t i = 0; i < values.size(); ++i) {
      if (!std::isfinite(values[i])) {
        return make_error(Errc::invalid_argument,
                          "value " + std::to_string(i) + " is not finite; lossy codecs refuse it");
      }
    }
  }
  out.shape = std::move(shape);

  const AxisSplit frames = detail::split_at(out.shape, out.frame_axis, numel);
  std::string raw;
  if (numel > 0) {
    switch (out.quant) {
      case Quant::none:
        raw = detail::encode_f32(values, frames);
        break;
      case Quant::fp16:
      case Quant::bf16: {
        Expected<std::string> half = detail::encode_half(values, out.dtype, frames);
        if (!half) return half.error();
        raw = std::move(*half);
        break;
      }
      case Quant::int8_per_channel:
        raw = detail::encode_int8(values, detail::split_at(out.shape, out.channel_axis, numel),
                                  frames, out.scales, options.int8_bits);
        break;
    }
  } else if (out.quant == Quant::int8_per_channel) {
    out.scales.assign(static_cast<size_t>(out.shape[out.channel_axis]), 0.0f);
  }

  if (out.zstd) {
    const size_t width = detail::element_bytes(out.dtype);
    if (width > 1) raw = detail::to_byte_planar(raw, width);
    Expected<std::string> frame = detail::zstd_compress(raw, options.zstd_level);
    if (!frame) return frame.error();
    out.payload = std::move(*frame);
  } else {
    out.payload = std::move(raw);
  }
  out.checksum = checksum64(out.payload);
  return out;
}

Expected<std::vector<float>> decode_checked(const EncodedTensor& t) {
  if (checksum64(t.payload) != t.checksum) {
    return make_error(Errc::corrupt_data, "payload checksum mismatch");
  }
  REEL_RETURN_IF_ERROR(detail::validate(t));
  const size_t numel = t.numel();
  std::vector<float> out(numel);
  if (numel == 0) return out;

  const size_t width = detail::element_bytes(t.dtype);
  std::string decompressed;
  std::string_view raw = t.payload;
  if (t.zstd) {
    Expected<std::string> plain = detail::zstd_decompress(t.payload, numel * width);
    if (!plain) return plain.error();
    decompressed = width > 1 ? detail::from_byte_planar(*plain, width) : std::move(*plain);
    raw = decompressed;
  }

  const AxisSplit frames = detail::split_at(t.shape, t.frame_axis, numel);
  switch (t.quant) {
    case Quant::none:
      detail::decode_f32(raw, frames, out);
      break;
    case Quant::fp16:
    case Quant::bf16:
      detail::decode_half(raw, t.dtype, frames, out);
      break;
    case Quant::int8_per_channel:
      detail::decode_int8(raw, t.scales, detail::split_at(t.shape, t.channel_axis, numel), frames,
                          out);
      break;
  }
  return out;
}

}  // namespace

size_t EncodedTensor::numel() const {
  size_t n = 1;
  for (int64_t dim : shape) n *= static_cast<size_t>(dim);
  return n;
}

size_t EncodedTensor::stored_bytes() const {
  return 40 + 8 * shape.size() + 4 * scales.size() + payload.size();
}

Expected<EncodedTensor> encode(std::span<const float> values, std::vector<int64_t> shape,
                               const EncodeOptions& options) {
  try {
    return encode_checked(values, std::move(shape), options);
  } catch (const std::bad_alloc&) {
    return make_error(Errc::internal, "out of memory while encoding a tensor");
  }
}

Expected<std::vector<float>> decode(const EncodedTensor& tensor) {
  // A corrupt but checksum-consistent header can claim a huge (zstd) tensor: fail, do not abort.
  try {
    return decode_checked(tensor);
  } catch (const std::bad_alloc&) {
    return make_error(Errc::internal, "out of memory while decoding a tensor");
  }
}

}  // namespace reel::codecs
