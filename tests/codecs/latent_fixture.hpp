// Synthetic tensors for the codec tests: a smooth video latent like the ones the cache stores.
#pragma once

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

namespace reel::codecs::testing {

inline int64_t product(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

// [B, C, F, H, W]: per channel, a sum of three travelling sinusoids in space and time with
// channel-dependent amplitude (about 0.5..2) and offset, plus Gaussian noise of standard deviation
// `noise` (0.01: 1% of the signal's unit amplitude).
inline std::vector<float> smooth_latent(const std::vector<int64_t>& shape, float noise = 0.01f,
                                        uint32_t seed = 7) {
  const int64_t B = shape[0], C = shape[1], F = shape[2], H = shape[3], W = shape[4];
  std::mt19937 rng(seed);
  std::normal_distribution<float> gauss(0.0f, 1.0f);
  std::uniform_real_distribution<float> uniform(0.0f, 1.0f);
  struct Wave { float amp, kx, ky, kt, phase; };
  std::vector<std::vector<Wave>> waves(static_cast<size_t>(C));
  std::vector<float> offset(static_cast<size_t>(C));
  for (int64_t c = 0; c < C; ++c) {
    offset[c] = 0.5f * (uniform(rng) - 0.5f);
    const float gain = 0.5f + 1.5f * uniform(rng);
    for (int k = 0; k < 3; ++k) {
      waves[c].push_back({gain / static_cast<float>(k + 1), 0.05f + 0.25f * uniform(rng),
                          0.05f + 0.25f * uniform(rng), 0.1f + 0.3f * uniform(rng),
                          6.2831853f * uniform(rng)});
    }
  }
  std::vector<float> x;
  x.reserve(static_cast<size_t>(product(shape)));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t f = 0; f < F; ++f)
        for (int64_t h = 0; h < H; ++h)
          for (int64_t w = 0; w < W; ++w) {
            float v = offset[c];
            for (const Wave& wave : waves[c]) {
              v += wave.amp * std::sin(wave.kx * static_cast<float>(w) +
                                       wave.ky * static_cast<float>(h) +
                                       wave.kt * static_cast<float>(f) + wave.phase);
            }
            x.push_back(v + noise * gauss(rng));
          }
  return x;
}

}  // namespace reel::codecs::testing
