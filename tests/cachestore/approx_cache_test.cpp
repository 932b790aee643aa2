#include "cachestore/approx_cache.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>

namespace reel::cachestore {
namespace {

namespace fs = std::filesystem;

constexpr const char* kRedOnSand = "a large red circle moving right on a sand background";
constexpr const char* kBlueOnNavy = "a small blue square standing still on a navy background";

CompatKey shapes_key() {
  return CompatKey{.model = "shapes-s", .weights_hash = "w1", .scheduler = "unipc", .steps = 20, .shift = 3,
                   .height = 16, .width = 16, .frames = 4, .guidance = 4, .prediction = "sample"};
}

// A smooth latent [1, 3, 4, 16, 16] whose pattern depends on `seed` and `step`.
Latent make_latent(int seed, int step) {
  Latent l{{1, 3, 4, 16, 16}, {}};
  for (int c = 0; c < 3; ++c)
    for (int f = 0; f < 4; ++f)
      for (int y = 0; y < 16; ++y)
        for (int x = 0; x < 16; ++x)
          l.values.push_back(float(std::sin(0.3 * x + seed + c) * std::cos(0.2 * y + 0.1 * f) + 0.01 * step));
  return l;
}

std::map<int, Latent> latents_for(int seed, const std::vector<int>& steps) {
  std::map<int, Latent> out;
  for (int s : steps) out[s] = make_latent(seed, s);
  return out;
}

// The object in the left half of every frame.
std::vector<uint8_t> left_half_mask() {
  std::vector<uint8_t> mask(4 * 16 * 16, 0);
  for (int f = 0; f < 4; ++f)
    for (int y = 0; y < 16; ++y)
      for (int x = 0; x < 8; ++x) mask[size_t(f * 256 + y * 16 + x)] = 1;
  return mask;
}

float max_abs_diff(const Latent& a, const Latent& b) {
  float m = 0;
  for (size_t i = 0; i < a.values.size(); ++i) m = std::max(m, std::abs(a.values[i] - b.values[i]));
  return m;
}

class ApproxCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("reel_cache_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::unique_ptr<ApproxCache> open(CacheOptions o = {}) {
    o.path = dir_.string();
    auto cache = ApproxCache::open(o, std::make_unique<NgramEmbedder>());
    EXPECT_TRUE(cache.ok()) << cache.error().message;
    return cache.ok() ? std::move(*cache) : nullptr;
  }

  fs::path dir_;
};

TEST_F(ApproxCacheTest, CapturesTheConfiguredFractionsOfTheSchedule) {
  auto cache = open();
  EXPECT_EQ(cache->capture_steps(20), (std::vector<int>{4, 8, 12}));
  EXPECT_EQ(cache->capture_steps(2), (std::vector<int>{1}));
}

TEST_F(ApproxCacheTest, ASecondRequestForTheSamePromptStartsLate) {
  auto cache = open();
  auto miss = cache->lookup(shapes_key(), kRedOnSand);
  ASSERT_TRUE(miss.ok());
  EXPECT_FALSE(miss->has_value());
  ASSERT_TRUE(cache->insert(shapes_key(), kRedOnSand, latents_for(1, {4, 8, 12})).ok());
  EXPECT_TRUE(cache->contains(shapes_key(), kRedOnSand));
  auto hit = cache->lookup(shapes_key(), kRedOnSand);
  ASSERT_TRUE(hit.ok() && hit->has_value());
  const Hit& h = **hit;
  EXPECT_EQ(h.kind, HitKind::whole);
  EXPECT_EQ(h.start_step, 12);  // similarity 1 -> 0.6 of 20 steps
  EXPECT_NEAR(h.similarity, 1.0F, 1e-5);
  // int8 per channel: within half a quantisation step of a range of about 2.
  // 5 bits a side at step 12 of 20: within half a level of a range of about 1.1.
  EXPECT_LT(max_abs_diff(h.latent, make_latent(1, 12)), 0.04F);
  auto st = cache->stats();
  EXPECT_EQ(st.whole_hits, 1u);
  EXPECT_EQ(st.misses, 1u);
  EXPECT_EQ(st.steps_saved, 12u);
}

TEST_F(ApproxCacheTest, NeverHitsAcrossIncompatibleKeys) {
  auto cache = open();
  ASSERT_TRUE(cache->insert(shapes_key(), kRedOnSand, latents_for(1, {4, 8, 12}), left_half_mask()).ok());
  std::vector<CompatKey> others(8, shapes_key());
  others[0].model = "other";
  others[1].weights_hash = "w2";
  others[2].steps = 30;
  others[3].shift = 5;
  others[4].frames = 8;
  others[5].guidance = 5;
  others[6].tenant = "acme";
  others[7].scheduler = "euler";
  for (const auto& key : others) {
    auto r = cache->lookup(key, kRedOnSand);
    ASSERT_TRUE(r.ok());
    EXPECT_FALSE(r->has_value()) << key.canonical();
  }
  EXPECT_TRUE(cache->lookup(shapes_key(), kRedOnSand)->has_value());
}

TEST_F(ApproxCacheTest, ComposesABackgroundFromOneEntryWithAnObjectFromAnother) {
  auto cache = open();
  auto mask = left_half_mask();
  ASSERT_TRUE(cache->insert(shapes_key(), kRedOnSand, latents_for(1, {4, 8, 12}), mask).ok());
  ASSERT_TRUE(cache->insert(shapes_key(), kBlueOnNavy, latents_for(2, {4, 8, 12}), mask).ok());
  // Red circle (entry 1's object) on navy (entry 2's background): never seen whole.
  auto hit = cache->lookup(shapes_key(), "a large red circle moving right on a navy background");
  ASSERT_TRUE(hit.ok() && hit->has_value());
  const Hit& h = **hit;
  EXPECT_EQ(h.kind, HitKind::composed);
  ASSERT_EQ(h.sources.size(), 2u);
  EXPECT_EQ(h.sources[0], kBlueOnNavy);
  EXPECT_EQ(h.sources[1], kRedOnSand);
  EXPECT_GT(h.start_step, 0);
  Latent object = make_latent(1, h.start_step);
  Latent background = background_plate(make_latent(2, h.start_step), mask);
  Latent expected = blend(background, object, mask);
  EXPECT_LT(max_abs_diff(h.latent, expected), 0.04F);
  EXPECT_EQ(cache->stats().composed_hits, 1u);
}

TEST_F(ApproxCacheTest, UnrelatedPromptsMiss) {
  auto cache = open();
  ASSERT_TRUE(cache->insert(shapes_key(), kRedOnSand, latents_for(1, {4, 8, 12})).ok());
  auto r = cache->lookup(shapes_key(), "a yellow triangle bouncing on a checkered gray background");
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->has_value());
}

