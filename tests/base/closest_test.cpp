#include "base/closest.hpp"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

namespace reel {
namespace {

TEST(EditDistance, CountsInsertionsDeletionsAndSubstitutions) {
  EXPECT_EQ(edit_distance("", ""), 0U);
  EXPECT_EQ(edit_distance("steps", "steps"), 0U);
  EXPECT_EQ(edit_distance("stepz", "steps"), 1U);
  EXPECT_EQ(edit_distance("step", "steps"), 1U);
  EXPECT_EQ(edit_distance("kitten", "sitting"), 3U);
  EXPECT_EQ(edit_distance("", "abc"), 3U);
}

TEST(ClosestName, SuggestsANearKeyAndNothingForAFarOne) {
  const std::set<std::string> keys = {"train.lr", "train.steps", "train.batch", "sample.steps"};
  EXPECT_EQ(closest_name("train.stepz", keys), "train.steps");
  EXPECT_EQ(closest_name("train.btach", keys), "train.batch");
  EXPECT_EQ(closest_name("sample.step", keys), "sample.steps");
  EXPECT_EQ(closest_name("model.colour", keys), "");
  EXPECT_EQ(closest_name("x", std::vector<std::string>{"y"}), "y");  // one edit is always allowed
  EXPECT_EQ(closest_name("x", std::vector<std::string>{"yz"}), "");
}

}  // namespace
}  // namespace reel
