#include "models/rope.hpp"

#include <torch/torch.h>

namespace reel::models {

namespace {

// Angles [positions, axis_dim/2] of one axis, float64.
at::Tensor axis_angles(int64_t positions, int64_t axis_dim, double theta) {
  auto opts = torch::TensorOptions().dtype(torch::kFloat64);
  auto pos = torch::arange(positions, opts);                                        // [P]
  auto inv = torch::pow(theta, -torch::arange(0, axis_dim, 2, opts) / static_cast<double>(axis_dim));  // [a/2]
  return torch::outer(pos, inv);                                                     // [P, a/2]
}

}  // namespace

RopeTables rope_tables(const TokenGrid& grid, const std::array<int64_t, 3>& axes, double theta) {
  auto af = axis_angles(grid.f, axes[0], theta);  // [f, a0/2]
  auto ah = axis_angles(grid.h, axes[1], theta);  // [h, a1/2]
  auto aw = axis_angles(grid.w, axes[2], theta);  // [w, a2/2]
  auto angles = torch::cat({af.view({grid.f, 1, 1, -1}).expand({grid.f, grid.h, grid.w, af.size(1)}),
                            ah.view({1, grid.h, 1, -1}).expand({grid.f, grid.h, grid.w, ah.size(1)}),
                            aw.view({1, 1, grid.w, -1}).expand({grid.f, grid.h, grid.w, aw.size(1)})},
                           -1)
                    .reshape({grid.tokens(), -1});  // [S, d/2]
  return {torch::cos(angles).to(torch::kFloat32), torch::sin(angles).to(torch::kFloat32)};
}

at::Tensor rope_apply(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  auto sizes = x.sizes().vec();
  auto pairs = x.reshape({sizes[0], sizes[1], sizes[2], -1, 2});  // [B, S, N, d/2, 2]
  auto xe = pairs.select(-1, 0);
  auto xo = pairs.select(-1, 1);
  auto c = cos.view({1, cos.size(0), 1, cos.size(1)});  // [1, S, 1, d/2]
  auto s = sin.view({1, sin.size(0), 1, sin.size(1)});
  return torch::stack({xe * c - xo * s, xe * s + xo * c}, -1).reshape(sizes);
}

at::Tensor timestep_embedding(const at::Tensor& t, int64_t dim) {
  const int64_t half = dim / 2;
  auto opts = torch::TensorOptions().dtype(torch::kFloat64).device(t.device());
  auto freqs = torch::pow(10000.0, -torch::arange(half, opts) / static_cast<double>(half));  // [half]
  auto angles = t.to(torch::kFloat64).unsqueeze(-1) * freqs;                                 // [..., half]
  return torch::cat({torch::cos(angles), torch::sin(angles)}, -1).to(torch::kFloat32);
}

}  // namespace reel::models
