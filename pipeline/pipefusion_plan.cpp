// PipeFusion plans: parsing, validation, and the stage (block) and patch (token) ranges.
#include <torch/torch.h>

#include <string>

#include "pipeline/pipefusion.hpp"

namespace reel::pipeline {

namespace {

Error plan_error(const std::string& message) {
  return make_error(Errc::invalid_argument, "PipeFusion plan: " + message);
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// [begin, end) of part i when n items are cut into k parts whose sizes differ by at most one,
// the larger ones first.
std::pair<int64_t, int64_t> balanced_part(int64_t n, int64_t k, int64_t i) {
  const int64_t base = n / k, extra = n % k;
  const int64_t begin = i * base + std::min(i, extra);
  return {begin, begin + base + (i < extra ? 1 : 0)};
}

}  // namespace

Expected<PatchSplit> parse_patch_split(std::string_view name) {
  if (name == "frames") return PatchSplit::frames;
  if (name == "rows") return PatchSplit::rows;
  return make_error(Errc::invalid_argument, "unknown patch split '" + std::string(name) + "' (expected frames or rows)");
}

const char* patch_split_name(PatchSplit split) {
  switch (split) {
    case PatchSplit::frames: return "frames";
    case PatchSplit::rows: return "rows";
  }
  return "unknown";
}

Expected<std::vector<BlockRange>> stage_block_ranges(int64_t blocks, int stages) {
  if (stages < 1) return plan_error("stages must be at least 1, got " + std::to_string(stages));
  if (stages > blocks) {
    return plan_error(std::to_string(stages) + " stages for a model of " + std::to_string(blocks) +
                      " blocks: each stage needs at least one block");
  }
  std::vector<BlockRange> out;
  for (int i = 0; i < stages; ++i) {
    auto [first, last] = balanced_part(blocks, stages, i);
    out.push_back({first, last});
  }
  return out;
}

Expected<std::vector<PatchRange>> patch_ranges(const models::TokenGrid& grid, const std::array<int64_t, 3>& patch,
                                               PatchSplit split, int patches) {
  if (patches < 1) return plan_error("patches must be at least 1, got " + std::to_string(patches));
  if (grid.tokens() <= 0) return plan_error("the token grid is empty");
  const int64_t frame_tokens = grid.h * grid.w;
  int64_t extent = 0;
  switch (split) {
    case PatchSplit::frames:
      extent = grid.f;
      if (patches > extent) {
        return plan_error(std::to_string(patches) + " patches of whole frames, but the latent has only " +
                          std::to_string(extent) + " token frames (use at most " + std::to_string(extent) +
                          " patches, or split by rows)");
      }
      break;
    case PatchSplit::rows:
      extent = grid.h;
      if (patches > extent) {
        return plan_error(std::to_string(patches) + " patches of rows, but a frame has only " +
                          std::to_string(extent) + " token rows (use at most " + std::to_string(extent) +
                          " patches)");
      }
      break;
  }
  std::vector<PatchRange> out;
  for (int i = 0; i < patches; ++i) {
    PatchRange p;
    std::tie(p.begin, p.end) = balanced_part(extent, patches, i);
    switch (split) {
      case PatchSplit::frames:
        p.box = {p.end - p.begin, grid.h, grid.w};
        p.contiguous = true;
        p.token_begin = p.begin * frame_tokens;
        p.token_index = torch::arange(p.token_begin, p.token_begin + p.box.tokens(), torch::kLong);
        p.latent_dim = 2;
        p.latent_begin = p.begin * patch[0];
        p.latent_end = p.end * patch[0];
        break;
      case PatchSplit::rows: {
        p.box = {grid.f, p.end - p.begin, grid.w};
        // Rows [begin, end) of frame f are tokens f*h*w + [begin*w, end*w).
        auto frame_starts = torch::arange(grid.f, torch::kLong).mul_(frame_tokens).unsqueeze(1);  // [F, 1]
        auto in_frame = torch::arange(p.begin * grid.w, p.end * grid.w, torch::kLong).unsqueeze(0);  // [1, r*w]
        p.token_index = (frame_starts + in_frame).flatten();
        p.contiguous = grid.f == 1 || patches == 1;
        p.token_begin = p.begin * grid.w;
        p.latent_dim = 3;
        p.latent_begin = p.begin * patch[1];
        p.latent_end = p.end * patch[1];
        break;
      }
    }
    p.tokens = p.box.tokens();
    out.push_back(std::move(p));
  }
  return out;
}

Status validate_plan(const PipeFusionPlan& plan, const models::DiTConfig& cfg, const std::vector<int64_t>& shape) {
  bool shape_ok = shape.size() == 5;
  for (int64_t d : shape) shape_ok = shape_ok && d > 0;
  if (!shape_ok) return plan_error("latent shape must be [B, C, F, H, W] with positive sizes, got " + shape_str(shape));
  if (shape[1] != cfg.in_channels) {
    return plan_error("latent shape " + shape_str(shape) + " has " + std::to_string(shape[1]) +
                      " channels, the model takes " + std::to_string(cfg.in_channels));
  }
  if (cfg.in_channels != cfg.out_channels) {
    return plan_error("the model's output channels (" + std::to_string(cfg.out_channels) +
                      ") differ from its input channels (" + std::to_string(cfg.in_channels) + ")");
  }
  for (int i = 0; i < 3; ++i) {
    if (shape[static_cast<size_t>(i) + 2] % cfg.patch[static_cast<size_t>(i)] != 0) {
      return plan_error("latent shape " + shape_str(shape) + " is not divisible by the model's patch " +
                        std::to_string(cfg.patch[0]) + "x" + std::to_string(cfg.patch[1]) + "x" +
                        std::to_string(cfg.patch[2]));
    }
  }
  if (plan.warmup_steps < 0) {
    return plan_error("warm-up steps must be at least 0, got " + std::to_string(plan.warmup_steps));
  }
  REEL_RETURN_IF_ERROR(stage_block_ranges(cfg.num_layers, plan.stages));
  const models::TokenGrid grid{shape[2] / cfg.patch[0], shape[3] / cfg.patch[1], shape[4] / cfg.patch[2]};
  REEL_RETURN_IF_ERROR(patch_ranges(grid, cfg.patch, plan.split, plan.patches));
  return {};
}

Expected<PipeFusionLayout> make_layout(const PipeFusionPlan& plan, const models::DiTConfig& cfg,
                                       const std::vector<int64_t>& shape) {
  REEL_RETURN_IF_ERROR(validate_plan(plan, cfg, shape));
  PipeFusionLayout layout;
  layout.latent_shape = shape;
  layout.grid = {shape[2] / cfg.patch[0], shape[3] / cfg.patch[1], shape[4] / cfg.patch[2]};
  layout.split = plan.split;
  layout.warmup_steps = plan.warmup_steps;
  auto stages = stage_block_ranges(cfg.num_layers, plan.stages);
  if (!stages) return stages.error();
  layout.stages = std::move(*stages);
  auto patches = patch_ranges(layout.grid, cfg.patch, plan.split, plan.patches);
  if (!patches) return patches.error();
  layout.patches = std::move(*patches);
  return layout;
}

}  // namespace reel::pipeline
