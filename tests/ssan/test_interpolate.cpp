#include <gtest/gtest.h>

#include "emt/common/error.hpp"
#include "emt/ssan/interpolate.hpp"

namespace emt::ssan {

TEST(PlanFill, SingleSlicesAndRecursiveMidpoints) {
  auto p = plan_fill({5}, 20);
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].lower, 4);
  EXPECT_EQ(p[0].upper, 6);
  EXPECT_TRUE(p[0].midpoint);
  // Three in a row (gap of 4): the middle first, then each half.
  p = plan_fill({7, 8, 9}, 20);
  ASSERT_EQ(p.size(), 3u);
  EXPECT_EQ(p[0].z, 8);
  EXPECT_EQ(p[0].lower, 6);
  EXPECT_EQ(p[0].upper, 10);
  EXPECT_EQ(p[1].z, 7);
  EXPECT_EQ(p[1].upper, 8);
  EXPECT_EQ(p[2].z, 9);
  EXPECT_EQ(p[2].lower, 8);
  for (const auto& s : p) EXPECT_TRUE(s.midpoint);
}

TEST(PlanFill, EvenRunsFallBackToNearestNeighbours) {
  const auto p = plan_fill({3, 4}, 10);
  ASSERT_EQ(p.size(), 2u);
  for (const auto& s : p) {
    EXPECT_FALSE(s.midpoint);
    EXPECT_EQ(s.lower, 2);
    EXPECT_EQ(s.upper, 5);
  }
}

TEST(PlanFill, EdgeSlicesHaveNoNeighbour) {
  EXPECT_THROW((void)plan_fill({0}, 10), Error);
  EXPECT_THROW((void)plan_fill({8, 9}, 10), Error);
}

}  // namespace emt::ssan
