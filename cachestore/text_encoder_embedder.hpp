// A prompt embedder from the model's own text encoder: the encoder's rows for the prompt's real
// tokens (padding excluded), averaged, then L2-normalised. Unlike NgramEmbedder it knows what
// the model knows ("circle" and "ring" may be close), at the cost of a forward pass per prompt.
//
// Lives in its own library, reel_cachestore_torch, which links LibTorch and reel_models; the
// rest of cachestore (reel_cachestore) stays free of LibTorch. This header includes neither.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "cachestore/embedder.hpp"

namespace reel::models {
class TextEncoder;
class WordEncoder;
}  // namespace reel::models

namespace reel::cachestore {

// Vectors of dim() = encoder->dim() floats. A prompt the encoder cannot read exactly (empty, a
// word outside a WordEncoder's vocabulary, more tokens than max_length(), or an encoder error)
// gets instead a unit vector drawn from a hash of its normalised text: the same prompt always
// gets the same vector (it still hits itself), and any two such prompts, or such a prompt and a
// readable one, are nearly orthogonal (a miss), never a false hit. The empty prompt gets one
// fixed vector, as with NgramEmbedder.
//
// name() is "text-encoder-v1(id=<identity>,dim=<D>,pool=mean)". `identity` must change whenever
// the encoder's weights or vocabulary do (use fingerprint() for a WordEncoder, or the model name
// and its weights checksum): the cache stores name() in every entry's compatibility key, so
// vectors of two embedders are never compared and a hit never crosses embedders.
//
// Thread-safety: embed() may be called from any thread; calls to the encoder are serialised.
class TextEncoderEmbedder final : public Embedder {
 public:
  // `encoder` must not be null (a null encoder gives dim() 1 and only hashed vectors).
  TextEncoderEmbedder(std::shared_ptr<models::TextEncoder> encoder, std::string identity);
  ~TextEncoderEmbedder() override;

  [[nodiscard]] int dim() const override { return dim_; }
  [[nodiscard]] std::string name() const override;
  [[nodiscard]] std::vector<float> embed(std::string_view prompt) const override;

  // embed() for many prompts in one encoder call (padded to the longest); each result equals
  // embed() of that prompt alone up to float rounding.
  [[nodiscard]] std::vector<std::vector<float>> embed_batch(std::span<const std::string> prompts) const;

  // Identity of a WordEncoder: checksum of its config, vocabulary and every parameter's bytes,
  // as 16 hex digits. Two encoders with equal fingerprints give the same vectors.
  [[nodiscard]] static std::string fingerprint(models::WordEncoder& encoder);

 private:
  // The hashed stand-in vector for a prompt the encoder cannot read.
  [[nodiscard]] std::vector<float> fallback(std::string_view prompt) const;
  // Whether the encoder can read `prompt` exactly (see above).
  [[nodiscard]] bool readable(const std::string& prompt) const;

  std::shared_ptr<models::TextEncoder> encoder_;
  models::WordEncoder* word_encoder_ = nullptr;  // encoder_ when it is a WordEncoder
  std::string identity_;
  int dim_ = 1;
  mutable std::mutex mutex_;  // serialises encode()
};

}  // namespace reel::cachestore
