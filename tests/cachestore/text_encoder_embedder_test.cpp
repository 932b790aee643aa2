#include "cachestore/text_encoder_embedder.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>

#include "cachestore/approx_cache.hpp"
#include "models/t2v_model.hpp"
#include "models/text_encoder.hpp"

namespace reel::cachestore {
namespace {

namespace fs = std::filesystem;

float cosine(const std::vector<float>& a, const std::vector<float>& b) {
  double dot = 0, na = 0, nb = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    dot += double(a[i]) * b[i];
    na += double(a[i]) * a[i];
    nb += double(b[i]) * b[i];
  }
  return static_cast<float>(dot / std::sqrt(na * nb));
}

std::shared_ptr<models::WordEncoder> make_encoder(uint64_t seed, int64_t dim = 48) {
  models::WordEncoderConfig cfg;
  cfg.dim = dim;
  cfg.heads = 4;
  cfg.ffn_dim = 2 * dim;
  cfg.max_length = 16;
  auto enc = models::WordEncoder::random(models::builtin_vocabulary(), cfg, seed);
  EXPECT_TRUE(enc.ok()) << enc.error().message;
  return std::make_shared<models::WordEncoder>(std::move(*enc));
}

std::unique_ptr<TextEncoderEmbedder> make_embedder(uint64_t seed, int64_t dim = 48) {
  auto enc = make_encoder(seed, dim);
  std::string id = TextEncoderEmbedder::fingerprint(*enc);
  return std::make_unique<TextEncoderEmbedder>(std::move(enc), id);
}

constexpr const char* kRedOnSand = "a large red circle moving right on a sand background";
constexpr const char* kRedOnNavy = "a large red circle moving right on a navy background";
constexpr const char* kBlueSquare = "a small blue square standing still on a white background";

TEST(TextEncoderEmbedder, DimensionIsTheEncodersWidth) {
  auto e = make_embedder(1, 40);
  EXPECT_EQ(e->dim(), 40);
  auto v = e->embed(kRedOnSand);
  ASSERT_EQ(v.size(), 40u);
  double norm = 0;
  for (float x : v) norm += double(x) * x;
  EXPECT_NEAR(norm, 1.0, 1e-5);
  EXPECT_NE(e->name().find("dim=40"), std::string::npos);
  EXPECT_EQ(e->name().rfind("text-encoder-v1(", 0), 0u);
}

TEST(TextEncoderEmbedder, IdenticalPromptsHaveCosineOne) {
  auto e = make_embedder(2);
  EXPECT_NEAR(cosine(e->embed(kRedOnSand), e->embed(kRedOnSand)), 1.0F, 1e-6F);
  // Case and punctuation are the tokenizer's business: the same words, the same vector.
  EXPECT_NEAR(cosine(e->embed(kRedOnSand), e->embed("A large RED circle, moving right on a sand background!")),
              1.0F, 1e-6F);
}

TEST(TextEncoderEmbedder, OneWordApartIsCloserThanUnrelated) {
  auto e = make_embedder(3);
  const auto a = e->embed(kRedOnSand);
  const float near = cosine(a, e->embed(kRedOnNavy));
  const float far = cosine(a, e->embed(kBlueSquare));
  EXPECT_LT(near, 0.9999F);
  EXPECT_GT(near, far);
  const auto b = e->embed("a small green triangle moving left on a sand background");
  EXPECT_GT(cosine(b, e->embed("a small green triangle moving up on a sand background")), cosine(b, a));
}

TEST(TextEncoderEmbedder, PaddingDoesNotChangeAPromptsEmbedding) {
  auto e = make_embedder(4);
  const std::string short_prompt = "a red circle";
  const std::vector<std::string> batch{short_prompt, kRedOnSand, "a blue square"};
  auto many = e->embed_batch(batch);
  ASSERT_EQ(many.size(), 3u);
  const auto alone = e->embed(short_prompt);  // no padding at all
  ASSERT_EQ(many[0].size(), alone.size());
  for (size_t i = 0; i < alone.size(); ++i) EXPECT_NEAR(many[0][i], alone[i], 1e-5F) << i;
  EXPECT_NEAR(cosine(many[1], e->embed(kRedOnSand)), 1.0F, 1e-5F);
  EXPECT_NEAR(cosine(many[2], e->embed("a blue square")), 1.0F, 1e-5F);
}

// A TextEncoder that is not a WordEncoder: padding is known only from the zero rows.
class PaddedEncoder : public models::TextEncoder {
 public:
  explicit PaddedEncoder(std::shared_ptr<models::WordEncoder> inner, int64_t pad) : inner_(std::move(inner)), pad_(pad) {}
  Expected<at::Tensor> encode(const std::vector<std::string>& prompts) override {
    auto rows = inner_->encode(prompts);
    if (!rows.ok()) return rows;
    // Extra zero rows at the end, as a longer batch would have.
    return torch::cat({*rows, torch::zeros({rows->size(0), pad_, rows->size(2)})}, 1);
  }
  int64_t dim() const override { return inner_->dim(); }
  int64_t max_length() const override { return inner_->max_length(); }

