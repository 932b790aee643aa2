#include "cachestore/start_step.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

namespace reel::cachestore {
namespace {

const std::vector<int> kStored = {5, 10, 15, 20, 25, 30, 35, 40, 45};

TEST(StartStep, MoreSimilarPromptsStartLater) {
  StartStepTable table = StartStepTable::defaults();
  EXPECT_EQ(table.start_step(0.99F, 50, kStored), 30);  // 0.6 * 50
  EXPECT_EQ(table.start_step(0.95F, 50, kStored), 30);  // a row's threshold is inclusive
  EXPECT_EQ(table.start_step(0.90F, 50, kStored), 20);  // 0.4 * 50
  EXPECT_EQ(table.start_step(0.80F, 50, kStored), 10);  // 0.2 * 50
  EXPECT_EQ(table.start_step(0.74F, 50, kStored), -1);  // below every row: a miss
}

TEST(StartStep, PicksTheLargestStoredStepNotBeyondTheFraction) {
  StartStepTable table = StartStepTable::defaults();
  std::vector<int> stored = {12, 3, 7};  // any order
  EXPECT_EQ(table.start_step(0.99F, 20, stored), 12);  // limit 12
  EXPECT_EQ(table.start_step(0.90F, 20, stored), 7);   // limit 8
  EXPECT_EQ(table.start_step(0.80F, 20, stored), 3);   // limit 4
  EXPECT_EQ(table.start_step(0.80F, 10, stored), -1);  // limit 2: nothing stored that early
}

TEST(StartStep, NeverStartsAtStepZeroOrFromNothing) {
  StartStepTable table = StartStepTable::defaults();
  std::vector<int> only_zero = {0};
  EXPECT_EQ(table.start_step(1.0F, 50, only_zero), -1);
  EXPECT_EQ(table.start_step(1.0F, 50, {}), -1);
  EXPECT_EQ(table.start_step(1.0F, 0, kStored), -1);
  EXPECT_EQ(table.start_step(std::nanf(""), 50, kStored), -1);
}

TEST(StartStep, FractionTimesStepsIsNotLostToRounding) {
  StartStepTable table{{{0.5F, 0.6}}};
  std::vector<int> stored = {6};
  EXPECT_EQ(table.start_step(0.9F, 10, stored), 6);  // 0.6 * 10 is 5.999... in binary
}

TEST(StartStep, ParsesASpecInAnyOrderAndSortsIt) {
  auto table = StartStepTable::parse(" 0.75:0.2, 0.95 : 0.6,0.85:0.4 ");
  ASSERT_TRUE(table.ok()) << table.error().message;
  EXPECT_EQ(*table, StartStepTable::defaults());
  EXPECT_EQ(table->to_string(), "0.95:0.6,0.85:0.4,0.75:0.2");
  auto again = StartStepTable::parse(table->to_string());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *table);
}

TEST(StartStep, RejectsMalformedOrInconsistentSpecs) {
  for (const char* spec : {"", "  ", "0.9", "0.9:", ":0.5", "x:0.5", "0.9:0.5,", "0.9:0.5;0.8:0.4",
                           "1.5:0.5", "0.9:1.5", "0.9:-0.1", "0.9:0.5,0.9:0.4",
                           "0.9:0.3,0.8:0.5", "0.9:0.5x", "nan:0.5", "0.9:inf"}) {
    auto table = StartStepTable::parse(spec);
    ASSERT_FALSE(table.ok()) << "accepted \"" << spec << "\"";
    EXPECT_EQ(table.error().code, Errc::invalid_argument) << spec;
  }
}

}  // namespace
}  // namespace reel::cachestore
