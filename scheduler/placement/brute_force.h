// Test oracle: the best single-replica placement by exhaustive search. Only for tiny problems
// (instances ^ (layers * experts) <= 2,000,000 plans); used to check the ILP's optimality.
#ifndef MOE_SCHEDULER_PLACEMENT_BRUTE_FORCE_H_
#define MOE_SCHEDULER_PLACEMENT_BRUTE_FORCE_H_

#include "absl/status/statusor.h"
#include "scheduler/placement/plan.h"
#include "scheduler/placement/problem.h"

namespace moe::scheduler {

// Every (layer, expert) gets exactly one replica (share 1); minimises EvaluatePlan(...).cost
// within capacity, subject to layer l's busiest load <= load_cap[l] when load_cap is non-empty.
// Ties: the first plan in enumeration order. INVALID_ARGUMENT when the problem is too big,
// FAILED_PRECONDITION when nothing fits.
absl::StatusOr<PlacementPlan> BruteForcePlacement(const PlacementProblem& problem,
                                                  const std::vector<double>& load_cap = {});

}  // namespace moe::scheduler

#endif  // MOE_SCHEDULER_PLACEMENT_BRUTE_FORCE_H_
