// The video diffusion transformer: Wan 2.1's block structure with the timestep given per frame.
//
// Parameter names are diffusers' (WanTransformer3DModel): checkpoints in that naming load
// directly, and Wan's original naming is renamed on load (see load_dit_weights).
//
// The forward pass is three calls so that distributed plans can split it: `embed` (patchify,
// timestep and text embeddings), `run_blocks(first, last, ...)` and `head` (modulated
// projection and unpatchify). `forward` is the three in a row.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "base/expected.hpp"
#include "models/dit_config.hpp"
#include "models/rope.hpp"

namespace reel::models {

// How PipeFusion substitutes stale K/V: in the self-attention of block `layer`, after q/k norm
// and RoPE, the hook sees the k and v of the tokens being computed ([B, S_run, N, d], starting
// at `token_begin` of the full sequence) and may replace them with longer ones, e.g. a
// full-sequence buffer in which tokens outside this patch are one step stale.
class AttentionHook {
 public:
  virtual ~AttentionHook() = default;
  virtual void self_attention_kv(int64_t layer, int64_t token_begin, at::Tensor& k, at::Tensor& v) = 0;
  // The same for tokens that are not one contiguous run (DiTState::token_index): k and v hold
  // the tokens at positions token_index [S_run] of the full sequence, in that order. The
  // default refuses (throws c10::Error): a hook that handles only contiguous runs need not
  // implement it.
  virtual void self_attention_kv_at(int64_t layer, const at::Tensor& token_index, at::Tensor& k, at::Tensor& v);
};

// What `embed` produces and the blocks consume.
struct DiTState {
  at::Tensor tokens;     // [B, S_run, D] residual stream; S_run = all tokens or a patch of them
  int64_t token_begin = 0;  // offset of tokens[:, 0] in the full sequence
  // Positions of the tokens in the full sequence, [S_run] int64, increasing, for a patch that is
  // not one contiguous run (e.g. the same rows of every frame); token_begin is then unused.
  // Undefined (the default) means the contiguous run starting at token_begin.
  at::Tensor token_index;
  at::Tensor time_emb;   // [B, Ft, D] per token-frame time embedding (head modulation)
  at::Tensor time_mod;   // [B, Ft, 6, D] per token-frame block modulation
  at::Tensor context;    // [B, text_len, D] embedded text
  TokenGrid grid;        // full token grid (frames, rows, columns after patching)
  at::Tensor rope_cos;   // [S, d/2] for the full grid
  at::Tensor rope_sin;   // [S, d/2]
  // Optional, per block: cross-attention keys and values of `context`, each [B, N, text_len, d],
  // which depend on the text only and so can be computed once per request (cache_cross_kv).
  // Empty (the default): run_blocks computes them from context in every call.
  std::vector<at::Tensor> cross_k, cross_v;
};

// RMSNorm with a learned scale, named as diffusers names it ("weight").
class RMSNormImpl : public torch::nn::Module {
 public:
  RMSNormImpl(int64_t dim, double eps);
  at::Tensor forward(const at::Tensor& x);
  at::Tensor weight;

