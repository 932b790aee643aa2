// The umT5 text encoder of Wan 2.1 / 2.2 (T5Encoder in the reference's wan/modules/t5.py, as
// umt5_xxl(encoder_only=True) builds it), and the TextEncoder that puts it behind a
// sentencepiece tokenizer.
//
// T5 differs from the textbook transformer in ways that all change the numbers: no absolute
// positions but a learned bias per head over bucketed relative positions (umT5: one table per
// block, not one shared); RMS norms without mean or bias, computed in float32; attention logits
// not scaled by 1/sqrt(d) (the initialisation absorbs it); a gated GELU-tanh FFN; no biases
// anywhere. Padded keys get the lowest float as their bias, replacing the position bias.
//
// Module and parameter names are the reference's (the names in Wan's
// models_t5_umt5-xxl-enc-bf16.pth). Hugging Face's UMT5EncoderModel names (diffusers' Wan
// text_encoder folders) are renamed on load; see umt5_hf_name.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <string>
#include <vector>

#include "base/expected.hpp"
#include "models/spm_tokenizer.hpp"
#include "models/text_encoder.hpp"

namespace reel::models {

class SafeTensors;

// Defaults are umT5-XXL's, the encoder of every Wan 2.1 / 2.2 text-to-video model.
struct UmT5Config {
  int64_t vocab = 256384;      // rows of token_embedding, padded past the tokenizer's pieces; default 256384
  int64_t dim = 4096;          // residual width, the width of the output rows; default 4096
  int64_t dim_attn = 4096;     // width of q, k, v (num_heads * head dim); default 4096
  int64_t dim_ffn = 10240;     // gated FFN width; default 10240
  int64_t num_heads = 64;      // default 64
  int64_t num_layers = 24;     // default 24
  int64_t num_buckets = 32;    // relative position buckets, half for each direction; default 32
  int64_t max_distance = 128;  // distance where the logarithmic buckets end; default 128
  bool shared_pos = false;     // one position table for all blocks (T5) instead of one per block (umT5); default false
  double eps = 1e-6;           // RMS norm epsilon; default 1e-6
  int64_t text_len = 512;      // tokens per prompt, EOS included; longer prompts are cut (Wan: 512); default 512

  [[nodiscard]] int64_t head_dim() const { return dim_attn / num_heads; }
  // invalid_argument when a size is not positive, dim_attn % num_heads != 0, num_buckets < 4 or
  // odd, or max_distance is not above the exact buckets (num_buckets / 4).
  [[nodiscard]] Status validate() const;
};

// Bucket of each relative position (key minus query), bidirectional, as T5 computes it: distances
// below num_buckets / 4 get a bucket each, larger ones share logarithmically wider buckets up to
// max_distance; positive distances use the upper half. rel_pos: int64, any shape.
[[nodiscard]] at::Tensor umt5_relative_position_bucket(const at::Tensor& rel_pos, int64_t num_buckets,
                                                       int64_t max_distance);

// T5LayerNorm: x / rms(x) * weight, without mean subtraction or bias, computed in float32.
class UmT5NormImpl : public torch::nn::Module {
 public:
  UmT5NormImpl(int64_t dim, double eps);
  at::Tensor forward(const at::Tensor& x);
  at::Tensor weight;  // [D]

 private:
  double eps_;
};
TORCH_MODULE(UmT5Norm);

// A learned bias per head for each relative-position bucket.
class UmT5RelativeEmbeddingImpl : public torch::nn::Module {
 public:
  explicit UmT5RelativeEmbeddingImpl(const UmT5Config& cfg);
  // [1, N, lq, lk]
  at::Tensor forward(int64_t lq, int64_t lk);
  torch::nn::Embedding embedding{nullptr};  // [num_buckets, N]

 private:
  int64_t num_buckets_, max_distance_;
};
TORCH_MODULE(UmT5RelativeEmbedding);

// Self-attention without 1/sqrt(d) scaling and without biases.
class UmT5AttentionImpl : public torch::nn::Module {
 public:
  explicit UmT5AttentionImpl(const UmT5Config& cfg);
  // x: [B, L, D]; bias: [B or 1, N, L, L], added to the logits (position bias and key mask).
  at::Tensor forward(const at::Tensor& x, const at::Tensor& bias);
  torch::nn::Linear q{nullptr}, k{nullptr}, v{nullptr}, o{nullptr};

 private:
  int64_t heads_;
};
TORCH_MODULE(UmT5Attention);

// fc2(fc1(x) * gelu_tanh(gate(x))); the gate's linear is "gate.0", as the reference wraps it
// with its activation in a Sequential.
class UmT5FeedForwardImpl : public torch::nn::Module {
 public:
  explicit UmT5FeedForwardImpl(const UmT5Config& cfg);
  at::Tensor forward(const at::Tensor& x);
  torch::nn::ModuleList gate{nullptr};
  torch::nn::Linear gate_proj{nullptr};  // gate[0]
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(UmT5FeedForward);

// x + attn(norm1(x)), then x + ffn(norm2(x)); with its own position table unless shared_pos.
class UmT5BlockImpl : public torch::nn::Module {
 public:
  explicit UmT5BlockImpl(const UmT5Config& cfg);
  // x: [B, L, D]; key_padded: [B, L] bool, true for keys no query may attend to, or undefined
  // (no mask); shared_bias: the encoder's [1, N, L, L] position bias when shared_pos.
  at::Tensor forward(const at::Tensor& x, const at::Tensor& key_padded, const at::Tensor& shared_bias);
  UmT5Norm norm1{nullptr}, norm2{nullptr};
  UmT5Attention attn{nullptr};
  UmT5FeedForward ffn{nullptr};
  UmT5RelativeEmbedding pos_embedding{nullptr};  // null when shared_pos
};
TORCH_MODULE(UmT5Block);

class UmT5EncoderImpl : public torch::nn::Module {
 public:
  explicit UmT5EncoderImpl(UmT5Config cfg);

