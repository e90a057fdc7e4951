// IlpPlacement: improves a start plan (solver.cc picks greedy, affinity or sticky) with an integer program solved by CBC or
// GLPK (mip.h), for the objective of objective.h:
//   sum_l max_i load(l, i) / speed_i  +  lambda * cross-instance tokens  +  mu * copies moved.
//
// Model (per layer l): binary x[e][i] "a copy of (l, e) on instance i", continuous share
// y[e][i] with delta * x <= y <= x and sum_i y[e][i] = 1, continuous M_l >= load(l, i) /
// speed_i for every i; capacity (slots, memory) per instance; at least min_replicas copies per
// expert (the start plan's minimum), no more copies in the layer than the start plan has;
// optionally M_l <= the start plan's M_l * (1 + max_load_slack) (or params.layer_load_cap[l])
// so the result is never worse than the start (or greedy) on any layer's busiest instance.
//
// Two ways to solve it, both with the objective above exactly:
// - Monolithic (small problems where every expert has one replica, e.g. the brute-force tests):
//   one MIP over all layers; cross-instance tokens linearised with z[p][i] <= x[l][a][i],
//   z[p][i] <= x[l + 1][b][i] (exact because shares are 0/1). Optimal within the time limit.
// - Decomposed (everything else): block coordinate descent over layers. With the neighbouring
//   layers' shares fixed, a layer's part of the objective is exact in its MIP: the tokens that
//   stay on an instance (objective.h: min(inflow there, share x inflow total) per copy) are a
//   column t per copy with t <= inflow (a constant from layer l - 1, or for layer l + 1's
//   copies sum_a count(a, b) * y(a, j)) and t <= share * total (share y(b, i) for this layer's
//   copies, a constant for layer l + 1's); a single copy needs no t (x times its inflow).
//   Capacity counts the other layers' copies as taken. A layer's new placement is
//   kept only if its MIP objective beats the incumbent's, so the total never increases. At
//   scale each expert's candidate instances are limited to its current/incumbent ones, the
//   best by affinity, the least loaded and a few fixed pseudo-random ones.
// The whole solve has one time limit shared by the layer MIPs; the result is compared with the
// start by EvaluatePlan and the start is returned when it is not beaten.
#ifndef MOE_SCHEDULER_PLACEMENT_ILP_H_
#define MOE_SCHEDULER_PLACEMENT_ILP_H_

#include <vector>

#include "absl/status/statusor.h"
#include "scheduler/placement/mip.h"
#include "scheduler/placement/plan.h"
#include "scheduler/placement/problem.h"

namespace moe::scheduler {

struct IlpParams {
  MipEngine engine = MipEngine::kCbc;
  double time_limit_seconds = 10.0;  // whole solve (> 0)
  // Per-layer busiest load may exceed the start plan's by this fraction; < 0: no such bound
  // (the objective alone decides).
  double max_load_slack = 0.0;
  // Per layer: when set (one entry per layer), the bound on the busiest instance's load instead
  // of the start plan's * (1 + max_load_slack); the start must be within it.
  std::vector<double> layer_load_cap;
  // Decomposed mode: candidate instances per expert by affinity / least load / pseudo-random
  // (plus the incumbent's and the current plan's). All instances when experts * instances <=
  // all_candidates_below.
  int affinity_candidates = 3;
  int load_candidates = 2;
  int random_candidates = 1;
  int all_candidates_below = 1024;
  int max_passes = 4;
  // Decomposed mode: a layer MIP stops within this relative gap of its bound.
  double layer_gap = 1e-3;
  // Monolithic mode when every expert has one replica and the model has at most this many
  // binaries + linearisation columns.
  int monolithic_max_columns = 3000;
};

struct IlpStats {
  bool monolithic = false;
  bool kept_start = false;  // the MIP did not beat the start plan
  int subproblems = 0;      // MIPs solved
  int improved = 0;         // of those, accepted
  int passes = 0;
  double seconds = 0;
  double start_cost = 0;
  double cost = 0;
};

// `start` must be a valid plan for `problem` within its capacity (GreedyPlacement's).
absl::StatusOr<PlacementPlan> IlpPlacement(const PlacementProblem& problem,
                                           const PlacementPlan& start, const IlpParams& params,
                                           IlpStats* stats = nullptr);

}  // namespace moe::scheduler

#endif  // MOE_SCHEDULER_PLACEMENT_ILP_H_
