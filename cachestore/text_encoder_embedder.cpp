#include "cachestore/text_encoder_embedder.hpp"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "codecs/checksum.hpp"
#include "models/text_encoder.hpp"

namespace reel::cachestore {
namespace {

constexpr uint64_t kFallbackSeed = 0x74652d66616c6c31ULL;  // "te-fall1"

void normalize_in_place(std::vector<float>& v) {
  double norm = 0.0;
  for (float x : v) norm += double(x) * double(x);
  norm = std::sqrt(norm);
  if (norm > 0.0 && std::isfinite(norm)) {
    for (float& x : v) x = static_cast<float>(x / norm);
  }
}

// splitmix64: a well-mixed stream from one seed.
uint64_t splitmix(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

}  // namespace

TextEncoderEmbedder::TextEncoderEmbedder(std::shared_ptr<models::TextEncoder> encoder, std::string identity)
    : encoder_(std::move(encoder)), identity_(std::move(identity)) {
  if (encoder_) {
    dim_ = static_cast<int>(std::max<int64_t>(1, encoder_->dim()));
    word_encoder_ = dynamic_cast<models::WordEncoder*>(encoder_.get());
  }
}

TextEncoderEmbedder::~TextEncoderEmbedder() = default;

std::string TextEncoderEmbedder::name() const {
  return "text-encoder-v1(id=" + identity_ + ",dim=" + std::to_string(dim_) + ",pool=mean)";
}

std::vector<float> TextEncoderEmbedder::fallback(std::string_view prompt) const {
  // Gaussian-ish values (sum of two uniforms, centred) from a hash of the normalised text, so
  // that distinct prompts get nearly orthogonal vectors in any dimension above a few dozen.
  const std::string text = normalize_text(prompt);
  uint64_t state = codecs::checksum64(text, kFallbackSeed);
  std::vector<float> v(static_cast<size_t>(dim_));
  for (float& x : v) {
    double a = double(splitmix(state) >> 11) / double(1ULL << 53);
    double b = double(splitmix(state) >> 11) / double(1ULL << 53);
    x = static_cast<float>(a + b - 1.0);
  }
  normalize_in_place(v);
  if (std::all_of(v.begin(), v.end(), [](float x) { return x == 0.0F; })) v[0] = 1.0F;
  return v;
}

bool TextEncoderEmbedder::readable(const std::string& prompt) const {
  if (!encoder_ || normalize_text(prompt).empty()) return false;
  if (word_encoder_ != nullptr) {
    // Unknown words are refused whatever the encoder's own policy: mapped to one shared unknown
    // token, "a red cat" and "a red dog" would embed alike and hit each other.
    return word_encoder_->tokenizer()
        .encode(prompt, models::UnknownPolicy::error, word_encoder_->max_length())
        .ok();
  }
  return true;
}

std::vector<std::vector<float>> TextEncoderEmbedder::embed_batch(std::span<const std::string> prompts) const {
  std::vector<std::vector<float>> out(prompts.size());
  std::vector<std::string> batch;
  std::vector<size_t> where;
  for (size_t i = 0; i < prompts.size(); ++i) {
    if (readable(prompts[i])) {
      batch.push_back(prompts[i]);
      where.push_back(i);
    } else {
      out[i] = fallback(prompts[i]);
    }
  }
  if (batch.empty()) return out;

  bool done = false;
  try {
    torch::NoGradGuard no_grad;
    at::Tensor rows;    // [B, L, D]
    at::Tensor valid;   // [B, L] bool: real tokens
    {
      std::lock_guard lock(mutex_);
      auto encoded = encoder_->encode(batch);
      if (encoded.ok()) {
        rows = encoded->to(torch::kCPU, torch::kFloat32);
        if (word_encoder_ != nullptr) {
          auto ids = word_encoder_->token_ids(batch);
          if (ids.ok()) valid = ids->to(torch::kCPU).ne(models::WordTokenizer::kPadId);
        }
      }
    }
    if (rows.defined() && rows.dim() == 3 && rows.size(0) == static_cast<int64_t>(batch.size()) &&
        rows.size(2) == dim_) {
      const int64_t length = rows.size(1);
      if (!valid.defined() || valid.dim() != 2 || valid.size(0) != rows.size(0) || valid.size(1) != length) {
        // The TextEncoder contract: rows after each prompt's last token are zero. A prompt's
        // length is one past its last row that is not all zero.
        at::Tensor nonzero = rows.abs().amax(-1).gt(0);                      // [B, L]
        at::Tensor pos = torch::arange(1, length + 1, torch::kLong).unsqueeze(0);  // [1, L]
        at::Tensor len = (nonzero.to(torch::kLong) * pos).amax(-1, /*keepdim=*/true);  // [B, 1]
        valid = torch::arange(length, torch::kLong).unsqueeze(0).lt(len);
      }
      at::Tensor w = valid.to(torch::kFloat32).unsqueeze(-1);  // [B, L, 1]
      at::Tensor count = w.sum(1).clamp_min(1.0F);             // [B, 1]
      at::Tensor mean = ((rows * w).sum(1) / count).contiguous();  // [B, D]
      const float* data = mean.data_ptr<float>();
      for (size_t b = 0; b < batch.size(); ++b) {
        std::vector<float> v(data + b * size_t(dim_), data + (b + 1) * size_t(dim_));
        bool finite = std::all_of(v.begin(), v.end(), [](float x) { return std::isfinite(x); });
        double norm = 0.0;
        for (float x : v) norm += double(x) * double(x);
        if (!finite || norm == 0.0) {
          out[where[b]] = fallback(batch[b]);
        } else {
          normalize_in_place(v);
          out[where[b]] = std::move(v);
        }
      }
      done = true;
    }
  } catch (const c10::Error&) {
    done = false;
  }
  if (!done) {
    // One bad prompt fails a whole batch: retry one by one so the others still get real vectors.
    if (batch.size() > 1) {
      for (size_t b = 0; b < batch.size(); ++b) out[where[b]] = embed(batch[b]);
    } else {
      out[where[0]] = fallback(batch[0]);
    }
  }
  return out;
}

std::vector<float> TextEncoderEmbedder::embed(std::string_view prompt) const {
  std::string p(prompt);
  auto out = embed_batch(std::span<const std::string>(&p, 1));
  return std::move(out.front());
}

std::string TextEncoderEmbedder::fingerprint(models::WordEncoder& encoder) {
  uint64_t h = 0x7465787465636f64ULL;
  for (const auto& [key, value] : encoder.metadata()) {
    h = codecs::checksum64(key, h);
    h = codecs::checksum64(value, h);
  }
  torch::NoGradGuard no_grad;
  for (const auto& [name, tensor] : encoder.named_tensors()) {
    h = codecs::checksum64(name, h);
    at::Tensor t = tensor.detach().to(torch::kCPU, torch::kFloat32).contiguous();
    h = codecs::checksum64(
        std::string_view(static_cast<const char*>(t.data_ptr()), static_cast<size_t>(t.numel()) * sizeof(float)), h);
  }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
  return hex;
}

}  // namespace reel::cachestore
