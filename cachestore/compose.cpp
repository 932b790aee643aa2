#include "cachestore/compose.hpp"

#include <string>

namespace reel::cachestore {
namespace {

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

}  // namespace

Status check_latent(const Latent& latent, std::span<const uint8_t> mask) {
  if (latent.shape.size() != 5 || latent.shape[0] != 1) {
    return make_error(Errc::invalid_argument, "a cached latent must be [1, C, F, H, W], got " + shape_text(latent.shape));
  }
  int64_t numel = 1;
  for (int64_t d : latent.shape) {
    if (d <= 0) return make_error(Errc::invalid_argument, "a cached latent has an empty dimension: " + shape_text(latent.shape));
    numel *= d;
  }
  if (static_cast<int64_t>(latent.values.size()) != numel) {
    return make_error(Errc::invalid_argument, "latent " + shape_text(latent.shape) + " holds " +
                                                  std::to_string(latent.values.size()) + " values");
  }
  if (!mask.empty() && static_cast<int64_t>(mask.size()) != latent.frames() * latent.plane()) {
    return make_error(Errc::invalid_argument, "object mask has " + std::to_string(mask.size()) +
                                                  " cells, the latent's frames have " +
                                                  std::to_string(latent.frames() * latent.plane()));
  }
  return {};
}

Latent background_plate(const Latent& latent, std::span<const uint8_t> mask) {
  Latent out = latent;
  const int64_t channels = latent.channels(), frames = latent.frames(), plane = latent.plane();
  const int64_t width = latent.shape[4];
  for (int64_t c = 0; c < channels; ++c) {
    const float* in = latent.values.data() + c * frames * plane;  // [F, H*W]
    float* dst = out.values.data() + c * frames * plane;
    for (int64_t cell = 0; cell < plane; ++cell) {
      double sum = 0;
      int64_t seen = 0;
      for (int64_t f = 0; f < frames; ++f) {
        if (mask[static_cast<size_t>(f * plane + cell)] == 0) {
          sum += in[f * plane + cell];
          ++seen;
        }
      }
      for (int64_t f = 0; f < frames; ++f) {
        if (mask[static_cast<size_t>(f * plane + cell)] == 0) continue;
        if (seen > 0) {
          dst[f * plane + cell] = static_cast<float>(sum / static_cast<double>(seen));
          continue;
        }
        // Covered in every frame: the row's visible cells, then the frame's.
        const int64_t row = cell / width;
        double row_sum = 0, frame_sum = 0;
        int64_t row_n = 0, frame_n = 0;
        for (int64_t other = 0; other < plane; ++other) {
          if (mask[static_cast<size_t>(f * plane + other)] != 0) continue;
          frame_sum += in[f * plane + other];
          ++frame_n;
          if (other / width == row) {
            row_sum += in[f * plane + other];
            ++row_n;
          }
        }
        dst[f * plane + cell] = row_n > 0     ? static_cast<float>(row_sum / static_cast<double>(row_n))
                                : frame_n > 0 ? static_cast<float>(frame_sum / static_cast<double>(frame_n))
                                              : 0.0F;
      }
    }
  }
  return out;
}

Latent object_layer(const Latent& latent, std::span<const uint8_t> mask) {
  Latent out = latent;
  const int64_t cells = latent.frames() * latent.plane();
  for (int64_t c = 0; c < latent.channels(); ++c) {
    for (int64_t i = 0; i < cells; ++i) {
      if (mask[static_cast<size_t>(i)] == 0) out.values[static_cast<size_t>(c * cells + i)] = 0.0F;
    }
  }
  return out;
}

Latent blend(const Latent& background, const Latent& object, std::span<const uint8_t> mask) {
  Latent out = background;
  const int64_t cells = background.frames() * background.plane();
  for (int64_t c = 0; c < background.channels(); ++c) {
    for (int64_t i = 0; i < cells; ++i) {
      if (mask[static_cast<size_t>(i)] != 0) {
        out.values[static_cast<size_t>(c * cells + i)] = object.values[static_cast<size_t>(c * cells + i)];
      }
    }
  }
  return out;
}

}  // namespace reel::cachestore