 private:
  double eps_;
};
TORCH_MODULE(RMSNorm);

// Attention with q/k RMSNorm across heads; attn1 (self, with RoPE) and attn2 (cross, to text).
class WanAttentionImpl : public torch::nn::Module {
 public:
  WanAttentionImpl(const DiTConfig& cfg);
  torch::nn::Linear to_q{nullptr}, to_k{nullptr}, to_v{nullptr};
  torch::nn::ModuleList to_out{nullptr};  // [0]: output projection
  RMSNorm norm_q{nullptr}, norm_k{nullptr};
  int64_t heads = 1;
};
TORCH_MODULE(WanAttention);

// Two linear layers with an activation between (diffusers' TimestepEmbedding and
// PixArtAlphaTextProjection both name them linear_1 and linear_2).
class TwoLayerMlpImpl : public torch::nn::Module {
 public:
  TwoLayerMlpImpl(int64_t in, int64_t hidden, int64_t out);
  torch::nn::Linear linear_1{nullptr}, linear_2{nullptr};
};
TORCH_MODULE(TwoLayerMlp);

// Timestep and text embeddings ("condition_embedder" in diffusers).
class ConditionEmbedderImpl : public torch::nn::Module {
 public:
  explicit ConditionEmbedderImpl(const DiTConfig& cfg);
  TwoLayerMlp time_embedder{nullptr};  // freq_dim -> D, SiLU
  torch::nn::Linear time_proj{nullptr};  // D -> 6 D, after SiLU
  TwoLayerMlp text_embedder{nullptr};  // text_dim -> D, GELU-tanh
  // text_time models only (else null): the mean embedded text row, D -> D, and the frame
  // index's sinusoid, freq_dim -> D, both added to time_embedder's hidden layer.
  torch::nn::Linear text_pool{nullptr}, frame_embedder{nullptr};
};
TORCH_MODULE(ConditionEmbedder);

// GELU-tanh feed-forward, named net.0.proj and net.2 as diffusers' FeedForward.
class FeedForwardImpl : public torch::nn::Module {
 public:
  FeedForwardImpl(int64_t dim, int64_t hidden);
  at::Tensor forward(const at::Tensor& x);
  torch::nn::Linear proj_in{nullptr}, proj_out{nullptr};
};
TORCH_MODULE(FeedForward);

class WanBlockImpl : public torch::nn::Module {
 public:
  explicit WanBlockImpl(const DiTConfig& cfg);
  WanAttention attn1{nullptr}, attn2{nullptr};
  torch::nn::LayerNorm norm2{nullptr};  // affine pre-norm of cross-attention (Wan's norm3)
  FeedForward ffn{nullptr};
  at::Tensor scale_shift_table;  // [1, 6, D]: shift, scale, gate (attn), shift, scale, gate (ffn)
};
TORCH_MODULE(WanBlock);

class VideoDiTImpl : public torch::nn::Module {
 public:
  explicit VideoDiTImpl(DiTConfig cfg);

  [[nodiscard]] const DiTConfig& config() const { return cfg_; }

  // x: [B, C_in, F, H, W] latents (F, H, W divisible by the patch); t: timesteps in [0, 1000],
  // [B, F] per latent frame or [B] for all frames; text: [B, L, text_dim] with L <= text_len
  // (zero-padded to text_len, as Wan does: padded rows are attended).
  DiTState embed(const at::Tensor& x, const at::Tensor& t, const at::Tensor& text);

  // The parts of `embed`, for plans that embed a patch of the latent at a time (PipeFusion).
  // Patch tokens (stem and patch embedding) of a box of whole patches of the latent,
  // x [B, C_in, F', H', W'] -> [B, F'/pt * H'/ph * W'/pw, D] ordered (frame, row, column). The
  // stem is a per-frame 3x3 convolution, so a run of whole frames embeds exactly; a box of rows
  // embeds exactly when x carries `rows_above` and `rows_below` extra latent rows (1 each where
  // the box does not touch the frame's edge and the model has a stem), which only the stem sees.
  at::Tensor patchify(const at::Tensor& x, int64_t rows_above = 0, int64_t rows_below = 0);
  // Fills state.time_emb and state.time_mod from timesteps t ([B], or [B, F] per latent frame of
  // a latent with `latent_frames` frames); state.grid must be set, and state.context too for
  // text_time models.
  void embed_time(DiTState& state, const at::Tensor& t, int64_t batch, int64_t latent_frames);
  // The embedded text [B, text_len, D] of text [B, L, text_dim], zero-padded to text_len.
  at::Tensor embed_text(const at::Tensor& text);
  // Fills state.cross_k and state.cross_v from state.context for every block.
  void cache_cross_kv(DiTState& state);
  // Inverse of the patchify layout for head_tokens output of a box of `box` token frames, rows
  // and columns: [B, S_box, patch_volume * C_out] -> [B, C_out, F', H', W'] (no refinement).
  at::Tensor unpatchify(const at::Tensor& out_tokens, const TokenGrid& box);

