#include "scheduler/scaling/decide_scale.h"

#include <gtest/gtest.h>

#include "common/clock.h"

namespace moe::scheduler {
namespace {

ScaleParams Params() {
  ScaleParams p;
  p.min_instances = 1;
  p.max_instances = 6;
  p.target_utilisation = 0.6;
  p.high_water = 0.8;
  p.low_water = 0.3;
  p.up_cooldown = absl::Seconds(30);
  p.down_cooldown = absl::Seconds(120);
  p.max_step_up = 2;
  p.max_step_down = 1;
  p.instance_capacity_tps = 1000;
  return p;
}

ScaleInput Input(double demand, int current, absl::Time last_action = absl::InfinitePast()) {
  ScaleInput in;
  in.demand_tps = demand;
  in.current = current;
  in.measured_tps.assign(current, 0.0);
  in.last_action = last_action;
  return in;
}

TEST(DecideScaleTest, ValidatesParams) {
  EXPECT_TRUE(ValidateScaleParams(Params()).ok());
  ScaleParams p = Params();
  p.min_instances = 0;
  EXPECT_FALSE(ValidateScaleParams(p).ok());
  p = Params();
  p.max_instances = 0;
  EXPECT_FALSE(ValidateScaleParams(p).ok());
  p = Params();
  p.low_water = 0.7;  // above the target: no hysteresis
  EXPECT_FALSE(ValidateScaleParams(p).ok());
  p = Params();
  p.high_water = 0.5;
  EXPECT_FALSE(ValidateScaleParams(p).ok());
  p = Params();
  p.instance_capacity_tps = 0;
  EXPECT_FALSE(ValidateScaleParams(p).ok());
  p = Params();
  p.max_step_down = 0;
  EXPECT_FALSE(ValidateScaleParams(p).ok());
}

TEST(DecideScaleTest, HoldsInsideTheBand) {
  FakeClock clock;
  // 2 instances x 1000 tokens/s, demand 1000: utilisation 0.5.
  ScaleDecision d = DecideScale(Input(1000, 2), clock.Now(), Params());
  EXPECT_EQ(d.desired, 2);
  EXPECT_EQ(d.reason, ScaleReason::kSteady);
  EXPECT_DOUBLE_EQ(d.utilisation, 0.5);
  EXPECT_DOUBLE_EQ(d.instance_capacity, 1000);
}

TEST(DecideScaleTest, GrowsToTheTargetUtilisationAboveHighWater) {
  FakeClock clock;
  // 2 instances, demand 1700: utilisation 0.85 > 0.8; 1700 / (1000 * 0.6) = 2.83 -> 3.
  ScaleDecision d = DecideScale(Input(1700, 2), clock.Now(), Params());
  EXPECT_EQ(d.desired, 3);
  EXPECT_EQ(d.reason, ScaleReason::kHighLoad);
  EXPECT_NEAR(d.utilisation, 0.85, 1e-9);
}

TEST(DecideScaleTest, StepUpIsBounded) {
  FakeClock clock;
  // Demand for 10 instances; max_step_up 2 from 1 -> 3.
  ScaleDecision d = DecideScale(Input(6000, 1), clock.Now(), Params());
  EXPECT_EQ(d.desired, 3);
  ScaleParams p = Params();
  p.max_step_up = 1;
  EXPECT_EQ(DecideScale(Input(6000, 1), clock.Now(), p).desired, 2);
  p.max_step_up = 100;  // then max bounds it
  EXPECT_EQ(DecideScale(Input(6000, 1), clock.Now(), p).desired, 6);
}

TEST(DecideScaleTest, RespectsMax) {
  FakeClock clock;
  ScaleDecision d = DecideScale(Input(100000, 6), clock.Now(), Params());
  EXPECT_EQ(d.desired, 6);
  EXPECT_EQ(d.reason, ScaleReason::kAtMax);
  // Above max (max lowered): back to max at once, even right after an action.
  d = DecideScale(Input(100000, 8, clock.Now()), clock.Now(), Params());
  EXPECT_EQ(d.desired, 6);
  EXPECT_EQ(d.reason, ScaleReason::kAboveMax);
}

TEST(DecideScaleTest, RespectsMinWithoutCooldown) {
  FakeClock clock;
  ScaleParams p = Params();
  p.min_instances = 2;
  // No load at all: never below min.
  ScaleDecision d = DecideScale(Input(0, 2), clock.Now(), p);
  EXPECT_EQ(d.desired, 2);
  EXPECT_EQ(d.reason, ScaleReason::kAtMin);
  // An instance died (1 < min): restored right after the last action.
  d = DecideScale(Input(0, 1, clock.Now()), clock.Now(), p);
  EXPECT_EQ(d.desired, 2);
  EXPECT_EQ(d.reason, ScaleReason::kBelowMin);
  // Empty pool at start.
  EXPECT_EQ(DecideScale(Input(0, 0), clock.Now(), p).desired, 2);
}

TEST(DecideScaleTest, UpCooldownCountsFromTheLastAction) {
  FakeClock clock;
  const absl::Time action = clock.Now();
  clock.Advance(absl::Seconds(29));
  ScaleDecision d = DecideScale(Input(3000, 2, action), clock.Now(), Params());
  EXPECT_EQ(d.desired, 2);
  EXPECT_EQ(d.reason, ScaleReason::kUpCoolingDown);
  clock.Advance(absl::Seconds(1));
  d = DecideScale(Input(3000, 2, action), clock.Now(), Params());
  EXPECT_EQ(d.desired, 4);
  EXPECT_EQ(d.reason, ScaleReason::kHighLoad);
}

TEST(DecideScaleTest, DownCooldownCountsFromTheLastAction) {
  FakeClock clock;
  const absl::Time action = clock.Now();
  clock.Advance(absl::Seconds(119));
  // 4 instances, demand 400: utilisation 0.1.
  ScaleDecision d = DecideScale(Input(400, 4, action), clock.Now(), Params());
  EXPECT_EQ(d.desired, 4);
  EXPECT_EQ(d.reason, ScaleReason::kDownCoolingDown);
  clock.Advance(absl::Seconds(1));
  d = DecideScale(Input(400, 4, action), clock.Now(), Params());
  EXPECT_EQ(d.desired, 3);  // max_step_down 1
  EXPECT_EQ(d.reason, ScaleReason::kLowLoad);
}

TEST(DecideScaleTest, StepDownIsBoundedAndKeepsTheTarget) {
  FakeClock clock;
  ScaleParams p = Params();
  p.max_step_down = 3;
  // 6 instances, idle: down by 3.
  EXPECT_EQ(DecideScale(Input(0, 6), clock.Now(), p).desired, 3);
  // 6 instances, demand 1000 (utilisation 0.17): 1000 / 600 = 1.67 -> 2 keeps <= target.
  ScaleDecision d = DecideScale(Input(1000, 6), clock.Now(), p);
  EXPECT_EQ(d.desired, 3);  // 6 - 3
  p.max_step_down = 10;
  d = DecideScale(Input(1000, 6), clock.Now(), p);
  EXPECT_EQ(d.desired, 2);
  EXPECT_LE(1000 / (1000.0 * d.desired), p.target_utilisation);
}

TEST(DecideScaleTest, UnderLowWaterButNeededHolds) {
  FakeClock clock;
  ScaleParams p = Params();
  p.low_water = 0.5;
  // 2 instances, demand 900: utilisation 0.45 < 0.5, but 1 instance would be at 0.9 > 0.6.
  ScaleDecision d = DecideScale(Input(900, 2), clock.Now(), p);
  EXPECT_EQ(d.desired, 2);
  EXPECT_EQ(d.reason, ScaleReason::kNeeded);
}

TEST(DecideScaleTest, MeasuredThroughputAboveConfiguredRaisesCapacity) {
  FakeClock clock;
  ScaleInput in = Input(2500, 2);
  // Configured 1000 each would be utilisation 1.25; one instance proved 3000 tokens/s.
  in.measured_tps = {3000, 500};
  ScaleDecision d = DecideScale(in, clock.Now(), Params());
  EXPECT_DOUBLE_EQ(d.instance_capacity, 2000);  // mean of max(1000, 3000), max(1000, 500)
  EXPECT_NEAR(d.utilisation, 0.625, 1e-9);
  EXPECT_EQ(d.desired, 2);
  EXPECT_EQ(d.reason, ScaleReason::kSteady);
}

TEST(DecideScaleTest, InstancesStillStartingCountAtTheConfiguredCapacity) {
  FakeClock clock;
  ScaleInput in = Input(1700, 3);
  in.measured_tps = {1500};  // 1 registered, 2 starting
  ScaleDecision d = DecideScale(in, clock.Now(), Params());
  EXPECT_DOUBLE_EQ(d.instance_capacity, 1500);
  EXPECT_NEAR(d.utilisation, 1700.0 / 4500.0, 1e-9);
  EXPECT_EQ(d.desired, 3);
}

// A closed loop at a constant demand: the pool moves in one direction only and settles
// (no flapping), whatever the demand.
TEST(DecideScaleTest, NoFlappingAtAnyConstantDemand) {
  ScaleParams p = Params();
  p.max_instances = 10;
  for (double demand = 0; demand <= 12000; demand += 137) {
    for (int start = 1; start <= 10; ++start) {
      FakeClock clock;
      int current = start;
      absl::Time last = absl::InfinitePast();
      int direction = 0;
      int changes = 0;
      for (int step = 0; step < 200; ++step) {
        const ScaleDecision d = DecideScale(Input(demand, current, last), clock.Now(), p);
        if (d.desired != current) {
          const int dir = d.desired > current ? 1 : -1;
          ASSERT_TRUE(direction == 0 || direction == dir)
              << "flapped at demand " << demand << " from " << start << " at step " << step;
          direction = dir;
          ++changes;
          current = d.desired;
          last = clock.Now();
        }
        clock.Advance(absl::Seconds(10));
      }
      // Settled: a further long wait changes nothing.
      clock.Advance(absl::Hours(1));
      EXPECT_EQ(DecideScale(Input(demand, current, last), clock.Now(), p).desired, current)
          << "demand " << demand << " start " << start;
      EXPECT_LE(changes, 10);
      // Settled inside the band, or at a bound.
      const double u = demand / (1000.0 * current);
      EXPECT_TRUE((u >= p.low_water || current == 1 ||
                   demand / (1000.0 * (current - 1)) > p.target_utilisation) &&
                  (u <= p.high_water || current == p.max_instances))
          << "demand " << demand << " settled at " << current;
    }
  }
}

}  // namespace
}  // namespace moe::scheduler
