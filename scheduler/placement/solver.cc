#include "scheduler/placement/solver.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace moe::scheduler {

absl::StatusOr<SolverKind> ParseSolverKind(std::string_view name) {
  if (name == "greedy") return SolverKind::kGreedy;
  if (name == "ilp" || name == "ilp-cbc" || name == "cbc") return SolverKind::kIlpCbc;
  if (name == "ilp-glpk" || name == "glpk") return SolverKind::kIlpGlpk;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown solver \"", std::string(name), "\" (greedy, ilp, ilp-cbc, ilp-glpk)"));
}

std::string SolverKindName(SolverKind kind) {
  switch (kind) {
    case SolverKind::kGreedy:
      return "greedy";
    case SolverKind::kIlpCbc:
      return "ilp-cbc";
    case SolverKind::kIlpGlpk:
      return "ilp-glpk";
  }
  return "?";
}

absl::StatusOr<SolveReport> SolvePlacementWithReport(const PlacementProblem& problem,
                                                     const SolverParams& params) {
  using Clock = std::chrono::steady_clock;
  const Clock::time_point t0 = Clock::now();
  SolveReport report;
  MOE_ASSIGN_OR_RETURN(report.greedy, GreedyPlacement(problem, params.replication));
  report.greedy_seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  report.greedy_objective = EvaluatePlan(problem, report.greedy);
  if (params.solver == SolverKind::kGreedy) {
    report.plan = report.greedy;
    report.objective = report.greedy_objective;
  } else {
    IlpParams ilp;
    ilp.engine = params.solver == SolverKind::kIlpGlpk ? MipEngine::kGlpk : MipEngine::kCbc;
    double limit =
        params.time_limit_seconds > 0 ? params.time_limit_seconds : problem.time_limit_seconds;
    ilp.time_limit_seconds = limit > 0 ? limit : 10.0;
    ilp.max_load_slack = params.max_load_slack;
    // The start: the cheapest of greedy, AffinityPlacement and (on a re-plan)
    // StickyPlacement; all keep greedy's copy counts and each layer's busiest load under
    // greedy's, which stays the ILP's load bound.
    const PlacementPlan* start = &report.greedy;
    double start_cost = report.greedy_objective.cost;
    report.start = "greedy";
    absl::StatusOr<PlacementPlan> affinity = AffinityPlacement(problem, report.greedy);
    absl::StatusOr<PlacementPlan> sticky = absl::NotFoundError("no current plan");
    if (problem.current.has_value()) sticky = StickyPlacement(problem, report.greedy);
    for (auto [candidate, name] : {std::pair{&affinity, "affinity"}, std::pair{&sticky, "sticky"}}) {
      if (!candidate->ok() || !CheckCapacity(problem, **candidate).ok()) continue;
      const double cost = EvaluatePlan(problem, **candidate).cost;
      if (cost < start_cost) {
        start = &**candidate;
        start_cost = cost;
        report.start = name;
      }
    }
    if (start != &report.greedy && params.max_load_slack >= 0) {
      for (double m : report.greedy_objective.layer_max_load) {
        ilp.layer_load_cap.push_back(m * (1 + params.max_load_slack));
      }
    }
    MOE_ASSIGN_OR_RETURN(report.plan, IlpPlacement(problem, *start, ilp, &report.ilp));
    report.objective = EvaluatePlan(problem, report.plan);
  }
  report.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  return report;
}

absl::StatusOr<PlacementPlan> SolvePlacement(const PlacementProblem& problem,
                                             const SolverParams& params) {
  MOE_ASSIGN_OR_RETURN(SolveReport report, SolvePlacementWithReport(problem, params));
  return std::move(report.plan);
}

}  // namespace moe::scheduler