  // Runs blocks [first, last) on state.tokens in place. `hook` may be null. With
  // config().abs_pos, a run that starts at block 0 first adds the position embedding of the
  // tokens it holds (all of them, token_begin onwards, or token_index), so every plan (whole
  // sequence, PipeFusion patches, FIFO windows, clips) embeds positions the same way.
  void run_blocks(int64_t first, int64_t last, DiTState& state, AttentionHook* hook = nullptr);

  // Modulated output projection of state.tokens: [B, S_run, patch_volume * C_out].
  at::Tensor head_tokens(const DiTState& state);
  // head_tokens of the full sequence, unpatchified and refined: [B, C_out, F, H, W].
  at::Tensor head(const DiTState& state);

  // The output refinement (identity when the config has none) on unpatchified output
  // [B, C_out, F', H, W] of any run of whole frames.
  at::Tensor refine(const at::Tensor& y);

  // embed + all blocks + head.
  at::Tensor forward(const at::Tensor& x, const at::Tensor& t, const at::Tensor& text);

  // The fixed position embedding of every token of `grid`, [S, D] float32 (abs_pos models).
  [[nodiscard]] at::Tensor position_embedding(const TokenGrid& grid) const;

  // Multiply-accumulates of one forward pass for a latent of `frames` x `height` x `width`
  // (batch 1), counting matrix products and attention; for GFLOP/s figures.
  [[nodiscard]] double forward_flops(int64_t frames, int64_t height, int64_t width) const;

  torch::nn::Conv3d stem{nullptr};         // optional (cfg.stem_channels)
  torch::nn::Conv3d patch_embedding{nullptr};
  torch::nn::Conv3d refine_in{nullptr};    // optional (cfg.refine_channels)
  torch::nn::Conv3d refine_out{nullptr};
  ConditionEmbedder condition_embedder{nullptr};
  torch::nn::ModuleList blocks{nullptr};
  torch::nn::Linear proj_out{nullptr};
  at::Tensor scale_shift_table;  // [1, 2, D]: shift, scale of the head

 private:
  at::Tensor self_attention(WanBlockImpl& block, int64_t layer, const at::Tensor& x, const DiTState& state,
                            AttentionHook* hook);
  at::Tensor cross_attention(WanBlockImpl& block, int64_t layer, const at::Tensor& x, const DiTState& state);
  std::pair<at::Tensor, at::Tensor> cross_kv(WanBlockImpl& block, const at::Tensor& context);

  DiTConfig cfg_;
};
TORCH_MODULE(VideoDiT);

// Maps a parameter name of Wan's original naming to diffusers' (names already in diffusers'
// naming are returned unchanged).
[[nodiscard]] std::string diffusers_dit_name(const std::string& name);

// Builds a VideoDiT from a safetensors file in either naming: detects the config, checks that
// every parameter is present with the right shape and that no tensor is left over, and copies
// the weights (converted to float32). Errors name the file and the offending tensor.
[[nodiscard]] Expected<VideoDiT> load_dit(const std::string& path);
// The same from an open file; tensors whose names start with one of `ignore_prefixes` belong to
// other models in the same file (text encoder, autoencoder) and are skipped.
[[nodiscard]] Expected<VideoDiT> load_dit(const SafeTensors& file, const std::vector<std::string>& ignore_prefixes = {});

// Saves weights in diffusers naming with the config in the metadata.
[[nodiscard]] Status save_dit(VideoDiT& model, const std::string& path,
                              const std::map<std::string, std::string>& extra_metadata = {});

}  // namespace reel::models
