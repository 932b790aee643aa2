// 3D rotary position embedding and the sinusoidal timestep embedding of the video DiT.
#pragma once

#include <ATen/core/Tensor.h>

#include <array>
#include <cstdint>

namespace reel::models {

// Token grid of one video: frames, rows, columns (after patching).
struct TokenGrid {
  int64_t f = 0, h = 0, w = 0;
  [[nodiscard]] int64_t tokens() const { return f * h * w; }
};

// cos and sin tables for every token of `grid` (tokens ordered f, h, w with w fastest), each
// [S, head_dim/2] in float32, computed in float64. Pair i of a head rotates by the angle of the
// axis that owns it: the first axes[0]/2 pairs by frame index, the next axes[1]/2 by row, the
// rest by column, with frequency theta^(-2j/axis_dim) within an axis.
struct RopeTables {
  at::Tensor cos;  // [S, d/2]
  at::Tensor sin;  // [S, d/2]
};
[[nodiscard]] RopeTables rope_tables(const TokenGrid& grid, const std::array<int64_t, 3>& axes, double theta);

// Rotates consecutive pairs (x[2i], x[2i+1]) of the last dimension.
// x: [B, S, N, d]; cos/sin: [S, d/2] (rows for the tokens of x).
[[nodiscard]] at::Tensor rope_apply(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);

// [cos(t * 10000^(-i/half)), sin(...)] for i < half = dim/2, computed in float64 and returned as
// float32. t: any shape; result: t.shape + [dim].
[[nodiscard]] at::Tensor timestep_embedding(const at::Tensor& t, int64_t dim);

}  // namespace reel::models
