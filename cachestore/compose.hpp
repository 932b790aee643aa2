// Latents as the cache handles them, and FlexCache's object/background decoupling on them: a
// background plate with the objects taken out, an object layer with only the objects, and the
// blend of the two that a composed hit starts from. Plain float arithmetic, no LibTorch.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "base/expected.hpp"

namespace reel::cachestore {

// A latent [1, C, F, H, W], row-major float32.
struct Latent {
  std::vector<int64_t> shape;
  std::vector<float> values;

  [[nodiscard]] int64_t channels() const { return shape.size() == 5 ? shape[1] : 0; }
  [[nodiscard]] int64_t frames() const { return shape.size() == 5 ? shape[2] : 0; }
  [[nodiscard]] int64_t plane() const { return shape.size() == 5 ? shape[3] * shape[4] : 0; }
  bool operator==(const Latent&) const = default;
};

// Checks a latent is [1, C, F, H, W] with matching values and, when `mask` is given, that the
// mask has F * H * W cells. Errors: invalid_argument saying what does not match.
[[nodiscard]] Status check_latent(const Latent& latent, std::span<const uint8_t> mask = {});

// The latent with the masked cells (mask [F, H, W], non-zero = object) replaced by what lies
// behind them: the mean of that cell over the frames where it is not masked (a moving object
// uncovers it), or, for a cell masked in every frame (an object standing still), the mean of the
// unmasked cells of its row in that frame, then of the whole frame. Per channel.
[[nodiscard]] Latent background_plate(const Latent& latent, std::span<const uint8_t> mask);

// The latent where the mask is set and 0 elsewhere (zeros compress to almost nothing).
[[nodiscard]] Latent object_layer(const Latent& latent, std::span<const uint8_t> mask);

// Object where its mask is set, background elsewhere. Shapes must match.
[[nodiscard]] Latent blend(const Latent& background, const Latent& object, std::span<const uint8_t> mask);

}  // namespace reel::cachestore
