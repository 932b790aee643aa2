// VideoDiT behaviour that the golden vectors do not pin: RoPE and timestep embedding values,
// per-frame timesteps, and the embed / run_blocks / head split.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <unistd.h>

#include "models/dit.hpp"
#include "models/safetensors.hpp"
#include "tests/models/small_dit.hpp"

namespace reel::models {
namespace {

struct Inputs {
  at::Tensor x, text;
};
Inputs inputs(const DiTConfig& cfg, int64_t batch, int64_t frames) {
  torch::manual_seed(3);
  return {torch::randn({batch, cfg.in_channels, frames, 8, 8}), torch::randn({batch, 5, cfg.text_dim})};
}

TEST(TimestepEmbedding, MatchesHandComputedCosinesAndSines) {
  auto e = timestep_embedding(torch::tensor({750.0}), 8);  // half = 4, freqs 10000^(-i/4)
  ASSERT_EQ(e.sizes(), (std::vector<int64_t>{1, 8}));
  for (int i = 0; i < 4; ++i) {
    double angle = 750.0 * std::pow(10000.0, -i / 4.0);
    EXPECT_NEAR(e[0][i].item<float>(), std::cos(angle), 1e-6);
    EXPECT_NEAR(e[0][4 + i].item<float>(), std::sin(angle), 1e-6);
  }
}

TEST(Rope, TablesGiveEachAxisItsOwnPairsAndFrequencies) {
  // head dim 32: axes 12/10/10 -> 6 pairs by frame, 5 by row, 5 by column.
  TokenGrid grid{2, 3, 4};
  auto tables = rope_tables(grid, {12, 10, 10}, 10000.0);
  ASSERT_EQ(tables.cos.sizes(), (std::vector<int64_t>{24, 16}));
  const int64_t f = 1, h = 2, w = 3;
  const int64_t token = f * 12 + h * 4 + w;
  auto angle = [&](int64_t pos, int64_t j, int64_t axis_dim) { return pos * std::pow(10000.0, -2.0 * j / axis_dim); };
  for (int64_t j = 0; j < 6; ++j) EXPECT_NEAR(tables.cos[token][j].item<float>(), std::cos(angle(f, j, 12)), 1e-6);
  for (int64_t j = 0; j < 5; ++j) EXPECT_NEAR(tables.sin[token][6 + j].item<float>(), std::sin(angle(h, j, 10)), 1e-6);
  for (int64_t j = 0; j < 5; ++j) EXPECT_NEAR(tables.cos[token][11 + j].item<float>(), std::cos(angle(w, j, 10)), 1e-6);
}

TEST(Rope, RotatesConsecutivePairsAndKeepsNorms) {
  auto x = torch::zeros({1, 1, 1, 4});
  x[0][0][0][0] = 1.0;  // pair 0 = (1, 0)
  x[0][0][0][3] = 2.0;  // pair 1 = (0, 2)
  auto cos = torch::tensor({{std::cos(0.5f), std::cos(1.0f)}});
  auto sin = torch::tensor({{std::sin(0.5f), std::sin(1.0f)}});
  auto y = rope_apply(x, cos, sin)[0][0][0];
  EXPECT_NEAR(y[0].item<float>(), std::cos(0.5f), 1e-6);
  EXPECT_NEAR(y[1].item<float>(), std::sin(0.5f), 1e-6);
  EXPECT_NEAR(y[2].item<float>(), -2 * std::sin(1.0f), 1e-6);
  EXPECT_NEAR(y[3].item<float>(), 2 * std::cos(1.0f), 1e-6);
}

TEST(VideoDiT, PerFrameTimestepsThatAgreeEqualTheScalarTimestep) {
  torch::NoGradGuard no_grad;
  auto cfg = testing::small_dit_config(3, false);
  torch::manual_seed(1);
  VideoDiT model(cfg);
  auto in = inputs(cfg, 2, 3);
  auto scalar = model->forward(in.x, torch::tensor({600.0, 200.0}), in.text);
  auto per_frame = model->forward(in.x, torch::tensor({{600.0, 600.0, 600.0}, {200.0, 200.0, 200.0}}), in.text);
  EXPECT_TRUE(torch::equal(scalar, per_frame));
}

TEST(VideoDiT, EachFrameIsModulatedByItsOwnTimestep) {
  torch::NoGradGuard no_grad;
  auto cfg = testing::small_dit_config(3, false);
  cfg.num_layers = 0;  // with no attention between frames, frame i depends only on t[i]
  torch::manual_seed(1);
  VideoDiT model(cfg);
  auto in = inputs(cfg, 1, 3);
  auto a = model->forward(in.x, torch::tensor({{100.0, 500.0, 900.0}}), in.text);
  auto b = model->forward(in.x, torch::tensor({{100.0, 700.0, 900.0}}), in.text);
  EXPECT_TRUE(torch::equal(a.select(2, 0), b.select(2, 0)));
  EXPECT_FALSE(torch::allclose(a.select(2, 1), b.select(2, 1)));
  EXPECT_TRUE(torch::equal(a.select(2, 2), b.select(2, 2)));
}

TEST(VideoDiT, RunningBlocksInTwoRangesEqualsRunningThemAtOnce) {
  torch::NoGradGuard no_grad;
  auto cfg = testing::small_dit_config(3, false);
  torch::manual_seed(1);
  VideoDiT model(cfg);
  auto in = inputs(cfg, 1, 2);
  auto t = torch::tensor({{300.0, 800.0}});
  auto whole = model->embed(in.x, t, in.text);
  model->run_blocks(0, 3, whole);
  for (int64_t k = 0; k <= 3; ++k) {
    auto split = model->embed(in.x, t, in.text);
    model->run_blocks(0, k, split);
    model->run_blocks(k, 3, split);
    EXPECT_TRUE(torch::equal(whole.tokens, split.tokens)) << "split at " << k;
  }
  EXPECT_TRUE(torch::equal(model->head(whole), model->forward(in.x, t, in.text)));
}

// A hook that hands attention the full-sequence K/V computed in an earlier full pass: running
// the blocks patch by patch then reproduces the full pass (PipeFusion with nothing stale).
class FullSequenceKV : public AttentionHook {
 public:
  bool record = true;
  std::map<int64_t, std::pair<at::Tensor, at::Tensor>> kv;
  void self_attention_kv(int64_t layer, int64_t token_begin, at::Tensor& k, at::Tensor& v) override {
    if (record) {
      kv[layer] = {k, v};
      return;
    }
    auto [fk, fv] = kv.at(layer);
    fk = fk.clone();
    fv = fv.clone();
    fk.slice(1, token_begin, token_begin + k.size(1)).copy_(k);
    fv.slice(1, token_begin, token_begin + v.size(1)).copy_(v);
    k = fk;
    v = fv;
  }
};

TEST(VideoDiT, APatchWithFullSequenceKeysAndValuesMatchesTheFullPass) {
  torch::NoGradGuard no_grad;
  auto cfg = testing::small_dit_config(3, false);
  cfg.num_layers = 1;
  torch::manual_seed(1);
  VideoDiT model(cfg);
  auto in = inputs(cfg, 1, 2);  // 2 x 4 x 4 = 32 tokens
  auto t = torch::tensor({{300.0, 800.0}});
  FullSequenceKV hook;
  auto full = model->embed(in.x, t, in.text);
  auto all_tokens = full.tokens;
  model->run_blocks(0, 1, full, &hook);
  hook.record = false;
  // Patches that do not align with frames (10 tokens) take the per-token modulation path.
  for (int64_t begin : {0, 10, 20}) {
    auto patch = model->embed(in.x, t, in.text);
    int64_t end = std::min<int64_t>(begin + 10, 32);
    patch.tokens = all_tokens.slice(1, begin, end);
    patch.token_begin = begin;
    model->run_blocks(0, 1, patch, &hook);
    EXPECT_TRUE(torch::allclose(patch.tokens, full.tokens.slice(1, begin, end), 1e-5, 1e-6)) << "patch at " << begin;
  }
}

TEST(VideoDiT, SaveThenLoadGivesTheSameOutputs) {
  torch::NoGradGuard no_grad;
  auto cfg = testing::small_dit_config(3, false);
  torch::manual_seed(1);
  VideoDiT model(cfg);
  auto path = (std::filesystem::temp_directory_path() / ("reel_dit_" + std::to_string(::getpid()) + ".safetensors")).string();
  ASSERT_TRUE(save_dit(model, path).ok());
  auto loaded = load_dit(path);
  std::filesystem::remove(path);
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  EXPECT_EQ((*loaded)->config().num_heads, 2);
  EXPECT_EQ((*loaded)->config().text_len, 8);
  auto in = inputs(cfg, 1, 2);
  auto t = torch::tensor({400.0});
  EXPECT_TRUE(torch::equal(model->forward(in.x, t, in.text), (*loaded)->forward(in.x, t, in.text)));
}

TEST(VideoDiT, AbsolutePositionsAreOneSinusoidPerAxisAndSurviveSaveAndLoad) {
  torch::NoGradGuard no_grad;
  auto cfg = testing::small_dit_config(2, false);
  cfg.abs_pos = true;
  torch::manual_seed(1);
  VideoDiT model(cfg);
  auto pos = model->position_embedding({3, 2, 4});
  ASSERT_EQ(pos.sizes(), (std::vector<int64_t>{24, 48}));
  // Frame axis first (48 - 4 * 8 = 16 wide): tokens of one frame share it, frames differ.
  EXPECT_TRUE(torch::equal(pos[0].narrow(0, 0, 16), pos[7].narrow(0, 0, 16)));
  EXPECT_FALSE(torch::equal(pos[0].narrow(0, 0, 16), pos[8].narrow(0, 0, 16)));
  EXPECT_TRUE(torch::equal(pos[1].narrow(0, 16, 16), pos[9].narrow(0, 16, 16)));  // same row, next frame
  EXPECT_NEAR(pos[0][8].item<float>(), 1.0f, 1e-6);  // cos(0) in the frame axis' second half

  auto path = (std::filesystem::temp_directory_path() / ("reel_abspos_" + std::to_string(::getpid()) + ".safetensors")).string();
  ASSERT_TRUE(save_dit(model, path).ok());
  auto loaded = load_dit(path);
  std::filesystem::remove(path);
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  EXPECT_TRUE((*loaded)->config().abs_pos);
  auto in = inputs(cfg, 1, 2);
  auto t = torch::tensor({400.0});
  EXPECT_TRUE(torch::equal(model->forward(in.x, t, in.text), (*loaded)->forward(in.x, t, in.text)));
}

// text_time: each frame's modulation depends on the prompt and on the frame's place in the
// window, not on the timestep alone; the weights that carry it are found again on load.
TEST(VideoDiT, TextTimeModulatesEachFrameByPromptAndFrameIndexAndSurvivesSaveAndLoad) {
  torch::NoGradGuard no_grad;
  auto cfg = testing::small_dit_config(2, false);
  auto in = inputs(cfg, 2, 3);
  auto t = torch::tensor({400.0, 400.0});  // one level for every frame
  auto other_text = in.text.clone();
  other_text[0] = torch::randn_like(other_text[0]);

  torch::manual_seed(1);
  VideoDiT plain(cfg);
  auto p = plain->embed(in.x, t, in.text);
  EXPECT_TRUE(torch::allclose(p.time_mod.select(1, 0), p.time_mod.select(1, 2)));  // frames alike
  EXPECT_TRUE(torch::equal(p.time_mod, plain->embed(in.x, t, other_text).time_mod));  // prompt unseen

  cfg.text_time = true;
  torch::manual_seed(1);
  VideoDiT model(cfg);
  auto s = model->embed(in.x, t, in.text);
  ASSERT_EQ(s.time_mod.sizes(), p.time_mod.sizes());
  EXPECT_FALSE(torch::allclose(s.time_mod.select(1, 0), s.time_mod.select(1, 2)));
  auto changed = model->embed(in.x, t, other_text).time_mod;
  EXPECT_FALSE(torch::allclose(changed[0], s.time_mod[0]));  // the changed prompt's sample moves
  EXPECT_TRUE(torch::equal(changed[1], s.time_mod[1]));      // the other sample does not

  auto path = (std::filesystem::temp_directory_path() / ("reel_texttime_" + std::to_string(::getpid()) + ".safetensors")).string();
  ASSERT_TRUE(save_dit(model, path).ok());
  auto loaded = load_dit(path);
  std::filesystem::remove(path);
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  EXPECT_TRUE((*loaded)->config().text_time);
  EXPECT_TRUE(torch::equal(model->forward(in.x, t, in.text), (*loaded)->forward(in.x, t, in.text)));

  // One of the two tensors without the other is a damaged file, not a different model.
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const auto& kv : model->named_parameters())
    if (kv.key().find("frame_embedder") == std::string::npos) tensors.emplace_back(kv.key(), kv.value());
  ASSERT_TRUE(save_safetensors(path, tensors, cfg.to_metadata()).ok());
  auto broken = load_dit(path);
  std::filesystem::remove(path);
  ASSERT_FALSE(broken.ok());
  EXPECT_NE(broken.error().message.find("frame_embedder"), std::string::npos) << broken.error().message;
}

TEST(VideoDiT, LoadingAFileThatIsNotADiTNamesTheMissingTensor) {
  auto path = (std::filesystem::temp_directory_path() / ("reel_notdit_" + std::to_string(::getpid()) + ".safetensors")).string();
  ASSERT_TRUE(save_safetensors(path, {{"foo", torch::ones({2})}}).ok());
  auto loaded = load_dit(path);
  std::filesystem::remove(path);
  ASSERT_FALSE(loaded.ok());
  EXPECT_NE(loaded.error().message.find("patch_embedding.weight"), std::string::npos) << loaded.error().message;
}

TEST(VideoDiT, LoadingADiTFileWithoutBlocksIsRefused) {
  auto cfg = testing::small_dit_config(3, false);
  cfg.num_layers = 0;  // fine in code, but no checkpoint has no blocks
  VideoDiT model(cfg);
  auto path = (std::filesystem::temp_directory_path() / ("reel_noblocks_" + std::to_string(::getpid()) + ".safetensors")).string();
  ASSERT_TRUE(save_dit(model, path).ok());
  auto loaded = load_dit(path);
  std::filesystem::remove(path);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.error().code, Errc::corrupt_data);
  EXPECT_NE(loaded.error().message.find("'blocks.0."), std::string::npos) << loaded.error().message;
}

