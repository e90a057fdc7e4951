// The ILP (CBC and GLPK) against the brute-force oracle on tiny problems, and its properties on
// random ones: valid, within capacity, never worse than greedy.
#include "scheduler/placement/ilp.h"

#include <gtest/gtest.h>

#include <random>

#include "scheduler/placement/brute_force.h"
#include "scheduler/placement/greedy.h"
#include "scheduler/placement/objective.h"
#include "scheduler/placement/solver.h"
#include "scheduler/placement/trace.h"

namespace moe::scheduler {
namespace {

TEST(MipTest, KnapsackOnBothEngines) {
  // max 5a + 4b + 3c  s.t.  2a + 3b + c <= 5, binary: a = b = 1 (9).
  MipModel m;
  const int a = m.AddCol(0, 1, -5, true), b = m.AddCol(0, 1, -4, true),
            c = m.AddCol(0, 1, -3, true);
  m.AddRow({{a, 2}, {b, 3}, {c, 1}}, -kMipInf, 5);
  for (MipEngine engine : {MipEngine::kCbc, MipEngine::kGlpk}) {
    for (const std::vector<double>& start : {std::vector<double>{}, std::vector<double>{1, 0, 1}}) {
      absl::StatusOr<MipResult> r = SolveMip(m, engine, start, 5.0);
      ASSERT_TRUE(r.ok()) << r.status();
      ASSERT_TRUE(r->has_solution);
      EXPECT_NEAR(r->objective, -9, 1e-6);
      EXPECT_NEAR(r->x[a], 1, 1e-6);
      EXPECT_NEAR(r->x[b], 1, 1e-6);
      EXPECT_NEAR(r->x[c], 0, 1e-6);
    }
  }
  EXPECT_FALSE(SolveMip(m, MipEngine::kCbc, {}, 0).ok()) << "a time limit is required";
  EXPECT_FALSE(SolveMip(m, MipEngine::kCbc, {1}, 1).ok()) << "start of the wrong size";
}

PlacementProblem RandomTiny(std::mt19937& rng, int instances) {
  PlacementProblem p;
  p.layers = 2;
  p.experts = 3;
  p.instances = instances;
  std::uniform_int_distribution<int> load(1, 100), count(0, 60);
  for (int g = 0; g < 6; ++g) p.load.push_back(load(rng));
  for (int a = 0; a < 3; ++a) {
    for (int b = 0; b < 3; ++b) {
      if (const int c = count(rng); c > 20) p.coact.push_back({0, a, b, c});
    }
  }
  p.slots.assign(instances, instances == 2 ? 4 : 3);
  p.weights.lambda = std::uniform_real_distribution<double>(0.1, 1.5)(rng);
  return p;
}

TEST(IlpTest, OptimalOnBruteForcedTinyProblems) {
  std::mt19937 rng(12345);
  for (int trial = 0; trial < 12; ++trial) {
    const int instances = 2 + trial % 2;
    PlacementProblem p = RandomTiny(rng, instances);
    if (trial % 3 == 2) {  // with a current plan: moves cost mu
      PlacementPlan current;
      current.layers = 2;
      current.experts = 3;
      current.instances = instances;
      for (int g = 0; g < 6; ++g) current.replicas.push_back({{g % instances, 1.0}});
      p.current = current;
      p.weights.mu = 15;
    }
    absl::StatusOr<PlacementPlan> greedy = GreedyPlacement(p, {});
    ASSERT_TRUE(greedy.ok()) << greedy.status();
    absl::StatusOr<PlacementPlan> best = BruteForcePlacement(p);
    ASSERT_TRUE(best.ok()) << best.status();
    const double optimum = EvaluatePlan(p, *best).cost;
    for (MipEngine engine : {MipEngine::kCbc, MipEngine::kGlpk}) {
      IlpStats stats;
      absl::StatusOr<PlacementPlan> ilp = IlpPlacement(
          p, *greedy, {.engine = engine, .time_limit_seconds = 5, .max_load_slack = -1}, &stats);
      ASSERT_TRUE(ilp.ok()) << ilp.status();
      EXPECT_TRUE(stats.monolithic);
      EXPECT_NEAR(EvaluatePlan(p, *ilp).cost, optimum, 1e-6 * optimum)
          << "trial " << trial << " engine " << static_cast<int>(engine);
    }
    // With the default bound (no layer worse than greedy's), optimal among those plans.
    std::vector<double> cap = EvaluatePlan(p, *greedy).layer_max_load;
    absl::StatusOr<PlacementPlan> capped_best = BruteForcePlacement(p, cap);
    ASSERT_TRUE(capped_best.ok());
    absl::StatusOr<PlacementPlan> capped = IlpPlacement(p, *greedy, {.time_limit_seconds = 5});
    ASSERT_TRUE(capped.ok());
    EXPECT_NEAR(EvaluatePlan(p, *capped).cost, EvaluatePlan(p, *capped_best).cost, 1e-6 * optimum)
        << "trial " << trial;
  }
}

void ExpectValidAndNotWorse(const PlacementProblem& p, const PlacementPlan& greedy,
                            const PlacementPlan& ilp) {
  ASSERT_TRUE(ValidatePlan(ilp).ok()) << ValidatePlan(ilp);  // every expert placed, shares
  ASSERT_TRUE(CheckCapacity(p, ilp).ok()) << CheckCapacity(p, ilp);
  const PlanObjective g = EvaluatePlan(p, greedy), o = EvaluatePlan(p, ilp);
  EXPECT_LE(o.cost, g.cost * (1 + 1e-9));
  for (int l = 0; l < p.layers; ++l) {
    EXPECT_LE(o.layer_max_load[l], g.layer_max_load[l] * (1 + 1e-6)) << "layer " << l;
  }
  EXPECT_LE(o.copies, g.copies);
  // As available as greedy: no expert has fewer copies than greedy's least-replicated one.
  size_t min_replicas = greedy.instances;
  for (const auto& rs : greedy.replicas) min_replicas = std::min(min_replicas, rs.size());
  for (const auto& rs : ilp.replicas) EXPECT_GE(rs.size(), min_replicas);
}

TEST(IlpTest, RandomProblemsValidAndNeverWorseThanGreedy) {
  std::mt19937 rng(777);
  for (int trial = 0; trial < 8; ++trial) {
    SyntheticTraceParams s;
    s.layers = 3 + trial % 3;
    s.experts = 8 << (trial % 2);
    s.top_k = 2;
    s.tokens = 5000;
    s.zipf = 0.8 + 0.1 * trial;
    s.affinity = 0.3 + 0.08 * trial;
    s.seed = 100 + trial;
    PlacementProblem p = SyntheticTrace(s);
    p.instances = 3 + trial % 4;
    const int per = (p.layers * p.experts * 3 / 2 + p.instances - 1) / p.instances;
    p.slots.assign(p.instances, per);
    if (trial % 2 == 1) p.speed.assign(p.instances, 1.0), p.speed[0] = 2.0;
    const ReplicationParams rep{.min_replicas = 1 + trial % 2, .replication = 1.25 + trial % 2};
    absl::StatusOr<PlacementPlan> greedy = GreedyPlacement(p, rep);
    ASSERT_TRUE(greedy.ok()) << greedy.status();
    const MipEngine engine = trial % 4 == 3 ? MipEngine::kGlpk : MipEngine::kCbc;
    IlpStats stats;
    absl::StatusOr<PlacementPlan> ilp =
        IlpPlacement(p, *greedy, {.engine = engine, .time_limit_seconds = 0.3}, &stats);
    ASSERT_TRUE(ilp.ok()) << ilp.status();
    SCOPED_TRACE(testing::Message() << "trial " << trial);
    ExpectValidAndNotWorse(p, *greedy, *ilp);
    EXPECT_FALSE(stats.monolithic);
    EXPECT_GT(stats.subproblems, 0);
  }
}

TEST(IlpTest, AffinityCutsCrossInstanceTransitions) {
  PlacementProblem p = SyntheticTrace({.layers = 6,
                                       .experts = 16,
                                       .top_k = 2,
                                       .tokens = 20000,
                                       .zipf = 0.9,
                                       .affinity = 0.8,
                                       .seed = 5});
  p.instances = 4;
  p.slots.assign(4, 6 * 16 * 5 / 4 / 4 + 1);
  absl::StatusOr<PlacementPlan> greedy = GreedyPlacement(p, {.replication = 1.25});
  ASSERT_TRUE(greedy.ok());
  absl::StatusOr<PlacementPlan> ilp = IlpPlacement(p, *greedy, {.time_limit_seconds = 1});
  ASSERT_TRUE(ilp.ok());
  ExpectValidAndNotWorse(p, *greedy, *ilp);
  const PlanObjective g = EvaluatePlan(p, *greedy), o = EvaluatePlan(p, *ilp);
  EXPECT_LE(o.cross_transitions, 0.6 * g.cross_transitions)
      << "greedy " << g.cross_per_token << " ilp " << o.cross_per_token;
}

// The skew-shift of a re-plan: `before` (4 x 16, top-2, 4 instances) and `after`, the same
// partners with the popularity redrawn, with the same instances and slots; `after.current` is
// left to the caller.
struct Replan {
  PlacementProblem before, after;
};
Replan ShiftedTraces(int extra_slots) {
  SyntheticTraceParams s{.layers = 4,
                         .experts = 16,
                         .top_k = 2,
                         .tokens = 20000,
                         .zipf = 1.0,
                         .affinity = 0.5,
                         .seed = 9};
  Replan r;
  r.before = SyntheticTrace(s);
  r.before.instances = 4;
  r.before.slots.assign(4, 4 * 16 * 5 / 4 / 4 + extra_slots);
  s.popularity_seed = 4242;
  r.after = SyntheticTrace(s);
  r.after.instances = r.before.instances;
  r.after.slots = r.before.slots;
  return r;
}

TEST(IlpTest, ReplanMovesFewCopies) {
  auto [before, after] = ShiftedTraces(0);
  absl::StatusOr<PlacementPlan> old_plan = GreedyPlacement(before, {.replication = 1.25});
  ASSERT_TRUE(old_plan.ok());
  after.current = *old_plan;
  absl::StatusOr<PlacementPlan> scratch = GreedyPlacement(after, {.replication = 1.25});
  ASSERT_TRUE(scratch.ok());
  absl::StatusOr<PlacementPlan> ilp = IlpPlacement(after, *scratch, {.time_limit_seconds = 1});
  ASSERT_TRUE(ilp.ok());
  ExpectValidAndNotWorse(after, *scratch, *ilp);
  const PlanObjective g = EvaluatePlan(after, *scratch), o = EvaluatePlan(after, *ilp);
  EXPECT_GT(g.copies_moved, 0);
  EXPECT_LE(o.copies_moved, 0.5 * g.copies_moved);
}

TEST(IlpTest, DeadInstanceGetsNothing) {
  PlacementProblem p = SyntheticTrace({.layers = 3, .experts = 8, .seed = 2});
  p.instances = 4;
  p.live = {true, true, false, true};
  absl::StatusOr<PlacementPlan> plan = SolvePlacement(p, {.time_limit_seconds = 1});
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->ReplicasOn(2), 0);
  EXPECT_TRUE(ValidatePlan(*plan).ok());
}

TEST(SolverTest, EntryPoint) {
  EXPECT_EQ(*ParseSolverKind("greedy"), SolverKind::kGreedy);
  EXPECT_EQ(*ParseSolverKind("ilp"), SolverKind::kIlpCbc);
  EXPECT_EQ(*ParseSolverKind("ilp-glpk"), SolverKind::kIlpGlpk);
  EXPECT_FALSE(ParseSolverKind("simplex").ok());
  PlacementProblem p = SyntheticTrace({.layers = 2, .experts = 8, .seed = 4});
  p.instances = 3;
  absl::StatusOr<PlacementPlan> greedy = SolvePlacement(p, {.solver = SolverKind::kGreedy});
  ASSERT_TRUE(greedy.ok());
  EXPECT_EQ(*greedy, *GreedyPlacement(p, {}));
  absl::StatusOr<SolveReport> report =
      SolvePlacementWithReport(p, {.solver = SolverKind::kIlpGlpk, .time_limit_seconds = 1});
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_LE(report->objective.cost, report->greedy_objective.cost);
  EXPECT_EQ(report->greedy, *greedy);
  p.instances = 0;
  EXPECT_EQ(SolvePlacement(p, {}).status().code(), absl::StatusCode::kFailedPrecondition);
}

// A re-plan through the entry point starts from StickyPlacement: far fewer copies move than in
// greedy's from-scratch plan, and no layer's busiest instance is over greedy's.
TEST(SolverTest, ReplanStartsFromTheCurrentPlan) {
  auto [before, after] = ShiftedTraces(2);
  const SolverParams params{.replication = {.replication = 1.25}, .time_limit_seconds = 1};
  absl::StatusOr<SolveReport> first = SolvePlacementWithReport(before, params);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_NE(first->start, "sticky");
  after.current = first->plan;
  absl::StatusOr<SolveReport> re = SolvePlacementWithReport(after, params);
  ASSERT_TRUE(re.ok()) << re.status();
  EXPECT_EQ(re->start, "sticky");
  EXPECT_TRUE(CheckCapacity(after, re->plan).ok());
  EXPECT_GT(re->greedy_objective.copies_moved, 0);
  EXPECT_LE(re->objective.copies_moved, 0.3 * re->greedy_objective.copies_moved);
  for (int l = 0; l < after.layers; ++l) {
    EXPECT_LE(re->objective.layer_max_load[l],
              re->greedy_objective.layer_max_load[l] * (1 + 1e-6));
  }
  EXPECT_LE(re->objective.cost, re->greedy_objective.cost);
}

}  // namespace
}  // namespace moe::scheduler
