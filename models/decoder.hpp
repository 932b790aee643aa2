// Decoders: latents to RGB frames. Pixel-space models use IdentityDecoder; VAEs come later
// behind the same interface.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>

#include "base/expected.hpp"

namespace reel::models {

class Decoder {
 public:
  virtual ~Decoder() = default;
  // latents [B, C, F, H, W] -> frames [B, F', H', W', 3] uint8 RGB. invalid_argument for
  // latents of the wrong rank, channel count or dtype, internal when the library fails.
  [[nodiscard]] virtual Expected<at::Tensor> decode(const at::Tensor& latents) = 0;
  [[nodiscard]] virtual int64_t latent_channels() const = 0;
};

// Decodes latent frames [first_frame, first_frame + count) of `latents` [B, C, F, H, W].
// invalid_argument when the range is empty or leaves [0, F).
[[nodiscard]] Expected<at::Tensor> decode_frames(Decoder& decoder, const at::Tensor& latents, int64_t first_frame,
                                                 int64_t count);

// Called with each decoded chunk: the index of its first latent frame and its frames
// [B, F', H', W', 3]. An error stops the decoding and is returned.
using FrameSink = std::function<Status(int64_t first_frame, const at::Tensor& frames)>;

// Decodes `latents` `chunk_frames` latent frames at a time (the last chunk may be shorter), so
// that a long video never holds more than one chunk of pixels beyond what `sink` keeps. Chunks
// are decoded independently: exact for decoders without temporal context (IdentityDecoder).
[[nodiscard]] Status decode_in_chunks(Decoder& decoder, const at::Tensor& latents, int64_t chunk_frames,
                                      const FrameSink& sink);

// decode_in_chunks with the chunks concatenated along frames: [B, F', H', W', 3].
[[nodiscard]] Expected<at::Tensor> decode_chunked(Decoder& decoder, const at::Tensor& latents,
                                                  int64_t chunk_frames);

// Pixel-space "latents": RGB in [-1, 1], C = 3. x maps to round((x + 1) * 127.5) clamped to
// [0, 255], so -1 -> 0, 0 -> 128, 1 -> 255. NaN values are an error (invalid_argument).
class IdentityDecoder : public Decoder {
 public:
  [[nodiscard]] Expected<at::Tensor> decode(const at::Tensor& latents) override;
  [[nodiscard]] int64_t latent_channels() const override { return 3; }
};

// The inverse of IdentityDecoder: frames uint8 [F, H, W, 3] (or [B, F, H, W, 3]) -> float32
// [1, 3, F, H, W] (or [B, 3, F, H, W]) in [-1, 1], x / 127.5 - 1. Decoding the result gives the
// frames back exactly. invalid_argument for another rank, dtype or channel count.
[[nodiscard]] Expected<at::Tensor> encode_pixels(const at::Tensor& frames);

}  // namespace reel::models
