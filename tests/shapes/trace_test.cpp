#include "models/shapes/trace.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>

#include "models/shapes/grammar.hpp"

namespace reel::models::shapes {
namespace {

TEST(ZipfTrace, IsTheSameForTheSameOptions) {
  TraceOptions o{.requests = 200, .seed = 7, .zipf_object = 1.1, .zipf_background = 0.8};
  auto a = zipf_trace(o);
  auto b = zipf_trace(o);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(*a, *b);
  o.seed = 8;
  auto c = zipf_trace(o);
  ASSERT_TRUE(c.ok());
  EXPECT_NE(*a, *c);
}

TEST(ZipfTrace, FavoursFewObjectsWhenTheExponentIsHigh) {
  auto count_top = [](double s) {
    auto trace = zipf_trace({.requests = 2000, .seed = 1, .zipf_object = s, .zipf_background = 0});
    std::map<std::string, int> counts;
    for (const auto& scene : *trace) counts[prompt(SceneSpec{scene.objects, Background::gray})]++;
    int top = 0;
    for (const auto& [p, n] : counts) top = std::max(top, n);
    return std::pair{counts.size(), top};
  };
  auto [uniform_distinct, uniform_top] = count_top(0.0);
  auto [skewed_distinct, skewed_top] = count_top(1.2);
  EXPECT_GT(uniform_distinct, 300u);  // 360 objects, 2000 draws
  EXPECT_LT(skewed_distinct, uniform_distinct);
  // Rank 1 under s = 1.2 over 360 items has probability about 0.27.
  EXPECT_GT(skewed_top, 400);
  EXPECT_LT(uniform_top, 20);
}

TEST(ZipfTrace, WritesPromptsTheGrammarParsesBack) {
  auto trace = zipf_trace({.requests = 100, .seed = 3, .max_objects = 2});
  ASSERT_TRUE(trace.ok());
  int two = 0;
  for (const auto& scene : *trace) {
    auto parsed = parse_prompt(prompt(scene));
    ASSERT_TRUE(parsed.ok()) << prompt(scene);
    EXPECT_EQ(*parsed, scene);
    two += scene.objects.size() == 2;
    if (scene.objects.size() == 2) {
      EXPECT_NE(scene.objects[0].colour, scene.objects[1].colour);
    }
  }
  EXPECT_GT(two, 20);
}

TEST(ZipfTrace, RejectsBadOptions) {
  EXPECT_FALSE(zipf_trace({.requests = -1}).ok());
  EXPECT_FALSE(zipf_trace({.zipf_object = -0.5}).ok());
  EXPECT_FALSE(zipf_trace({.max_objects = 3}).ok());
  EXPECT_EQ(all_objects().size(), 360u);
}

}  // namespace
}  // namespace reel::models::shapes
