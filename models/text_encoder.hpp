// Text encoders: prompts to the [B, L, D] rows the DiT cross-attends to.
//
// `TextEncoder` is the interface the rest of reel sees. The first implementation, `WordEncoder`,
// is a small transformer over a closed word vocabulary (WordTokenizer), for models trained on a
// fixed prompt grammar and for random-initialised stand-ins in tests and benchmarks. Large
// encoders (umT5) will be further implementations of the same interface.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "base/expected.hpp"
#include "models/tokenizer.hpp"

namespace reel::models {

class SafeTensors;

class TextEncoder {
 public:
  virtual ~TextEncoder() = default;
  // prompts -> [B, L, D] float32, L = the longest prompt's token count (<= max_length()); the
  // rows after each prompt's last token are zero. invalid_argument for prompts the encoder
  // cannot read (empty batch, empty prompt, unknown words, too long), internal when the library
  // underneath fails.
  [[nodiscard]] virtual Expected<at::Tensor> encode(const std::vector<std::string>& prompts) = 0;
  [[nodiscard]] virtual int64_t dim() const = 0;
  [[nodiscard]] virtual int64_t max_length() const = 0;
};

// Prefix of the encoder's tensors and metadata keys in a checkpoint that also holds the DiT.
inline constexpr const char* kTextEncoderPrefix = "text_encoder";

struct WordEncoderConfig {
  int64_t vocab_size = 0;    // token ids, the two reserved ones included; 0 = from the vocabulary
  int64_t dim = 64;          // width of the output rows; default 64
  int64_t layers = 2;        // pre-norm transformer layers; default 2
  int64_t heads = 4;         // attention heads; default 4
  int64_t ffn_dim = 128;     // feed-forward width; default 128
  int64_t max_length = 16;   // longest prompt in words (positions); default 16
  double eps = 1e-6;         // LayerNorm epsilon; default 1e-6

  // invalid_argument when sizes are not positive, dim % heads != 0 or vocab_size < 2.
  [[nodiscard]] Status validate() const;
  // Keys "<prefix>.vocab_size", "<prefix>.dim", ..., "<prefix>.eps".
  [[nodiscard]] std::map<std::string, std::string> to_metadata(const std::string& prefix = kTextEncoderPrefix) const;
  // corrupt_data when a key is missing or not a number, or the result does not validate.
  [[nodiscard]] static Expected<WordEncoderConfig> from_metadata(const std::map<std::string, std::string>& metadata,
                                                                 const std::string& prefix = kTextEncoderPrefix);
};

// Self-attention over the prompt's tokens; pad keys get no weight.
class WordSelfAttentionImpl : public torch::nn::Module {
 public:
  explicit WordSelfAttentionImpl(const WordEncoderConfig& cfg);
  // x: [B, L, D]; key_valid: [B, L] bool.
  at::Tensor forward(const at::Tensor& x, const at::Tensor& key_valid);
  torch::nn::Linear to_q{nullptr}, to_k{nullptr}, to_v{nullptr}, to_out{nullptr};
  int64_t heads = 1;
};
TORCH_MODULE(WordSelfAttention);

// Pre-norm encoder layer: x + attn(norm1(x)), then x + linear_2(gelu(linear_1(norm2(x)))).
class WordEncoderLayerImpl : public torch::nn::Module {
 public:
  explicit WordEncoderLayerImpl(const WordEncoderConfig& cfg);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& key_valid);
  torch::nn::LayerNorm norm1{nullptr}, norm2{nullptr};
  WordSelfAttention attn{nullptr};
  torch::nn::Linear linear_1{nullptr}, linear_2{nullptr};
};
TORCH_MODULE(WordEncoderLayer);

class WordTextEncoderImpl : public torch::nn::Module {
 public:
  explicit WordTextEncoderImpl(WordEncoderConfig cfg);

  [[nodiscard]] const WordEncoderConfig& config() const { return cfg_; }

