#include "models/decoder.hpp"

#include <torch/torch.h>

#include <sstream>
#include <vector>

namespace reel::models {

namespace {

std::string shape_of(const at::Tensor& t) {
  std::ostringstream os;
  os << t.sizes();
  return os.str();
}

Status check_latents(const at::Tensor& latents) {
  if (!latents.defined() || latents.dim() != 5)
    return make_error(Errc::invalid_argument,
                      "latents must be [B, C, F, H, W], got " + (latents.defined() ? shape_of(latents) : "nothing"));
  return {};
}

}  // namespace

Expected<at::Tensor> decode_frames(Decoder& decoder, const at::Tensor& latents, int64_t first_frame, int64_t count) {
  REEL_RETURN_IF_ERROR(check_latents(latents));
  const int64_t frames = latents.size(2);
  if (count <= 0 || first_frame < 0 || first_frame > frames - count)
    return make_error(Errc::invalid_argument, "latent frames [" + std::to_string(first_frame) + ", " +
                                                  std::to_string(first_frame + count) +
                                                  ") are not a non-empty part of [0, " + std::to_string(frames) + ")");
  return decoder.decode(latents.narrow(2, first_frame, count));  // [B, C, count, H, W]
}

Status decode_in_chunks(Decoder& decoder, const at::Tensor& latents, int64_t chunk_frames, const FrameSink& sink) {
  REEL_RETURN_IF_ERROR(check_latents(latents));
  if (chunk_frames <= 0)
    return make_error(Errc::invalid_argument, "chunk_frames must be positive, got " + std::to_string(chunk_frames));
  const int64_t frames = latents.size(2);
  for (int64_t first = 0; first < frames; first += chunk_frames) {
    auto chunk = decode_frames(decoder, latents, first, std::min(chunk_frames, frames - first));
    if (!chunk) return chunk.error();
    REEL_RETURN_IF_ERROR(sink(first, *chunk));
  }
  return {};
}

Expected<at::Tensor> decode_chunked(Decoder& decoder, const at::Tensor& latents, int64_t chunk_frames) {
  std::vector<at::Tensor> chunks;
  auto st = decode_in_chunks(decoder, latents, chunk_frames, [&](int64_t, const at::Tensor& frames) -> Status {
    chunks.push_back(frames);
    return {};
  });
  if (!st) return st.error();
  try {
    return chunks.size() == 1 ? chunks[0] : torch::cat(chunks, 1);  // [B, F', H', W', 3]
  } catch (const c10::Error& e) {
    return make_error(Errc::internal, std::string("decode: ") + e.what_without_backtrace());
  }
}

Expected<at::Tensor> IdentityDecoder::decode(const at::Tensor& latents) {
  REEL_RETURN_IF_ERROR(check_latents(latents));
  if (latents.size(1) != 3)
    return make_error(Errc::invalid_argument, "the pixel-space decoder needs 3 (RGB) channels, got " +
                                                  std::to_string(latents.size(1)) + " in latents " + shape_of(latents));
  if (!at::isFloatingType(latents.scalar_type()))
    return make_error(Errc::invalid_argument, "latents must be floating point");
  try {
    if (latents.isnan().any().item<bool>()) return make_error(Errc::invalid_argument, "latents contain NaN values");
    auto x = latents.permute({0, 2, 3, 4, 1}).to(at::kFloat);  // [B, F, H, W, 3]
    return ((x + 1) * 127.5).round().clamp(0, 255).to(at::kByte).contiguous();
  } catch (const c10::Error& e) {
    return make_error(Errc::internal, std::string("decode: ") + e.what_without_backtrace());
  }
}

Expected<at::Tensor> encode_pixels(const at::Tensor& frames) {
  if (!frames.defined() || (frames.dim() != 4 && frames.dim() != 5) || frames.size(-1) != 3 ||
      frames.scalar_type() != at::kByte)
    return make_error(Errc::invalid_argument,
                      "frames must be uint8 [F, H, W, 3] or [B, F, H, W, 3], got " +
                          (frames.defined() ? shape_of(frames) + " " + std::string(c10::toString(frames.scalar_type()))
                                            : std::string("nothing")));
  try {
    auto x = frames.dim() == 4 ? frames.unsqueeze(0) : frames;  // [B, F, H, W, 3]
    return (x.permute({0, 4, 1, 2, 3}).to(at::kFloat) / 127.5 - 1).contiguous();  // [B, 3, F, H, W]
  } catch (const c10::Error& e) {
    return make_error(Errc::internal, std::string("encode_pixels: ") + e.what_without_backtrace());
  }
}

}  // namespace reel::models