 private:
  std::shared_ptr<models::WordEncoder> inner_;
  int64_t pad_;
};

TEST(TextEncoderEmbedder, MeanIsOverRealTokensForAnyEncoder) {
  auto inner = make_encoder(5);
  TextEncoderEmbedder exact(inner, "x");
  TextEncoderEmbedder padded(std::make_shared<PaddedEncoder>(inner, 7), "x");
  const auto a = exact.embed(kRedOnSand);
  const auto b = padded.embed(kRedOnSand);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-5F) << i;
}

TEST(TextEncoderEmbedder, UnreadablePromptsNeverCollide) {
  auto e = make_embedder(6);
  // Words outside the vocabulary, and the empty prompt: hashed vectors, each hitting only itself.
  const auto cat = e->embed("a red cat on a sand background");
  const auto dog = e->embed("a red dog on a sand background");
  EXPECT_NEAR(cosine(cat, e->embed("a red cat on a sand background")), 1.0F, 1e-6F);
  EXPECT_LT(cosine(cat, dog), 0.6F);
  EXPECT_LT(cosine(cat, e->embed("a red circle on a sand background")), 0.6F);
  const auto empty = e->embed("");
  ASSERT_EQ(empty.size(), size_t(e->dim()));
  EXPECT_NEAR(cosine(empty, e->embed("?!")), 1.0F, 1e-6F);
}

TEST(TextEncoderEmbedder, NameChangesWithTheWeights) {
  EXPECT_EQ(make_embedder(7)->name(), make_embedder(7)->name());
  EXPECT_NE(make_embedder(7)->name(), make_embedder(8)->name());
}

class TextEncoderCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("reel_te_cache_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::unique_ptr<ApproxCache> open(std::unique_ptr<Embedder> e) {
    CacheOptions o;
    o.path = dir_.string();
    o.decoupled = false;
    auto cache = ApproxCache::open(o, std::move(e));
    EXPECT_TRUE(cache.ok()) << cache.error().message;
    return cache.ok() ? std::move(*cache) : nullptr;
  }

  static CompatKey key() {
    return CompatKey{.model = "shapes-s", .weights_hash = "w1", .scheduler = "unipc", .steps = 20, .shift = 3,
                     .height = 16, .width = 16, .frames = 4, .guidance = 4, .prediction = "sample"};
  }
  static std::map<int, Latent> latents(const std::vector<int>& steps) {
    std::map<int, Latent> out;
    for (int s : steps) {
      Latent l{{1, 3, 4, 16, 16}, std::vector<float>(3 * 4 * 16 * 16)};
      for (size_t i = 0; i < l.values.size(); ++i) l.values[i] = float(std::sin(0.01 * double(i) + s));
      out[s] = std::move(l);
    }
    return out;
  }
  bool hits(ApproxCache& cache, const char* prompt) {
    auto r = cache.lookup(key(), prompt);
    EXPECT_TRUE(r.ok());
    return r.ok() && r->has_value();
  }

  fs::path dir_;
};

TEST_F(TextEncoderCacheTest, NoHitAcrossEmbedders) {
  {
    auto cache = open(std::make_unique<NgramEmbedder>(NgramOptions{.dim = 48}));
    ASSERT_TRUE(cache->insert(key(), kRedOnSand, latents(cache->capture_steps(20))).ok());
    EXPECT_TRUE(hits(*cache, kRedOnSand));
  }
  {
    // Same dimension, same prompt, same key otherwise: the text-encoder embedder must not see it.
    auto cache = open(make_embedder(9));
    EXPECT_FALSE(hits(*cache, kRedOnSand));
    EXPECT_FALSE(cache->contains(key(), kRedOnSand));
    ASSERT_TRUE(cache->insert(key(), kRedOnNavy, latents(cache->capture_steps(20))).ok());
    EXPECT_TRUE(hits(*cache, kRedOnNavy));
  }
  {
    // Another text encoder (other weights, same width): neither entry.
    auto cache = open(make_embedder(10));
    EXPECT_FALSE(hits(*cache, kRedOnSand));
    EXPECT_FALSE(hits(*cache, kRedOnNavy));
  }
  {
    auto cache = open(make_embedder(9));
    EXPECT_TRUE(hits(*cache, kRedOnNavy));
    // kRedOnSand is one word from kRedOnNavy, so it may hit, but only that entry: never the one
    // the n-gram embedder stored for kRedOnSand itself.
    auto r = cache->lookup(key(), kRedOnSand);
    ASSERT_TRUE(r.ok());
    if (r->has_value()) {
      EXPECT_EQ((*r)->sources, std::vector<std::string>{kRedOnNavy});
    }
    EXPECT_FALSE(cache->contains(key(), kRedOnSand));
  }
  {
    auto cache = open(std::make_unique<NgramEmbedder>(NgramOptions{.dim = 48}));
    auto r = cache->lookup(key(), kRedOnSand);
    ASSERT_TRUE(r.ok());
    ASSERT_TRUE(r->has_value());
    EXPECT_EQ((*r)->sources, std::vector<std::string>{kRedOnSand});
    EXPECT_FLOAT_EQ((*r)->similarity, 1.0F);
    // The text encoder's entry is one word away, but the n-gram embedder never sees it.
    r = cache->lookup(key(), kRedOnNavy);
    ASSERT_TRUE(r.ok());
    if (r->has_value()) {
      EXPECT_EQ((*r)->sources, std::vector<std::string>{kRedOnSand});
    }
    EXPECT_FALSE(cache->contains(key(), kRedOnNavy));
  }
}

}  // namespace
}  // namespace reel::cachestore
