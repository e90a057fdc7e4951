#include "scheduler/core/rebalance.h"

#include <gtest/gtest.h>

namespace moe::scheduler {
namespace {

// 1 layer x 4 experts on 2 instances: experts 0, 2 on instance 0; 1, 3 on instance 1.
PlacementPlan TwoInstancePlan() {
  PlacementPlan plan;
  plan.instances = 2;
  plan.layers = 1;
  plan.experts = 4;
  plan.replicas = {{{0, 1.0}}, {{1, 1.0}}, {{0, 1.0}}, {{1, 1.0}}};
  return plan;
}

PlacementProblem Problem(std::vector<double> load) {
  PlacementProblem p;
  p.layers = 1;
  p.experts = 4;
  p.instances = 2;
  p.load = std::move(load);
  return p;
}

TEST(LayerBalancednessTest, MeanOverMaxOfInstanceLoads) {
  // Instance 0: 300 + 100 = 400; instance 1: 100 + 100 = 200 -> mean 300 / max 400.
  EXPECT_DOUBLE_EQ(LayerBalancedness(Problem({300, 100, 100, 100}), TwoInstancePlan())[0], 0.75);
  EXPECT_DOUBLE_EQ(LayerBalancedness(Problem({1, 1, 1, 1}), TwoInstancePlan())[0], 1.0);
  // No load at all: balanced by definition.
  EXPECT_DOUBLE_EQ(LayerBalancedness(Problem({0, 0, 0, 0}), TwoInstancePlan())[0], 1.0);
}

TEST(LayerBalancednessTest, SharesAndSpeeds) {
  PlacementPlan plan = TwoInstancePlan();
  plan.At(0, 0) = {{0, 0.5}, {1, 0.5}};  // expert 0 split over both instances
  // Instance 0: 150 + 100 = 250; instance 1: 150 + 100 + 100 = 350.
  EXPECT_DOUBLE_EQ(LayerBalancedness(Problem({300, 100, 100, 100}), plan)[0], 300.0 / 350.0);
  // Instance 1 twice as fast: 250 vs 175 -> mean 212.5 / 250.
  EXPECT_DOUBLE_EQ(LayerBalancedness(Problem({300, 100, 100, 100}), plan, {1.0, 2.0})[0],
                   212.5 / 250.0);
}

TEST(LayerBalancednessTest, ShapeMismatchCountsAsBalanced) {
  PlacementProblem p = Problem({300, 100, 100, 100});
  p.experts = 3;
  p.load.resize(3);
  EXPECT_EQ(LayerBalancedness(p, TwoInstancePlan()), std::vector<double>{1.0});
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
