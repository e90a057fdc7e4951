#include "scheduler/placement/replica_split.h"

#include <gtest/gtest.h>

#include <numeric>

namespace moe::scheduler {
namespace {

TEST(SplitBySharesTest, ProportionalLargestRemainder) {
  const std::vector<Replica> rs = {{0, 0.5}, {3, 0.3}, {7, 0.2}};
  EXPECT_EQ(SplitByShares(10, rs), (std::vector<int>{5, 3, 2}));
  // 7 x (0.5, 0.3, 0.2) = 3.5, 2.1, 1.4: floors 3, 2, 1 and the one left goes to 0.5.
  EXPECT_EQ(SplitByShares(7, rs), (std::vector<int>{4, 2, 1}));
  EXPECT_EQ(SplitByShares(0, rs), (std::vector<int>{0, 0, 0}));
  EXPECT_TRUE(SplitByShares(5, {}).empty());
}

TEST(SplitBySharesTest, OffsetSpreadsTies) {
  const std::vector<Replica> rs = {{0, 0.25}, {1, 0.25}, {2, 0.25}, {3, 0.25}};
  // One token, equal shares: the offset picks who gets it, so a running counter rotates.
  for (uint64_t off = 0; off < 8; ++off) {
    std::vector<int> got = SplitByShares(1, rs, off);
    EXPECT_EQ(got[off % 4], 1) << off;
    EXPECT_EQ(std::accumulate(got.begin(), got.end(), 0), 1);
  }
  // Unequal fractional parts: the largest remainder wins every call (1.8 / 1.2 -> 2 / 1), the
  // offset only breaks exact ties.
  const std::vector<Replica> uneven = {{0, 0.6}, {1, 0.4}};
  for (uint64_t off = 0; off < 4; ++off) {
    EXPECT_EQ(SplitByShares(3, uneven, off), (std::vector<int>{2, 1})) << off;
  }
}

TEST(PickReplicaTest, CumulativeShares) {
  const std::vector<Replica> rs = {{0, 0.5}, {3, 0.3}, {7, 0.2}};
  EXPECT_EQ(PickReplica(rs, 0.0), 0);
  EXPECT_EQ(PickReplica(rs, 0.49), 0);
  EXPECT_EQ(PickReplica(rs, 0.5), 1);
  EXPECT_EQ(PickReplica(rs, 0.79), 1);
  EXPECT_EQ(PickReplica(rs, 0.8), 2);
  EXPECT_EQ(PickReplica(rs, 0.999), 2);
  EXPECT_EQ(PickReplica({}, 0.5), -1);
  EXPECT_EQ(PickReplica({{1, 0}, {2, 0}}, 0.75), 1) << "no shares: uniform";
}

}  // namespace
}  // namespace moe::scheduler