  [[nodiscard]] const UmT5Config& config() const { return cfg_; }

  // The reference's T5Encoder(ids, mask). ids: [B, L] int64 < vocab; mask: [B, L], nonzero for
  // tokens to attend to, or undefined to attend to every token. Returns [B, L, dim] float32 for
  // every position, padded ones included (computed, not meaningful; the reference keeps the
  // first seq_len rows). Throws c10::Error on bad input.
  at::Tensor forward(const at::Tensor& ids, const at::Tensor& mask = {});

  // Deterministic initialisation from `seed`, with the reference's standard deviations
  // (embedding 1, q (dim * dim_attn)^-1/2, k and v dim^-1/2, o (N * dim_attn)^-1/2, gate and fc1
  // dim^-1/2, fc2 dim_ffn^-1/2, position tables (2 * buckets * N)^-1/2, norms 1): for tests.
  void initialize(uint64_t seed);

  // Copies every parameter from `files` (shards of one checkpoint; the reference's names or
  // Hugging Face's), as float32. corrupt_data naming the tensor and the file(s) when one is
  // missing, has another shape, is not floating point or not finite, or when a file holds a
  // tensor of an encoder that is not this one (Hugging Face decoder and lm_head tensors are
  // skipped); internal when LibTorch fails.
  [[nodiscard]] Status load_from(const std::vector<const SafeTensors*>& files);

  torch::nn::Embedding token_embedding{nullptr};  // [vocab, dim]
  UmT5RelativeEmbedding pos_embedding{nullptr};    // only when shared_pos
  torch::nn::ModuleList blocks{nullptr};
  UmT5Norm norm{nullptr};

 private:
  UmT5Config cfg_;
};
TORCH_MODULE(UmT5Encoder);

// The Hugging Face (UMT5EncoderModel / T5EncoderModel) name of a reference parameter name:
//   token_embedding.weight                   shared.weight (or encoder.embed_tokens.weight)
//   blocks.N.norm1.weight                    encoder.block.N.layer.0.layer_norm.weight
//   blocks.N.attn.{q,k,v,o}.weight           encoder.block.N.layer.0.SelfAttention.{q,k,v,o}.weight
//   blocks.N.pos_embedding.embedding.weight  encoder.block.N.layer.0.SelfAttention.relative_attention_bias.weight
//   pos_embedding.embedding.weight           encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight
//   blocks.N.norm2.weight                    encoder.block.N.layer.1.layer_norm.weight
//   blocks.N.ffn.gate.0.weight               encoder.block.N.layer.1.DenseReluDense.wi_0.weight
//   blocks.N.ffn.fc1.weight                  encoder.block.N.layer.1.DenseReluDense.wi_1.weight
//   blocks.N.ffn.fc2.weight                  encoder.block.N.layer.1.DenseReluDense.wo.weight
//   norm.weight                              encoder.final_layer_norm.weight
// (wi_0 goes through the activation in HF's gated FFN, as the reference's gate does.)
[[nodiscard]] std::string umt5_hf_name(const std::string& name);

// The config from the tensors' names and shapes (either naming): vocab and dim from the token
// embedding, dim_attn from q, dim_ffn from fc1, num_buckets and num_heads from a position table,
// num_layers by counting blocks, shared_pos from where the table is. eps, max_distance ("max_dist")
// and text_len come from the metadata when it has them. corrupt_data naming the file when a
// tensor it needs is missing or the result does not validate.
[[nodiscard]] Expected<UmT5Config> detect_umt5_config(const std::vector<const SafeTensors*>& files);

// Opens the files (one checkpoint, possibly sharded), detects the config, loads the weights.
[[nodiscard]] Expected<UmT5Encoder> load_umt5(const std::vector<std::string>& paths);

// A tokenizer and a umT5 encoder behind the TextEncoder interface. An empty prompt is read (as
// [EOS], as the reference does, e.g. for an empty negative prompt); prompts longer than text_len
// tokens are cut, as the reference cuts them.
class UmT5TextEncoder : public TextEncoder {
 public:
  // The tokenizer's vocabulary must fit the model's (checked by load).
  UmT5TextEncoder(SentencePieceTokenizer tokenizer, UmT5Encoder model);

  // spiece_model: umT5's spiece.model; weight_paths: the encoder's safetensors file(s).
  // The tokenizer cuts at the config's text_len. Errors from the tokenizer and the loader, and
  // corrupt_data when the tokenizer has more pieces than the model has embeddings.
  [[nodiscard]] static Expected<UmT5TextEncoder> load(const std::string& spiece_model,
                                                      const std::vector<std::string>& weight_paths);

  // [B, L, dim], L the longest prompt's tokens (EOS included); rows after each prompt are zero.
  [[nodiscard]] Expected<at::Tensor> encode(const std::vector<std::string>& prompts) override;
  // The same from token ids and mask ([B, L]; mask 1 for tokens, 0 for padding after them).
  // invalid_argument for shapes or ids that do not fit the model.
  [[nodiscard]] Expected<at::Tensor> encode_ids(const at::Tensor& ids, const at::Tensor& mask);

  [[nodiscard]] int64_t dim() const override { return model_->config().dim; }
  [[nodiscard]] int64_t max_length() const override { return tokenizer_.text_len(); }

  [[nodiscard]] const SentencePieceTokenizer& tokenizer() const { return tokenizer_; }
  [[nodiscard]] UmT5Encoder& model() { return model_; }

 private:
  SentencePieceTokenizer tokenizer_;
  UmT5Encoder model_;
};

}  // namespace reel::models
