#include "scheduler/placement/objective.h"

#include <gtest/gtest.h>

#include "scheduler/placement/greedy.h"
#include "scheduler/placement/trace.h"

namespace moe::scheduler {
namespace {

// 2 layers x 2 experts x 2 instances; values worked out by hand in the comments.
PlacementProblem SmallProblem() {
  PlacementProblem p;
  p.layers = 2;
  p.experts = 2;
  p.instances = 2;
  p.top_k = 2;
  p.bytes_per_expert = 100;
  p.load = {30, 10, 20, 20};
  p.coact = {{0, 0, 0, 12}, {0, 1, 1, 8}, {0, 0, 1, 10}};
  return p;
}

PlacementPlan SmallPlan() {
  PlacementPlan plan;
  plan.layers = 2;
  plan.experts = 2;
  plan.instances = 2;
  plan.replicas = {{{0, 1.0}}, {{1, 1.0}}, {{0, 0.5}, {1, 0.5}}, {{1, 1.0}}};
  return plan;
}

TEST(ObjectiveTest, PartsByHand) {
  PlacementProblem p = SmallProblem();
  PlacementPlan current;
  current.layers = 2;
  current.experts = 2;
  current.instances = 2;
  current.replicas = {{{1, 1.0}}, {{1, 1.0}}, {{0, 1.0}}, {{1, 1.0}}};
  p.current = current;
  const PlanObjective o = EvaluatePlan(p, SmallPlan());
  // Layer 0: i0 = 30, i1 = 10. Layer 1: i0 = 20 * 0.5 = 10, i1 = 10 + 20 = 30.
  ASSERT_EQ(o.layer_max_load.size(), 2u);
  EXPECT_DOUBLE_EQ(o.layer_max_load[0], 30);
  EXPECT_DOUBLE_EQ(o.layer_max_load[1], 30);
  EXPECT_DOUBLE_EQ(o.layer_mean_load[0], 20);
  EXPECT_DOUBLE_EQ(o.layer_balancedness[1], 20.0 / 30);
  EXPECT_DOUBLE_EQ(o.load_term, 60);
  EXPECT_DOUBLE_EQ(o.max_load, 30);
  EXPECT_DOUBLE_EQ(o.mean_load, 20);
  // 0->0: 12 tokens all arrive on i0, whose copy of 1:0 takes its share 0.5 of them -> 6 cross;
  // 1->1: none; 0->1: 10 (1:1 has no copy on i0).
  EXPECT_DOUBLE_EQ(o.transitions, 30);
  EXPECT_DOUBLE_EQ(o.cross_transitions, 16);
  EXPECT_DOUBLE_EQ(o.cross_per_token, 16.0 / 20);  // 40 expert choices / top_k 2 = 20 tokens
  // New copies: 0:0 on i0 (current: i1), 1:0 on i1 (current: i0 only).
  EXPECT_EQ(o.copies, 5);
  EXPECT_EQ(o.copies_moved, 2);
  EXPECT_EQ(o.bytes_moved, 200);
  EXPECT_DOUBLE_EQ(o.mu, 20);  // automatic: mean (layer, expert) load
  EXPECT_DOUBLE_EQ(o.cost, 60 + 0.5 * 16 + 20 * 2);
}

// Locality-first dispatch within shares: co-replicated partners keep their tokens local.
TEST(ObjectiveTest, CoReplicatedPartnersStayLocalUpToTheirShares) {
  PlacementProblem p;
  p.layers = 2;
  p.experts = 2;
  p.instances = 2;
  p.load = {40, 0, 40, 0};
  p.coact = {{0, 0, 0, 40}};
  PlacementPlan plan;
  plan.layers = 2;
  plan.experts = 2;
  plan.instances = 2;
  plan.replicas = {{{0, 0.5}, {1, 0.5}}, {{1, 1.0}}, {{0, 0.5}, {1, 0.5}}, {{0, 1.0}}};
  // 20 tokens arrive on each instance; each copy of 1:0 takes 20: none changes instance (an
  // independent draw per layer would move half of them).
  EXPECT_DOUBLE_EQ(EvaluatePlan(p, plan).cross_transitions, 0);
  // Shares 0.75 / 0.25: the copy on i1 takes only 10 of the 20 that arrive there.
  plan.replicas[2] = {{0, 0.75}, {1, 0.25}};
  EXPECT_DOUBLE_EQ(EvaluatePlan(p, plan).cross_transitions, 10);
  // One copy of 1:0, on i1: the 20 from i0 move.
  plan.replicas[2] = {{1, 1.0}};
  EXPECT_DOUBLE_EQ(EvaluatePlan(p, plan).cross_transitions, 20);
  // Two predecessors into one replicated successor: 1:0 gets 30 from 0:0 (split 15/15) and
  // 10 from 0:1 (on i1); inflow i0 = 15, i1 = 25; shares 0.5 / 0.5 of 40 = 20 each -> 15 + 20.
  p.coact = {{0, 0, 0, 30}, {0, 1, 0, 10}};
  plan.replicas[2] = {{0, 0.5}, {1, 0.5}};
  const PlanObjective o = EvaluatePlan(p, plan);
  EXPECT_DOUBLE_EQ(o.transitions, 40);
  EXPECT_DOUBLE_EQ(o.cross_transitions, 5);
}

TEST(ObjectiveTest, SpeedWeightsTheBusiestInstanceAndNoCurrentMovesNothing) {
  PlacementProblem p = SmallProblem();
  p.speed = {2, 1};
  p.weights = {.lambda = 0, .mu = 7};
  const PlanObjective o = EvaluatePlan(p, SmallPlan());
  EXPECT_DOUBLE_EQ(o.layer_max_load[0], 15);  // 30 / 2 beats 10 / 1
  EXPECT_DOUBLE_EQ(o.layer_max_load[1], 30);
  EXPECT_DOUBLE_EQ(o.layer_mean_load[0], 40.0 / 3);
  EXPECT_EQ(o.copies_moved, 0);
  EXPECT_DOUBLE_EQ(o.cost, 45);
}

TEST(ObjectiveTest, CapacityAndDeadInstances) {
  PlacementProblem p = SmallProblem();
  EXPECT_TRUE(CheckCapacity(p, SmallPlan()).ok());
  p.slots = {2, 2};
  EXPECT_EQ(CheckCapacity(p, SmallPlan()).code(), absl::StatusCode::kFailedPrecondition);
  p.slots = {};
  p.live = {true, false};
  EXPECT_EQ(p.Capacity(1), 0);
  EXPECT_FALSE(CheckCapacity(p, SmallPlan()).ok());
  // Greedy places nothing on the dead instance.
  auto plan = GreedyPlacement(p, {});
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->ReplicasOn(1), 0);
  EXPECT_EQ(plan->ReplicasOn(0), 4);
}

TEST(TraceTest, RoundTripAndErrors) {
  PlacementProblem p = SmallProblem();
  absl::StatusOr<PlacementProblem> back = ProblemFromTraceJson(TraceToJson(p));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->layers, 2);
  EXPECT_EQ(back->experts, 2);
  EXPECT_EQ(back->top_k, 2);
  EXPECT_EQ(back->bytes_per_expert, 100);
  EXPECT_EQ(back->load, p.load);
  ASSERT_EQ(back->coact.size(), 3u);
  EXPECT_EQ(back->coact[2].b, 1);
  EXPECT_EQ(back->coact[2].count, 10);
  for (const char* bad : {"", "[1]", "{\"layers\": 2}", "{\"layers\": 1, \"experts\": 2}",
                          "{\"layers\": 1, \"experts\": 2, \"load\": [[1, -1]]}",
                          "{\"layers\": 1, \"experts\": 2, \"load\": [[1]]}",
                          "{\"layers\": 2, \"experts\": 2, \"load\": [[1, 1], [1, 1]], "
                          "\"coact\": [[1, 0, 0, 5]]}",
                          "{\"layers\": 1, \"experts\": 2, \"top_k\": 3, \"load\": [[1, 1]]}"}) {
    EXPECT_EQ(ProblemFromTraceJson(bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

TEST(TraceTest, SyntheticLoadsAndCoactivationsAgree) {
  SyntheticTraceParams s{.layers = 3,
                         .experts = 8,
                         .top_k = 2,
                         .tokens = 1000,
                         .zipf = 1.2,
                         .affinity = 0.7,
                         .successors = 8,
                         .seed = 3};
  PlacementProblem p = SyntheticTrace(s);
  ASSERT_EQ(p.load.size(), 24u);
  for (int l = 0; l < 3; ++l) {
    double sum = 0;
    for (int e = 0; e < 8; ++e) sum += p.Load(l, e);
    EXPECT_NEAR(sum, 2000, 8) << "layer " << l;
  }
  // With every successor recorded, a layer's co-activations add up to its load.
  double out0 = 0;
  for (const CoActivation& c : p.coact) out0 += c.layer == 0 ? c.count : 0;
  EXPECT_NEAR(out0, 2000, 40);
  // A skew shift keeps the partners (the largest successor) but re-ranks popularity.
  s.popularity_seed = 99;
  PlacementProblem shifted = SyntheticTrace(s);
  EXPECT_NE(shifted.load, p.load);
  EXPECT_EQ(SyntheticTrace(s).load, shifted.load) << "deterministic";
}

}  // namespace
}  // namespace moe::scheduler