  // ids: [B, L] int64 with L <= max_length, prompts left-aligned, id 0 (pad) after each prompt's
  // end. Returns [B, L, D]; rows at pad positions are zero, and a prompt's rows do not depend on
  // the other prompts of the batch or on how far it is padded. Throws c10::Error on bad input.
  at::Tensor forward(const at::Tensor& ids);

  // Deterministic initialisation from `seed` (same seed, same weights), for random stand-ins:
  // embeddings N(0, 0.02), linear weights Xavier-uniform, biases zero, norms identity.
  void initialize(uint64_t seed);

  // Parameters named "<prefix>.<name>", e.g. "text_encoder.layers.0.attn.to_q.weight".
  [[nodiscard]] std::vector<std::pair<std::string, at::Tensor>> named_tensors(
      const std::string& prefix = kTextEncoderPrefix) const;
  // Copies every parameter from "<prefix>.<name>" in `file`. corrupt_data naming the file and
  // tensor when one is missing, has another shape or is not floating point, or when the file
  // has a tensor under a non-empty prefix that is not a parameter; internal when LibTorch fails.
  [[nodiscard]] Status load_from(const SafeTensors& file, const std::string& prefix = kTextEncoderPrefix);

  torch::nn::Embedding token_embedding{nullptr};     // [vocab_size, D]
  torch::nn::Embedding position_embedding{nullptr};  // [max_length, D]
  torch::nn::ModuleList layers{nullptr};
  torch::nn::LayerNorm norm{nullptr};

 private:
  WordEncoderConfig cfg_;
};
TORCH_MODULE(WordTextEncoder);

// A WordTokenizer and a WordTextEncoder behind the TextEncoder interface.
class WordEncoder : public TextEncoder {
 public:
  // The model's vocab_size must be the tokenizer's (checked by the factories below).
  WordEncoder(WordTokenizer tokenizer, WordTextEncoder model, UnknownPolicy policy = UnknownPolicy::error);

  // A random-initialised encoder over `words` (cfg.vocab_size 0 or words.size() + 2).
  // invalid_argument for a config that does not validate or does not fit the vocabulary.
  [[nodiscard]] static Expected<WordEncoder> random(std::vector<std::string> words, WordEncoderConfig cfg,
                                                    uint64_t seed, UnknownPolicy policy = UnknownPolicy::error);
  // Config and vocabulary from the metadata ("<prefix>.dim", ..., "<prefix>.vocab"), weights
  // from the tensors "<prefix>.*". Errors name the file and the key or tensor (corrupt_data).
  [[nodiscard]] static Expected<WordEncoder> load(const SafeTensors& file,
                                                  const std::string& prefix = kTextEncoderPrefix,
                                                  UnknownPolicy policy = UnknownPolicy::error);

  [[nodiscard]] Expected<at::Tensor> encode(const std::vector<std::string>& prompts) override;
  [[nodiscard]] int64_t dim() const override { return model_->config().dim; }
  [[nodiscard]] int64_t max_length() const override { return model_->config().max_length; }

  // [B, L] int64 token ids, padded with 0 to the longest prompt. A prompt's error is prefixed
  // with its index in batches of more than one.
  [[nodiscard]] Expected<at::Tensor> token_ids(const std::vector<std::string>& prompts) const;

  // Tensors and metadata (config and "<prefix>.vocab", the words joined by '\n') to save with
  // save_safetensors, alone or beside the DiT's.
  [[nodiscard]] std::vector<std::pair<std::string, at::Tensor>> named_tensors(
      const std::string& prefix = kTextEncoderPrefix) const;
  [[nodiscard]] std::map<std::string, std::string> metadata(const std::string& prefix = kTextEncoderPrefix) const;

  [[nodiscard]] const WordTokenizer& tokenizer() const { return tokenizer_; }
  [[nodiscard]] WordTextEncoder& model() { return model_; }
  [[nodiscard]] UnknownPolicy unknown_policy() const { return policy_; }
  void set_unknown_policy(UnknownPolicy policy) { policy_ = policy; }

 private:
  WordTokenizer tokenizer_;
  WordTextEncoder model_;
  UnknownPolicy policy_;
};

}  // namespace reel::models
