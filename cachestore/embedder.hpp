// Prompt embeddings for the approximate cache: a prompt becomes an L2-normalised vector, and two
// prompts are as similar as the inner product of their vectors (cosine similarity).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/expected.hpp"

namespace reel::cachestore {

// Lowercases ASCII letters, turns every byte that is not an ASCII letter or digit (and not part
// of a UTF-8 sequence) into a space, collapses runs of spaces and trims both ends:
// "A Cat, sitting!" -> "a cat sitting".
[[nodiscard]] std::string normalize_text(std::string_view text);

class Embedder {
 public:
  virtual ~Embedder() = default;

  [[nodiscard]] virtual int dim() const = 0;

  // Identifies the embedding function: kind, dim and every option that changes vectors. Two
  // embedders with the same name give comparable vectors (given the same fitted state, see
  // NgramEmbedder::idf_checksum); the cache stores it to refuse vectors from another.
  [[nodiscard]] virtual std::string name() const = 0;

  // dim() floats with L2 norm 1. Never the zero vector: a prompt with no words (empty, or only
  // punctuation) gets a fixed unit vector of its own, so all such prompts are identical to each
  // other and nearly orthogonal to real ones.
  [[nodiscard]] virtual std::vector<float> embed(std::string_view prompt) const = 0;
};

struct NgramOptions {
  // Length of the vector; features are hashed into this many buckets. Default 1024.
  int dim = 1024;
  // Word n-grams of 1..word_ngram_max consecutive words (2: words and word pairs). Default 2.
  int word_ngram_max = 2;
  // Character n-grams of char_ngram_min..char_ngram_max bytes, taken inside each word with its
  // boundaries marked ("<cat>" gives "<ca", "cat", "at>", "<cat", ...). Defaults 3 and 5.
  int char_ngram_min = 3;
  int char_ngram_max = 5;
  // Share of the similarity that comes from character n-grams, in [0, 1]; the rest comes from
  // word n-grams. Character n-grams let "dogs" match "dog" and survive typos. Default 0.5.
  double char_weight = 0.5;
};

// Checks ranges: dim >= 1, word_ngram_max >= 1, 1 <= char_ngram_min <= char_ngram_max,
// char_weight in [0, 1]. Errors: invalid_argument naming the first field out of range.
[[nodiscard]] Status validate(const NgramOptions& options);

// Needs no weights: hashed word and character n-grams of the normalised prompt, weighted by
// sublinear term frequency (1 + ln count) times inverse document frequency, L2-normalised.
// Each feature is hashed with codecs::checksum64 (the same on every machine and build) to a
// bucket and a sign, so that collisions cancel on average instead of adding up.
//
// Before fit() or load_idf() every IDF is 1. Thread-safety: embed() and the other const members
// may run concurrently; fit() and load_idf() must not run alongside anything else.
class NgramEmbedder final : public Embedder {
 public:
  // Options out of range (see validate()) are clamped into range; name() shows the values used.
  explicit NgramEmbedder(NgramOptions options = {});

  [[nodiscard]] int dim() const override { return options_.dim; }
  // e.g. "ngram-v1(dim=1024,word=1-2,char=3-5,char_weight=0.5)".
  [[nodiscard]] std::string name() const override;
  [[nodiscard]] std::vector<float> embed(std::string_view prompt) const override;

  [[nodiscard]] const NgramOptions& options() const { return options_; }

  // Replaces the document frequencies with those of `corpus` (one prompt per element, e.g. a
  // prompt log), so that words common to most prompts ("a", "video", "the") weigh less.
  void fit(std::span<const std::string> corpus);

  // The fitted document frequencies as text, to persist with the cache so that vectors stay
  // comparable across runs. Holds name() and a checksum.
  [[nodiscard]] std::string serialize_idf() const;
  // Reads what serialize_idf() wrote. Errors: invalid_argument when it was written by an
  // embedder with another name() (other options); corrupt_data when it is malformed or its
  // checksum does not match. On error the embedder is unchanged.
  [[nodiscard]] Status load_idf(std::string_view text);

  // Fingerprint of the fitted state: 0 before fit()/load_idf(), else a checksum of the document
  // frequencies. Vectors are comparable only between equal name() and idf_checksum().
  [[nodiscard]] uint64_t idf_checksum() const { return idf_checksum_; }

 private:
  void update_idf();

  NgramOptions options_;
  uint64_t documents_ = 0;
  std::vector<uint32_t> word_df_;  // [dim] documents in which each word bucket occurs
  std::vector<uint32_t> char_df_;  // [dim] likewise for character n-gram buckets
  std::vector<float> word_idf_;    // [dim]
  std::vector<float> char_idf_;    // [dim]
  uint64_t idf_checksum_ = 0;
};

}  // namespace reel::cachestore