TEST_F(ApproxCacheTest, EntriesSurviveAReopen) {
  {
    auto cache = open();
    ASSERT_TRUE(cache->insert(shapes_key(), kRedOnSand, latents_for(1, {4, 8, 12})).ok());
  }
  auto cache = open();
  EXPECT_TRUE(cache->contains(shapes_key(), kRedOnSand));
  auto hit = cache->lookup(shapes_key(), kRedOnSand);
  ASSERT_TRUE(hit.ok() && hit->has_value());
  EXPECT_EQ((*hit)->start_step, 12);
}

TEST_F(ApproxCacheTest, CompressionStoresFarFewerBytes) {
  uint64_t bytes[2] = {0, 0};
  for (int compress = 0; compress < 2; ++compress) {
    fs::remove_all(dir_);
    auto cache = open(CacheOptions{.compress = compress == 1});
    ASSERT_TRUE(cache->insert(shapes_key(), kRedOnSand, latents_for(1, {4, 8, 12})).ok());
    bytes[compress] = cache->stats().store.bytes;
  }
  EXPECT_GT(double(bytes[0]) / double(bytes[1]), 5.0) << bytes[0] << " vs " << bytes[1];
}

TEST_F(ApproxCacheTest, EvictedEntriesAreForgottenAndNeverServed) {
  // Room for about two uncompressed whole entries (3 x 12 KB of latents each).
  auto cache = open(CacheOptions{.budget_bytes = 80'000, .decoupled = false, .compress = false});
  const char* prompts[] = {kRedOnSand, kBlueOnNavy, "a small green triangle moving up on a gray background",
                           "a large white square bouncing on a sky background"};
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(cache->insert(shapes_key(), prompts[i], latents_for(i, {4, 8, 12})).ok());
    EXPECT_LE(cache->stats().store.bytes, 80'000u);
  }
  EXPECT_GT(cache->stats().store.evictions, 0u);
  int served = 0;
  for (int i = 0; i < 4; ++i) {
    auto r = cache->lookup(shapes_key(), prompts[i]);
    ASSERT_TRUE(r.ok()) << r.error().message;
    if (r->has_value() && (*r)->similarity > 0.99F) {
      ++served;
      EXPECT_LT(max_abs_diff((*r)->latent, make_latent(i, (*r)->start_step)), 1e-6);
    }
  }
  EXPECT_LT(served, 4);
  EXPECT_GE(served, 1);
}

TEST_F(ApproxCacheTest, InsertsWithoutEvictionsNeverRescanTheStore) {
  // A rescan reads every entry's metadata: once per insert it made filling a cache quadratic.
  auto cache = open(CacheOptions{.decoupled = false});
  for (int i = 0; i < 30; ++i) {
    ASSERT_TRUE(cache->insert(shapes_key(), "prompt number " + std::to_string(i), latents_for(i, {4})).ok());
  }
  EXPECT_EQ(cache->stats().rescans, 0u);
  EXPECT_EQ(cache->stats().store.entries, 30u);
}

TEST_F(ApproxCacheTest, DamagedFilesOnDiskAreNeverServed) {
  {
    auto cache = open(CacheOptions{.compress = false});
    for (int i = 0; i < 6; ++i) {
      std::string prompt = "a large red circle moving right on a sand background number " + std::to_string(i);
      ASSERT_TRUE(cache->insert(shapes_key(), prompt, latents_for(i, {4, 8, 12})).ok());
    }
  }
  // Flip bytes through the middle of every table file.
  for (const auto& file : fs::directory_iterator(dir_)) {
    if (file.path().extension() != ".sst") continue;
    std::fstream f(file.path(), std::ios::in | std::ios::out | std::ios::binary);
    const auto size = static_cast<std::streamoff>(fs::file_size(file.path()));
    for (std::streamoff at = size / 4; at < size * 3 / 4; at += 997) {
      f.seekg(at);
      char c = 0;
      f.read(&c, 1);
      f.seekp(at);
      c = static_cast<char>(c ^ 0x5A);
      f.write(&c, 1);
    }
  }
  auto reopened = ApproxCache::open(CacheOptions{.path = dir_.string(), .compress = false},
                                    std::make_unique<NgramEmbedder>());
  if (!reopened.ok()) {
    // Refusing a damaged cache outright is acceptable; serving damage is not.
    EXPECT_EQ(reopened.error().code, Errc::corrupt_data) << reopened.error().message;
    return;
  }
  auto& cache = *reopened;
  for (int i = 0; i < 6; ++i) {
    std::string prompt = "a large red circle moving right on a sand background number " + std::to_string(i);
    auto r = cache->lookup(shapes_key(), prompt);
    ASSERT_TRUE(r.ok()) << r.error().message;
    if (!r->has_value()) continue;
    // Whatever is served is exactly what some insert stored.
    bool matches_one = false;
    for (int j = 0; j < 6; ++j) matches_one |= max_abs_diff((*r)->latent, make_latent(j, (*r)->start_step)) < 1e-6;
    EXPECT_TRUE(matches_one) << prompt;
  }
}

TEST_F(ApproxCacheTest, CreatesMissingParentDirectories) {
  auto cache = ApproxCache::open(CacheOptions{.path = (dir_ / "a" / "b").string()}, std::make_unique<NgramEmbedder>());
  ASSERT_TRUE(cache.ok()) << cache.error().message;
  EXPECT_TRUE(fs::is_directory(dir_ / "a" / "b"));
}

TEST_F(ApproxCacheTest, RejectsBadOptionsAndInserts) {
  EXPECT_FALSE(ApproxCache::open(CacheOptions{}, std::make_unique<NgramEmbedder>()).ok());
  CacheOptions bad;
  bad.path = dir_.string();
  bad.store_fractions = {1.5};
  EXPECT_EQ(ApproxCache::open(bad, std::make_unique<NgramEmbedder>()).error().code, Errc::invalid_argument);
  auto cache = open();
  EXPECT_FALSE(cache->insert(shapes_key(), kRedOnSand, {}).ok());
  EXPECT_FALSE(cache->insert(shapes_key(), kRedOnSand, latents_for(1, {25})).ok());
  std::vector<uint8_t> short_mask(10, 1);
  EXPECT_FALSE(cache->insert(shapes_key(), kRedOnSand, latents_for(1, {4}), short_mask).ok());
}

TEST_F(ApproxCacheTest, FitsTheEmbedderOnlyWhileEmptyAndKeepsItAcrossReopens) {
  std::string id_before;
  {
    auto cache = open();
    id_before = cache->embedder_id();
    std::vector<std::string> corpus{kRedOnSand, kBlueOnNavy, "a small green triangle moving up on a gray background"};
    ASSERT_TRUE(cache->fit_embedder(corpus).ok());
    EXPECT_NE(cache->embedder_id(), id_before);
    ASSERT_TRUE(cache->insert(shapes_key(), kRedOnSand, latents_for(1, {4, 8, 12})).ok());
    EXPECT_FALSE(cache->fit_embedder(corpus).ok());
  }
  auto cache = open();
  EXPECT_NE(cache->embedder_id(), id_before);
  EXPECT_TRUE(cache->lookup(shapes_key(), kRedOnSand)->has_value());
}

}  // namespace
}  // namespace reel::cachestore