TEST(DiffusersNames, MapWanOriginalNamesOntoDiffusersNames) {
  EXPECT_EQ(diffusers_dit_name("blocks.3.self_attn.o.weight"), "blocks.3.attn1.to_out.0.weight");
  EXPECT_EQ(diffusers_dit_name("blocks.0.cross_attn.norm_k.weight"), "blocks.0.attn2.norm_k.weight");
  EXPECT_EQ(diffusers_dit_name("blocks.1.norm3.bias"), "blocks.1.norm2.bias");
  EXPECT_EQ(diffusers_dit_name("blocks.1.ffn.2.weight"), "blocks.1.ffn.net.2.weight");
  EXPECT_EQ(diffusers_dit_name("blocks.1.modulation"), "blocks.1.scale_shift_table");
  EXPECT_EQ(diffusers_dit_name("head.modulation"), "scale_shift_table");
  EXPECT_EQ(diffusers_dit_name("head.head.weight"), "proj_out.weight");
  EXPECT_EQ(diffusers_dit_name("time_projection.1.bias"), "condition_embedder.time_proj.bias");
  EXPECT_EQ(diffusers_dit_name("blocks.0.attn1.to_q.weight"), "blocks.0.attn1.to_q.weight");
}

}  // namespace
}  // namespace reel::models
