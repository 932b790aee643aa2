#include "cachestore/policy.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace reel::cachestore {
namespace {

EntryMeta make_entry(uint64_t id, int stored_step, uint64_t hits, double compute_saved,
                     uint64_t last_access, uint64_t bytes) {
  EntryMeta meta;
  meta.id = id;
  meta.steps = {stored_step / 2, stored_step};
  meta.hits = hits;
  meta.compute_saved = compute_saved;
  meta.last_access = last_access;
  meta.bytes = bytes;
  return meta;
}

// A: used longest ago, but hit often and at a large K.
// B: hit once at a small K: the least compute saved.
// C: recent and often hit, but a hundred times larger than the others.
std::vector<EntryMeta> designed_case() {
  return {
      make_entry(1, 20, 10, 200, /*last_access=*/1, /*bytes=*/100),    // A
      make_entry(2, 10, 1, 10, /*last_access=*/5, /*bytes=*/100),      // B
      make_entry(3, 20, 5, 100, /*last_access=*/9, /*bytes=*/10'000),  // C
  };
}

TEST(Policy, ParsesAndNamesEveryKind) {
  for (PolicyKind kind : {PolicyKind::lru, PolicyKind::lcbfu, PolicyKind::cost_aware}) {
    auto parsed = parse_policy(policy_name(kind));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, kind);
  }
  EXPECT_EQ(*parse_policy("cost-aware"), PolicyKind::cost_aware);
  auto bad = parse_policy("lfu");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, Errc::invalid_argument);
}

TEST(Policy, EachPolicyEvictsADifferentEntryInTheDesignedCase) {
  auto entries = designed_case();
  EXPECT_EQ(choose_victims(entries, 1, PolicyKind::lru), std::vector<uint64_t>{1});
  EXPECT_EQ(choose_victims(entries, 1, PolicyKind::lcbfu), std::vector<uint64_t>{2});
  EXPECT_EQ(choose_victims(entries, 1, PolicyKind::cost_aware), std::vector<uint64_t>{3});
}

TEST(Policy, StepsSavedPerHitStartsAtTheLargestStoredStepAndFollowsMeasuredSavings) {
  EntryMeta fresh = make_entry(1, 24, 0, 0, 1, 100);
  EXPECT_DOUBLE_EQ(steps_saved_per_hit(fresh), 24.0);
  EntryMeta used = make_entry(2, 24, 99, 99 * 8.0, 1, 100);  // hits started at step 8
  EXPECT_NEAR(steps_saved_per_hit(used), 8.16, 1e-9);          // (792 + 24) / 100
  EntryMeta empty;
  EXPECT_DOUBLE_EQ(steps_saved_per_hit(empty), 0.0);
}

TEST(Policy, CostAwareDoesNotEvictANewEntryBeforeAnOldOneThatSavesLess) {
  EntryMeta old_entry = make_entry(1, 10, 1, 10, /*last_access=*/1, 100);  // (10 + 10) / 100
  EntryMeta new_entry = make_entry(2, 30, 0, 0, /*last_access=*/2, 100);   // (0 + 30) / 100
  std::vector<EntryMeta> entries = {old_entry, new_entry};
  EXPECT_EQ(choose_victims(entries, 1, PolicyKind::cost_aware), std::vector<uint64_t>{1});
  // LCBFU as NIRVANA defines it scores a never-hit entry 0: the new entry goes first.
  EXPECT_EQ(choose_victims(entries, 1, PolicyKind::lcbfu), std::vector<uint64_t>{2});
}

TEST(Policy, LcbfuBreaksTiesByRecency) {
  std::vector<EntryMeta> entries = {
      make_entry(1, 20, 0, 0, /*last_access=*/7, 100),
      make_entry(2, 10, 0, 0, /*last_access=*/3, 100),
      make_entry(3, 30, 0, 0, /*last_access=*/5, 100),
  };
  EXPECT_EQ(choose_victims(entries, 300, PolicyKind::lcbfu), (std::vector<uint64_t>{2, 3, 1}));
}

TEST(Policy, VictimsFreeAtLeastTheBytesAskedAndNoMore) {
  std::vector<EntryMeta> entries = {
      make_entry(1, 20, 0, 0, 1, 100),
      make_entry(2, 20, 0, 0, 2, 250),
      make_entry(3, 20, 0, 0, 3, 100),
  };
  EXPECT_TRUE(choose_victims(entries, 0, PolicyKind::lru).empty());
  EXPECT_EQ(choose_victims(entries, 100, PolicyKind::lru), std::vector<uint64_t>{1});
  EXPECT_EQ(choose_victims(entries, 101, PolicyKind::lru), (std::vector<uint64_t>{1, 2}));
  EXPECT_EQ(choose_victims(entries, 10'000, PolicyKind::lru), (std::vector<uint64_t>{1, 2, 3}));
  EXPECT_TRUE(choose_victims({}, 100, PolicyKind::cost_aware).empty());
}

TEST(Policy, AHitMovesAnEntryBehindTheOthersUnderEveryPolicy) {
  for (PolicyKind kind : {PolicyKind::lru, PolicyKind::lcbfu, PolicyKind::cost_aware}) {
    std::vector<EntryMeta> entries = {
        make_entry(1, 20, 0, 0, 1, 100),
        make_entry(2, 20, 0, 0, 2, 100),
    };
    entries[0].hits = 1;
    entries[0].compute_saved = 20;
    entries[0].last_access = 3;
    EXPECT_EQ(choose_victims(entries, 1, kind), std::vector<uint64_t>{2}) << policy_name(kind);
  }
}

}  // namespace
}  // namespace reel::cachestore
