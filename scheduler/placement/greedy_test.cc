#include "scheduler/placement/greedy.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <utility>

#include "scheduler/placement/objective.h"
#include "scheduler/placement/trace.h"

namespace moe::scheduler {
namespace {

PlacementProblem Problem(int layers, int experts, int instances) {
  PlacementProblem p;
  p.layers = layers;
  p.experts = experts;
  p.instances = instances;
  return p;
}

// Zipf-like skew: expert e of every layer gets 1000 / (e + 1) tokens, rotated by layer.
std::vector<double> SkewedLoad(int layers, int experts) {
  std::vector<double> load;
  for (int l = 0; l < layers; ++l) {
    for (int e = 0; e < experts; ++e) load.push_back(1000.0 / (((e + l) % experts) + 1));
  }
  return load;
}

void ExpectWellFormed(const PlacementProblem& problem, const PlacementPlan& plan) {
  ASSERT_TRUE(ValidatePlan(plan).ok()) << ValidatePlan(plan);  // >= 1 replica, shares sum to 1
  for (int i = 0; i < problem.instances; ++i) {
    EXPECT_LE(plan.ReplicasOn(i), problem.Capacity(i)) << "instance " << i;
  }
}

double MaxLoad(const PlacementProblem& problem, const PlacementPlan& plan) {
  double worst = 0;
  for (const auto& layer : InstanceLoads(problem, plan)) {
    worst = std::max(worst, *std::max_element(layer.begin(), layer.end()));
  }
  return worst;
}

TEST(GreedyTest, EveryExpertPlacedSharesSumToOne) {
  PlacementProblem p = Problem(4, 8, 3);
  p.load = SkewedLoad(4, 8);
  absl::StatusOr<PlacementPlan> plan = GreedyPlacement(p, {});
  ASSERT_TRUE(plan.ok()) << plan.status();
  ExpectWellFormed(p, *plan);
  EXPECT_EQ(plan->ReplicasOn(0) + plan->ReplicasOn(1) + plan->ReplicasOn(2), 32);
}

TEST(GreedyTest, RespectsSlotsAndMemory) {
  PlacementProblem p = Problem(2, 8, 3);
  p.load = SkewedLoad(2, 8);
  p.slots = {4, 8, 8};
  p.bytes_per_expert = 100;
  p.memory_bytes = {0, 700, 0};  // instance 1: 7 copies
  absl::StatusOr<PlacementPlan> plan = GreedyPlacement(p, {.min_replicas = 1, .replication = 1.5});
  ASSERT_TRUE(plan.ok()) << plan.status();
  ExpectWellFormed(p, *plan);
  EXPECT_LE(plan->ReplicasOn(0), 4);
  EXPECT_LE(plan->ReplicasOn(1), 7);
  p.slots = {4, 4, 4};
  p.memory_bytes = {};
  EXPECT_EQ(GreedyPlacement(p, {}).status().code(), absl::StatusCode::kFailedPrecondition)
      << "12 slots cannot hold 16 experts";
}

TEST(GreedyTest, MinReplicasOnDistinctInstances) {
  PlacementProblem p = Problem(3, 4, 3);
  absl::StatusOr<PlacementPlan> plan = GreedyPlacement(p, {.min_replicas = 2, .replication = 2});
  ASSERT_TRUE(plan.ok()) << plan.status();
  ExpectWellFormed(p, *plan);
  for (const auto& rs : plan->replicas) {
    ASSERT_EQ(rs.size(), 2u);
    EXPECT_NE(rs[0].instance, rs[1].instance);
    EXPECT_DOUBLE_EQ(rs[0].share, 0.5);
  }
  // More replicas than instances: capped.
  plan = GreedyPlacement(Problem(1, 2, 2), {.min_replicas = 5, .replication = 5});
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->At(0, 0).size(), 2u);
}

TEST(GreedyTest, Deterministic) {
  PlacementProblem p = Problem(6, 16, 5);
  p.load = SkewedLoad(6, 16);
  auto a = GreedyPlacement(p, {.min_replicas = 1, .replication = 1.25});
  auto b = GreedyPlacement(p, {.min_replicas = 1, .replication = 1.25});
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(*a, *b);
}

TEST(GreedyTest, ReplicatesHotExpertAndBalancesSkewedLoad) {
  // One expert carries 80% of the layer's tokens: without replication one instance carries it
  // all; with spare replicas greedy splits it.
  PlacementProblem p = Problem(1, 8, 4);
  p.load = {800, 30, 30, 30, 30, 30, 30, 20};
  const double total = 1000;
  auto single = GreedyPlacement(p, {.min_replicas = 1, .replication = 1.0});
  auto replicated = GreedyPlacement(p, {.min_replicas = 1, .replication = 1.5});
  ASSERT_TRUE(single.ok() && replicated.ok());
  ExpectWellFormed(p, *replicated);
  EXPECT_DOUBLE_EQ(MaxLoad(p, *single), 800);
  EXPECT_GE(replicated->At(0, 0).size(), 4u) << "the hot expert gets the spare replicas";
  EXPECT_LE(MaxLoad(p, *replicated), 1.05 * total / 4 + 30) << "near the mean of 250";
  // Greedy beats round robin on max load.
  auto rr = RoundRobinPlacement(p, {});
  ASSERT_TRUE(rr.ok());
  EXPECT_LT(MaxLoad(p, *replicated), MaxLoad(p, *rr));
}

TEST(GreedyTest, PacksByLoadAcrossInstances) {
  // Loads 8,7,6,5,4,3,2,1 on 2 instances: greedy packing gives 18/18.
  PlacementProblem p = Problem(1, 8, 2);
  p.load = {8, 7, 6, 5, 4, 3, 2, 1};
  auto plan = GreedyPlacement(p, {});
  ASSERT_TRUE(plan.ok());
  const auto loads = InstanceLoads(p, *plan);
  EXPECT_DOUBLE_EQ(loads[0][0], 18);
  EXPECT_DOUBLE_EQ(loads[0][1], 18);
}

TEST(RoundRobinTest, SpreadsAndReplicates) {
  PlacementProblem p = Problem(2, 3, 3);
  auto plan = RoundRobinPlacement(p, {.min_replicas = 2, .replication = 2});
  ASSERT_TRUE(plan.ok());
  ExpectWellFormed(p, *plan);
  EXPECT_EQ(plan->At(0, 0)[0].instance, 0);
  EXPECT_EQ(plan->At(0, 0)[1].instance, 1);
  EXPECT_EQ(plan->At(1, 0)[0].instance, 0);  // g = 3
  EXPECT_EQ(plan->At(1, 0)[1].instance, 1);
  EXPECT_EQ(plan->At(0, 2)[0].instance, 0);  // {2, (2 + 1) % 3}, sorted by instance
  EXPECT_EQ(plan->At(0, 2)[1].instance, 2);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(plan->ReplicasOn(i), 4);
}

TEST(LayerBlockTest, KeepsWholeLayersOnOneInstance) {
  // 8 layers x 4 experts on 2 instances: layers 0-3 on instance 0, 4-7 on instance 1.
  PlacementProblem p = Problem(8, 4, 2);
  auto plan = LayerBlockPlacement(p, {});
  ASSERT_TRUE(plan.ok()) << plan.status();
  ExpectWellFormed(p, *plan);
  for (int l = 0; l < 8; ++l) {
    for (int e = 0; e < 4; ++e) {
      ASSERT_EQ(plan->At(l, e).size(), 1u);
      EXPECT_EQ(plan->At(l, e)[0].instance, l < 4 ? 0 : 1) << "layer " << l << " expert " << e;
    }
  }
  // 4 instances: two layers each.
  auto four = LayerBlockPlacement(Problem(8, 4, 4), {});
  ASSERT_TRUE(four.ok());
  for (int l = 0; l < 8; ++l) EXPECT_EQ(four->At(l, 3)[0].instance, l / 2);
}

TEST(LayerBlockTest, UnevenBlocksAndReplicas) {
  // 3 layers x 4 experts = 12 on 5 instances: blocks of g * 5 / 12 -> sizes 3,2,3,2,2.
  PlacementProblem p = Problem(3, 4, 5);
  auto plan = LayerBlockPlacement(p, {});
  ASSERT_TRUE(plan.ok());
  ExpectWellFormed(p, *plan);
  const std::vector<int> sizes = {3, 3, 2, 2, 2};
  std::vector<int> got;
  for (int i = 0; i < 5; ++i) got.push_back(plan->ReplicasOn(i));
  std::sort(got.rbegin(), got.rend());
  EXPECT_EQ(got, sizes);
  EXPECT_EQ(plan->At(0, 0)[0].instance, 0);
  EXPECT_EQ(plan->At(2, 3)[0].instance, 4);
  // Two replicas on 2 instances: every expert on both, each with half the share.
  auto both = LayerBlockPlacement(Problem(4, 2, 2), {.min_replicas = 2, .replication = 2});
  ASSERT_TRUE(both.ok());
  for (const auto& rs : both->replicas) {
    ASSERT_EQ(rs.size(), 2u);
    EXPECT_EQ(rs[0].instance, 0);
    EXPECT_EQ(rs[1].instance, 1);
    EXPECT_DOUBLE_EQ(rs[0].share, 0.5);
  }
}

TEST(PlacementTest, NoInstanceIsAnError) {
  EXPECT_EQ(GreedyPlacement(Problem(1, 2, 0), {}).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(RoundRobinPlacement(Problem(1, 2, 0), {}).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(LayerBlockPlacement(Problem(1, 2, 0), {}).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(RepairTest, KeepsSurvivorsAndReplacesOrphans) {
  // 3 instances, instance 1 dies: its experts move to 0 and 2, nothing else moves.
  PlacementProblem p3 = Problem(2, 6, 3);
  auto before = GreedyPlacement(p3, {});
  ASSERT_TRUE(before.ok());
  PlacementPlan survivors = *before;
  survivors.instances = 2;
  for (auto& rs : survivors.replicas) {
    std::vector<Replica> kept;
    for (const Replica& r : rs) {
      if (r.instance == 0) kept.push_back({0, r.share});
      if (r.instance == 2) kept.push_back({1, r.share});
    }
    rs = kept;
  }
  PlacementProblem p2 = Problem(2, 6, 2);
  auto after = RepairPlacement(p2, survivors, {});
  ASSERT_TRUE(after.ok()) << after.status();
  ExpectWellFormed(p2, *after);
  for (size_t g = 0; g < survivors.replicas.size(); ++g) {
    if (!survivors.replicas[g].empty()) {
      EXPECT_EQ(after->replicas[g][0].instance, survivors.replicas[g][0].instance);
    }
  }
  // Balanced after repair: 6 experts per layer on 2 instances -> 3 each.
  for (const auto& layer : InstanceLoads(p2, *after)) {
    EXPECT_DOUBLE_EQ(layer[0], 3);
    EXPECT_DOUBLE_EQ(layer[1], 3);
  }
}

TEST(RepairTest, TopsUpToMinReplicas) {
  PlacementProblem p = Problem(1, 2, 3);
  PlacementPlan survivors;
  survivors.layers = 1;
  survivors.experts = 2;
  survivors.instances = 3;
  survivors.replicas = {{{0, 0.5}}, {}};
  auto plan = RepairPlacement(p, survivors, {.min_replicas = 2, .replication = 2});
  ASSERT_TRUE(plan.ok()) << plan.status();
  ExpectWellFormed(p, *plan);
  EXPECT_EQ(plan->At(0, 0).size(), 2u);
  EXPECT_EQ(plan->At(0, 0)[0].instance, 0);
  EXPECT_EQ(plan->At(0, 1).size(), 2u);
}

// Affinity-first packing: greedy's copy counts and per-layer maximum, far fewer tokens that
// change instance between layers.
// A synthetic trace (32 experts, top-4, Zipf 1) on 8 instances with room for 1.25 copies per
// expert plus 2 slots each; popularity_seed != 0 redraws the popularity (a skew shift).
PlacementProblem Synthetic(int layers, uint64_t seed, uint64_t popularity_seed = 0) {
  SyntheticTraceParams s{.layers = layers,
                         .experts = 32,
                         .top_k = 4,
                         .tokens = 20000,
                         .zipf = 1.0,
                         .affinity = 0.6,
                         .seed = seed};
  if (popularity_seed != 0) s.popularity_seed = popularity_seed;
  PlacementProblem p = SyntheticTrace(s);
  p.instances = 8;
  p.slots.assign(8, layers * 32 * 5 / 4 / 8 + 2);
  return p;
}

// What every start plan keeps of greedy's `base`: well formed, within capacity, greedy's copy
// count per expert, and each layer's busiest instance no busier than greedy's. Returns the
// objectives of (base, plan).
std::pair<PlanObjective, PlanObjective> ExpectGreedysShape(const PlacementProblem& p,
                                                           const PlacementPlan& base,
                                                           const PlacementPlan& plan) {
  ExpectWellFormed(p, plan);
  EXPECT_TRUE(CheckCapacity(p, plan).ok());
  for (size_t g = 0; g < base.replicas.size(); ++g) {
    EXPECT_EQ(plan.replicas[g].size(), base.replicas[g].size()) << g;
  }
  PlanObjective b = EvaluatePlan(p, base), o = EvaluatePlan(p, plan);
  for (int l = 0; l < p.layers; ++l) {
    EXPECT_LE(o.layer_max_load[l], b.layer_max_load[l] * (1 + 1e-9)) << l;
  }
  return {b, o};
}

TEST(AffinityTest, ChainsPartnersUnderGreedysMaximum) {
  PlacementProblem p = Synthetic(8, 5);
  absl::StatusOr<PlacementPlan> greedy = GreedyPlacement(p, {.replication = 1.25});
  ASSERT_TRUE(greedy.ok());
  absl::StatusOr<PlacementPlan> plan = AffinityPlacement(p, *greedy);
  ASSERT_TRUE(plan.ok()) << plan.status();
  const auto [g, o] = ExpectGreedysShape(p, *greedy, *plan);
  EXPECT_LT(o.cross_transitions, 0.6 * g.cross_transitions)
      << o.cross_transitions << " vs " << g.cross_transitions;
}

// A re-plan after the skew shifts: greedy's copy counts, most current copies stay, every layer
// at most greedy's busiest instance, capacity respected.
TEST(StickyTest, KeepsCopiesUnderGreedysMaximum) {
  PlacementProblem before = Synthetic(6, 3);
  absl::StatusOr<PlacementPlan> old_plan = GreedyPlacement(before, {.replication = 1.25});
  ASSERT_TRUE(old_plan.ok());
  PlacementProblem after = Synthetic(6, 3, 77);
  after.current = *old_plan;
  absl::StatusOr<PlacementPlan> scratch = GreedyPlacement(after, {.replication = 1.25});
  ASSERT_TRUE(scratch.ok());
  absl::StatusOr<PlacementPlan> sticky = StickyPlacement(after, *scratch);
  ASSERT_TRUE(sticky.ok()) << sticky.status();
  const auto [g, o] = ExpectGreedysShape(after, *scratch, *sticky);
  EXPECT_GT(g.copies_moved, 100);
  EXPECT_LT(o.copies_moved, g.copies_moved / 3) << o.copies_moved << " vs " << g.copies_moved;
  // Without a current plan there is nothing to keep.
  after.current.reset();
  EXPECT_EQ(StickyPlacement(after, *scratch).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace moe::scheduler
