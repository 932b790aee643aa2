// A closed-vocabulary word tokenizer for small text encoders trained on a fixed prompt grammar.
//
// A prompt is lowercased (ASCII) and split into words: runs of ASCII letters and digits, and of
// bytes >= 0x80 so that UTF-8 words stay whole. Everything else (space, punctuation) separates
// words and is dropped, so "A red-haired cat, 3 times." reads as a / red / haired / cat / 3 /
// times. Ids 0 and 1 are reserved for padding and unknown words; the vocabulary's words follow
// from id 2 in the order given.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/expected.hpp"

namespace reel::models {

enum class UnknownPolicy {
  error,       // a prompt with a word outside the vocabulary is rejected (invalid_argument)
  map_to_unk,  // unknown words become kUnkId
};

class WordTokenizer {
 public:
  static constexpr int64_t kPadId = 0;
  static constexpr int64_t kUnkId = 1;
  static constexpr int64_t kFirstWordId = 2;
  static constexpr int64_t kNoLimit = std::numeric_limits<int64_t>::max();

  WordTokenizer() = default;
  // Words are lowercased; word i gets id kFirstWordId + i. A repeated word keeps the id of its
  // first occurrence (later copies are never produced by encode). Use from_string for input
  // that must be validated.
  explicit WordTokenizer(std::vector<std::string> words);

  // The words of `prompt` in order, lowercased, punctuation dropped.
  [[nodiscard]] static std::vector<std::string> split(const std::string& prompt);

  // Token ids of `prompt`. invalid_argument when the prompt has no words ("empty prompt"),
  // when it has unknown words and policy is `error` (the message quotes every one of them), or
  // when it has more than `max_length` words (the message names the limit). With map_to_unk,
  // the unknown words (each once, in order of appearance) go to `unknown` when it is given.
  [[nodiscard]] Expected<std::vector<int64_t>> encode(const std::string& prompt, UnknownPolicy policy,
                                                      int64_t max_length = kNoLimit,
                                                      std::vector<std::string>* unknown = nullptr) const;

  // The words of `prompt` outside the vocabulary, each once, in order of appearance.
  [[nodiscard]] std::vector<std::string> unknown_words(const std::string& prompt) const;

  [[nodiscard]] const std::vector<std::string>& words() const { return words_; }
  // Ids in use, the two reserved ones included: words().size() + 2.
  [[nodiscard]] int64_t vocab_size() const { return kFirstWordId + static_cast<int64_t>(words_.size()); }
  // kUnkId when `word` (already lowercase) is not in the vocabulary.
  [[nodiscard]] int64_t id(const std::string& word) const;

  // The words joined by '\n' (reserved tokens are not written), for safetensors metadata.
  [[nodiscard]] std::string to_string() const;
  // Inverse of to_string. invalid_argument when a line is empty, is not a single word as split()
  // reads it, or repeats an earlier line. A trailing newline is allowed.
  [[nodiscard]] static Expected<WordTokenizer> from_string(const std::string& s);

 private:
  std::vector<std::string> words_;
  std::unordered_map<std::string, int64_t> ids_;
};

}  // namespace reel::models
