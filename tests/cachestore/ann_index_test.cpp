#include "cachestore/ann_index.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <set>
#include <vector>

namespace reel::cachestore {
namespace {

std::vector<float> random_unit(std::mt19937& rng, int dim) {
  std::normal_distribution<float> normal;
  std::vector<float> v(static_cast<size_t>(dim));
  double sum = 0.0;
  for (float& x : v) {
    x = normal(rng);
    sum += static_cast<double>(x) * x;
  }
  for (float& x : v) x = static_cast<float>(x / std::sqrt(sum));
  return v;
}

float dot(const std::vector<float>& a, const std::vector<float>& b) {
  float sum = 0.0F;
  for (size_t i = 0; i < a.size(); ++i) sum += a[i] * b[i];
  return sum;
}

TEST(AnnIndex, FindsAnAddedVectorAsItsOwnNearestNeighbour) {
  AnnIndex index(8);
  std::mt19937 rng(1);
  auto a = random_unit(rng, 8);
  auto b = random_unit(rng, 8);
  ASSERT_TRUE(index.add(10, a).ok());
  ASSERT_TRUE(index.add(20, b).ok());
  EXPECT_EQ(index.size(), 2u);
  auto found = index.search(a, 2);
  ASSERT_TRUE(found.ok());
  ASSERT_EQ(found->size(), 2u);
  EXPECT_EQ((*found)[0].id, 10u);
  EXPECT_NEAR((*found)[0].similarity, 1.0F, 1e-5F);
  EXPECT_EQ((*found)[1].id, 20u);
  EXPECT_NEAR((*found)[1].similarity, dot(a, b), 1e-5F);
}

TEST(AnnIndex, ScoresCosineSimilarityWhateverTheInputLength) {
  AnnIndex index(3);
  std::vector<float> x = {3.0F, 0.0F, 0.0F};
  std::vector<float> diagonal = {1.0F, 1.0F, 0.0F};
  ASSERT_TRUE(index.add(1, x).ok());
  auto found = index.search(diagonal, 1);
  ASSERT_TRUE(found.ok());
  ASSERT_EQ(found->size(), 1u);
  EXPECT_NEAR((*found)[0].similarity, std::sqrt(0.5F), 1e-5F);
}

TEST(AnnIndex, RejectsVectorsOfTheWrongShapeOrValue) {
  AnnIndex index(4);
  std::vector<float> short_vector = {1.0F, 0.0F, 0.0F};
  std::vector<float> zeros(4, 0.0F);
  std::vector<float> nan = {1.0F, std::numeric_limits<float>::quiet_NaN(), 0.0F, 0.0F};
  for (const auto& bad : {short_vector, zeros, nan}) {
    Status added = index.add(1, bad);
    ASSERT_FALSE(added.ok());
    EXPECT_EQ(added.error().code, Errc::invalid_argument);
    auto searched = index.search(bad, 1);
    ASSERT_FALSE(searched.ok());
    EXPECT_EQ(searched.error().code, Errc::invalid_argument);
  }
  EXPECT_EQ(index.size(), 0u);
}

TEST(AnnIndex, SearchesAnEmptyIndexAndSmallKWithoutError) {
  AnnIndex index(4);
  std::vector<float> q = {1.0F, 0.0F, 0.0F, 0.0F};
  auto none = index.search(q, 5);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
  ASSERT_TRUE(index.add(7, q).ok());
  auto zero_k = index.search(q, 0);
  ASSERT_TRUE(zero_k.ok());
  EXPECT_TRUE(zero_k->empty());
  auto more_than_held = index.search(q, 10);
  ASSERT_TRUE(more_than_held.ok());
  EXPECT_EQ(more_than_held->size(), 1u);
}

TEST(AnnIndex, AddingAnExistingIdReplacesItsVector) {
  AnnIndex index(2);
  std::vector<float> east = {1.0F, 0.0F};
  std::vector<float> north = {0.0F, 1.0F};
  ASSERT_TRUE(index.add(5, east).ok());
  std::vector<float> diagonal = {0.7F, 0.7F};
  ASSERT_TRUE(index.add(6, diagonal).ok());
  ASSERT_TRUE(index.add(5, north).ok());
  EXPECT_EQ(index.size(), 2u);
  auto found = index.search(north, 1);
  ASSERT_TRUE(found.ok());
  ASSERT_EQ(found->size(), 1u);
  EXPECT_EQ((*found)[0].id, 5u);
  EXPECT_NEAR((*found)[0].similarity, 1.0F, 1e-5F);
}

TEST(AnnIndex, GrowsPastItsInitialCapacity) {
  AnnIndex index(16, AnnOptions{.initial_capacity = 4});
  std::mt19937 rng(2);
  std::vector<std::vector<float>> vectors;
  for (uint64_t id = 0; id < 100; ++id) {
    vectors.push_back(random_unit(rng, 16));
    ASSERT_TRUE(index.add(id, vectors.back()).ok());
  }
  EXPECT_EQ(index.size(), 100u);
  for (uint64_t id = 0; id < 100; id += 9) {
    auto found = index.search(vectors[id], 1);
    ASSERT_TRUE(found.ok());
    ASSERT_EQ(found->size(), 1u);
    EXPECT_EQ((*found)[0].id, id);
  }
}

TEST(AnnIndex, HasRecallAtOneOfAtLeast95PercentAgainstBruteForce) {
  constexpr int kDim = 64;
  constexpr int kCount = 10000;
  constexpr int kQueries = 500;
  std::mt19937 rng(3);
  AnnIndex index(kDim);
  std::vector<std::vector<float>> data;
  for (int i = 0; i < kCount; ++i) {
    data.push_back(random_unit(rng, kDim));
    ASSERT_TRUE(index.add(static_cast<uint64_t>(i), data.back()).ok());
  }
  int hits = 0;
  for (int q = 0; q < kQueries; ++q) {
    std::vector<float> query = random_unit(rng, kDim);
    size_t best = 0;
    float best_similarity = -2.0F;
    for (size_t i = 0; i < data.size(); ++i) {
      float s = dot(query, data[i]);
      if (s > best_similarity) {
        best_similarity = s;
        best = i;
      }
    }
    auto found = index.search(query, 1);
    ASSERT_TRUE(found.ok());
    ASSERT_EQ(found->size(), 1u);
    hits += (*found)[0].id == best ? 1 : 0;
  }
  double recall = static_cast<double>(hits) / kQueries;
  EXPECT_GE(recall, 0.95) << "recall@1 " << recall;
}

TEST(AnnIndex, NeverReturnsRemovedIds) {
  constexpr int kDim = 32;
  std::mt19937 rng(4);
  AnnIndex index(kDim);
  std::vector<std::vector<float>> data;
  for (uint64_t id = 0; id < 2000; ++id) {
    data.push_back(random_unit(rng, kDim));
    ASSERT_TRUE(index.add(id, data.back()).ok());
  }
  std::set<uint64_t> removed;
  for (uint64_t id = 0; id < 2000; id += 2) {
    EXPECT_TRUE(index.remove(id));
    removed.insert(id);
  }
  EXPECT_FALSE(index.remove(0));      // already gone
  EXPECT_FALSE(index.remove(99999));  // never there
  EXPECT_EQ(index.size(), 1000u);
  EXPECT_FALSE(index.contains(0));
  EXPECT_TRUE(index.contains(1));
  for (uint64_t id = 0; id < 2000; id += 7) {
    auto found = index.search(data[id], 20);  // the removed vector itself as the query
    ASSERT_TRUE(found.ok());
    EXPECT_EQ(found->size(), 20u);
    for (const Neighbor& n : *found) EXPECT_FALSE(removed.contains(n.id)) << n.id;
  }
  // Added again, an id comes back with its new vector.
  ASSERT_TRUE(index.add(0, data[0]).ok());
  auto found = index.search(data[0], 1);
  ASSERT_TRUE(found.ok());
  EXPECT_EQ((*found)[0].id, 0u);
}

TEST(AnnIndex, RebuildsAfterHeavyChurnAndKeepsEveryLiveId) {
  constexpr int kDim = 16;
  std::mt19937 rng(5);
  AnnIndex index(kDim, AnnOptions{.initial_capacity = 64});
  std::vector<std::vector<float>> live;
  // 3000 inserts and 2500 removals: the deleted nodes cross the rebuild threshold.
  for (uint64_t id = 0; id < 3000; ++id) {
    live.push_back(random_unit(rng, kDim));
    ASSERT_TRUE(index.add(id, live.back()).ok());
    if (id >= 500) {
      EXPECT_TRUE(index.remove(id - 500));
    }
  }
  EXPECT_EQ(index.size(), 500u);
  for (uint64_t id = 2500; id < 3000; id += 5) {
    auto found = index.search(live[id], 1);
    ASSERT_TRUE(found.ok());
    ASSERT_EQ(found->size(), 1u);
    EXPECT_EQ((*found)[0].id, id);
  }
}

}  // namespace
}  // namespace reel::cachestore
