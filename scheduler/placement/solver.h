// SolvePlacement: the one entry point the scheduler calls to place experts. Pure function of
// the problem and the params; picks greedy (EPLB) or the ILP (CBC or GLPK). The ILP starts from
// the cheapest of greedy's plan, AffinityPlacement and, on a re-plan (problem.current set),
// StickyPlacement (all with greedy's copy counts); either way each layer's busiest instance
// stays <= greedy's * (1 + max_load_slack).
#ifndef MOE_SCHEDULER_PLACEMENT_SOLVER_H_
#define MOE_SCHEDULER_PLACEMENT_SOLVER_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "scheduler/placement/greedy.h"
#include "scheduler/placement/ilp.h"
#include "scheduler/placement/objective.h"
#include "scheduler/placement/plan.h"
#include "scheduler/placement/problem.h"

namespace moe::scheduler {

enum class SolverKind { kGreedy, kIlpCbc, kIlpGlpk };

// "greedy", "ilp" / "ilp-cbc" / "cbc", "ilp-glpk" / "glpk".
absl::StatusOr<SolverKind> ParseSolverKind(std::string_view name);
std::string SolverKindName(SolverKind kind);

struct SolverParams {
  SolverKind solver = SolverKind::kIlpCbc;
  ReplicationParams replication;  // the greedy plan's (the ILP keeps its copy budget)
  // <= 0: problem.time_limit_seconds (<= 0 there too: 10 s). The ILP's limit; greedy is fast.
  double time_limit_seconds = 0;
  // The ILP's per-layer busiest load stays <= greedy's * (1 + slack); < 0: no such bound.
  double max_load_slack = 0.0;
};

struct SolveReport {
  PlacementPlan plan;
  PlanObjective objective;
  PlacementPlan greedy;  // greedy's plan (== plan for kGreedy)
  PlanObjective greedy_objective;
  // The ILP's start plan: "greedy", "affinity" (AffinityPlacement) or "sticky"
  // (StickyPlacement); empty for kGreedy.
  std::string start;
  double seconds = 0;  // whole solve, greedy included
  double greedy_seconds = 0;
  IlpStats ilp;  // zero for kGreedy
};

absl::StatusOr<PlacementPlan> SolvePlacement(const PlacementProblem& problem,
                                             const SolverParams& params);
absl::StatusOr<SolveReport> SolvePlacementWithReport(const PlacementProblem& problem,
                                                     const SolverParams& params);

}  // namespace moe::scheduler

#endif  // MOE_SCHEDULER_PLACEMENT_SOLVER_H_
