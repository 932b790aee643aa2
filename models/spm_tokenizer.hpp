// The umT5 tokenizer: a sentencepiece model (`spiece.model`) behind the cleaning, EOS and
// padding rules of Wan's T5EncoderModel (wan/modules/tokenizers.py, clean='whitespace', over a
// Hugging Face T5 tokenizer).
//
// A prompt is cleaned (HTML entities unescaped twice, whitespace runs collapsed to one space,
// ends stripped), split into pieces by sentencepiece, cut to text_len - 1 pieces and ended with
// EOS; a batch is padded with the pad id. Not done, unlike the reference: ftfy's mojibake repair,
// HTML's full table of named entities (the common ones and every numeric reference are read),
// and Hugging Face's parsing of special-token text such as "</s>" typed inside a prompt.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/expected.hpp"

namespace reel::models {

namespace detail {
struct SpmHandle;  // a sentencepiece processor inside libreel_sentencepiece.so (see spm_shim.cpp)
}

// Ids and mask of a batch of prompts, both [B, L] int64, prompts left-aligned.
struct TokenBatch {
  at::Tensor ids;   // pad id after each prompt's EOS
  at::Tensor mask;  // 1 for the prompt's pieces and its EOS, 0 for padding
  std::vector<int64_t> lengths;  // per prompt: pieces + EOS
};

enum class Padding {
  to_text_len,  // every row text_len long, as the reference tokenizer pads ('max_length')
  to_longest,   // rows as long as the batch's longest prompt: the same valid rows, less work
};

class SentencePieceTokenizer {
 public:
  // Loads `model_path` (a sentencepiece model, e.g. umT5's spiece.model). Prompts are cut to
  // text_len ids, EOS included (Wan: 512). not_found naming the path when there is no such
  // file; corrupt_data when sentencepiece cannot read it or the model has no EOS or no pad
  // piece (T5 models have pad 0 and EOS 1); invalid_argument when text_len < 1; unsupported in
  // builds without sentencepiece (REEL_MODELS_ONLY without libsentencepiece-dev) or when its
  // shim library cannot be loaded.
  [[nodiscard]] static Expected<SentencePieceTokenizer> load(const std::string& model_path, int64_t text_len);

  // The reference's clean='whitespace': html.unescape twice, strip, runs of Unicode white
  // space to one ' ', strip. invalid_argument when `text` is not UTF-8.
  [[nodiscard]] static Expected<std::string> clean(const std::string& text);

  // Ids of one prompt: the cleaned prompt's pieces, at most text_len - 1 of them, then EOS.
  // An empty prompt is [EOS], as in the reference. invalid_argument for text that is not UTF-8.
  [[nodiscard]] Expected<std::vector<int64_t>> encode(const std::string& prompt) const;

  // Ids and mask of a batch. invalid_argument for an empty batch or a prompt encode() rejects
  // (prefixed with the prompt's index in batches of more than one).
  [[nodiscard]] Expected<TokenBatch> tokenize(const std::vector<std::string>& prompts,
                                              Padding padding = Padding::to_text_len) const;

  // Text of `ids`, up to the first EOS or pad id. invalid_argument for an id outside the
  // vocabulary.
  [[nodiscard]] Expected<std::string> decode(const std::vector<int64_t>& ids) const;

  [[nodiscard]] int64_t vocab_size() const { return vocab_size_; }
  [[nodiscard]] int64_t text_len() const { return text_len_; }
  [[nodiscard]] int64_t pad_id() const { return pad_id_; }
  [[nodiscard]] int64_t eos_id() const { return eos_id_; }
  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  SentencePieceTokenizer() = default;  // only load() makes one: every tokenizer has a model

  std::shared_ptr<const detail::SpmHandle> processor_;  // encoding and decoding do not change it
  std::string path_;
  int64_t text_len_ = 0;
  int64_t vocab_size_ = 0;
  int64_t pad_id_ = 0;
  int64_t eos_id_ = 1;
};

// Trains a sentencepiece model with spm_train's flags, e.g. "--input=corpus.txt --model_prefix=m
// --vocab_size=1000" (writes m.model and m.vocab): small domain tokenizers, and test models.
// invalid_argument with sentencepiece's message when it refuses; unsupported without sentencepiece.
[[nodiscard]] Status train_sentencepiece(const std::string& flags);

}  // namespace reel::models
