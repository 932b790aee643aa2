// VideoDiT against outputs of the public Wan 2.1 / 2.2 code on tiny random weights.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "models/dit.hpp"
#include "tests/models/golden.hpp"

namespace reel::models {
namespace {

using reel::testing::deviation;
using reel::testing::golden_tensor;
using reel::testing::open_golden;

// README tolerances for both DiT folders.
constexpr double kRel = 1e-5;
constexpr double kMaxAbs = 2e-5;

VideoDiT load(const std::string& relative) {
  auto model = load_dit(reel::testing::golden_dir() + "/" + relative);
  EXPECT_TRUE(model.ok()) << (model.ok() ? "" : model.error().message);
  return *model;
}

void expect_close(const at::Tensor& actual, const at::Tensor& reference, const char* what) {
  auto d = deviation(actual, reference);
  EXPECT_LE(d.rel, kRel) << what;
  EXPECT_LE(d.max_abs, kMaxAbs) << what;
}

class Wan21Golden : public ::testing::TestWithParam<const char*> {};

TEST_P(Wan21Golden, ReproducesTheReferenceOutputAndIntermediates) {
  REEL_SKIP_WITHOUT_GOLDEN();
  torch::NoGradGuard no_grad;
  auto model = load(std::string("wan21_dit_tiny/") + GetParam());
  const auto& cfg = model->config();
  EXPECT_EQ(cfg.dim, 64);
  EXPECT_EQ(cfg.num_heads, 2);
  EXPECT_EQ(cfg.num_layers, 2);
  EXPECT_EQ(cfg.text_len, 16);
  EXPECT_EQ(cfg.ffn_dim, 128);
  EXPECT_EQ(cfg.rope_axes(), (std::array<int64_t, 3>{12, 10, 10}));

  auto in = open_golden("wan21_dit_tiny/inputs.safetensors");
  auto x = golden_tensor(in, "x").unsqueeze(0);              // [1, 16, 3, 8, 8]
  auto t = golden_tensor(in, "t");                           // [1] = 750
  auto context = golden_tensor(in, "context").unsqueeze(0);  // [1, 10, 32]

  auto mid = open_golden("wan21_dit_tiny/intermediates.safetensors");
  auto st = model->embed(x, t, context);
  expect_close(st.time_emb.select(1, 0), golden_tensor(mid, "time_embedding"), "time_embedding");
  expect_close(st.time_mod.select(1, 0).flatten(1), golden_tensor(mid, "time_projection"), "time_projection");
  expect_close(st.context, golden_tensor(mid, "text_embedding"), "text_embedding");
  expect_close(st.tokens, golden_tensor(mid, "patch_embedding").flatten(2).transpose(1, 2), "patch_embedding");
  model->run_blocks(0, 1, st);
  expect_close(st.tokens, golden_tensor(mid, "blocks.0"), "blocks.0");
  model->run_blocks(1, 2, st);
  expect_close(st.tokens, golden_tensor(mid, "blocks.1"), "blocks.1");
  expect_close(model->head_tokens(st), golden_tensor(mid, "head"), "head");

  auto out = model->forward(x, t, context).squeeze(0);
  expect_close(out, golden_tensor(open_golden("wan21_dit_tiny/output.safetensors"), "out"), "out");
}

TEST_P(Wan21Golden, ReproducesTheBatchOfTwoWithDifferentTimestepsAndTextLengths) {
  REEL_SKIP_WITHOUT_GOLDEN();
  torch::NoGradGuard no_grad;
  auto model = load(std::string("wan21_dit_tiny/") + GetParam());
  auto in = open_golden("wan21_dit_tiny/batch2_inputs.safetensors");
  auto x = torch::stack({golden_tensor(in, "x.0"), golden_tensor(in, "x.1")});
  auto c0 = golden_tensor(in, "context.0");  // 10 rows; Wan zero-pads each context to text_len
  auto c1 = golden_tensor(in, "context.1");  // 16 rows
  c0 = torch::cat({c0, torch::zeros({c1.size(0) - c0.size(0), c0.size(1)})});
  auto out = model->forward(x, golden_tensor(in, "t"), torch::stack({c0, c1}));
  auto ref = open_golden("wan21_dit_tiny/batch2_output.safetensors");
  expect_close(out[0], golden_tensor(ref, "out.0"), "out.0");
  expect_close(out[1], golden_tensor(ref, "out.1"), "out.1");
}

INSTANTIATE_TEST_SUITE_P(BothNamings, Wan21Golden,
                         ::testing::Values("weights_diffusers.safetensors", "weights_original.safetensors"));

// Wan 2.2 gives one timestep per token; within a frame they agree, so they are per-frame
// timesteps [B, F] in our interface.
at::Tensor per_frame(const at::Tensor& per_token, int64_t frames) {
  auto t = per_token.view({per_token.size(0), frames, -1});  // [B, F, tokens per frame]
  EXPECT_TRUE(torch::equal(t, t.select(2, 0).unsqueeze(2).expand_as(t))) << "tokens of a frame disagree";
  return t.select(2, 0).contiguous();
}

TEST(Wan22PerFrameGolden, ReproducesPerFrameTimestepsSingleAndBatched) {
  REEL_SKIP_WITHOUT_GOLDEN();
  torch::NoGradGuard no_grad;
  auto model = load("wan22_dit_tiny_pertoken/weights_diffusers.safetensors");
  auto in = open_golden("wan22_dit_tiny_pertoken/inputs.safetensors");
  auto ref = open_golden("wan22_dit_tiny_pertoken/output.safetensors");
  auto x = golden_tensor(in, "x").unsqueeze(0);
  auto context = golden_tensor(in, "context").unsqueeze(0);
  auto t = per_frame(golden_tensor(in, "t"), 3);
  EXPECT_TRUE(torch::equal(t[0], golden_tensor(in, "frame_t")));

  auto mid = open_golden("wan22_dit_tiny_pertoken/intermediates.safetensors");
  auto st = model->embed(x, t, context);
  auto per_token = [](const at::Tensor& per_frame_values) {  // [1, F, ...] -> [1, F*16, ...]
    return per_frame_values.repeat_interleave(16, 1);
  };
  expect_close(per_token(st.time_emb), golden_tensor(mid, "time_embedding"), "time_embedding");
  expect_close(per_token(st.time_mod.flatten(2)), golden_tensor(mid, "time_projection"), "time_projection");
  model->run_blocks(0, 2, st);
  expect_close(st.tokens, golden_tensor(mid, "blocks.1"), "blocks.1");

  expect_close(model->forward(x, t, context).squeeze(0), golden_tensor(ref, "out"), "out");
  auto uniform = per_frame(golden_tensor(in, "t_uniform750"), 3);
  expect_close(model->forward(x, uniform, context).squeeze(0), golden_tensor(ref, "out_uniform750"), "uniform");

  auto bin = open_golden("wan22_dit_tiny_pertoken/batch2_inputs.safetensors");
  auto bref = open_golden("wan22_dit_tiny_pertoken/batch2_output.safetensors");
  auto c0 = golden_tensor(bin, "context.0");
  auto c1 = golden_tensor(bin, "context.1");
  c0 = torch::cat({c0, torch::zeros({c1.size(0) - c0.size(0), c0.size(1)})});
  auto out = model->forward(torch::stack({golden_tensor(bin, "x.0"), golden_tensor(bin, "x.1")}),
                            per_frame(golden_tensor(bin, "t"), 3), torch::stack({c0, c1}));
  expect_close(out[0], golden_tensor(bref, "out.0"), "batch out.0");
  expect_close(out[1], golden_tensor(bref, "out.1"), "batch out.1");
}

}  // namespace
}  // namespace reel::models
