#include "scheduler/core/rebalance.h"

#include <gtest/gtest.h>

namespace moe::scheduler {
namespace {

TEST(WorstLayerTest, SmallestEntry) {
  EXPECT_DOUBLE_EQ(WorstLayer({0.9, 0.4, 0.7}), 0.4);
  EXPECT_DOUBLE_EQ(WorstLayer({}), 1.0);
}

TEST(DecideRebalanceTest, NeedsImbalanceTokensAndInterval) {
  RebalanceConfig config;
  config.threshold = 0.8;
  config.min_interval = absl::Seconds(30);
  config.min_tokens = 1000;
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  RebalanceInputs in{{0.95, 0.5}, 5000, t0 + absl::Seconds(31), t0};
  RebalanceDecision d = DecideRebalance(in, config);
  EXPECT_TRUE(d.rebalance);
  EXPECT_NE(d.why.find("layer 1"), std::string::npos) << d.why;

  in.now = t0 + absl::Seconds(29);
  EXPECT_FALSE(DecideRebalance(in, config).rebalance) << "too soon";
  in.now = t0 + absl::Seconds(31);
  in.window_tokens = 999;
  EXPECT_FALSE(DecideRebalance(in, config).rebalance) << "too little load to judge";
  in.window_tokens = 5000;
  in.balancedness = {0.95, 0.8};
  EXPECT_FALSE(DecideRebalance(in, config).rebalance) << "at the threshold";
  in.balancedness = {0.5};
  config.enabled = false;
  EXPECT_FALSE(DecideRebalance(in, config).rebalance) << "disabled";
}

}  // namespace
}  // namespace moe::scheduler
