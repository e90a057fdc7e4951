#include "scheduler/placement/brute_force.h"

#include <cmath>

#include "scheduler/placement/objective.h"

namespace moe::scheduler {

absl::StatusOr<PlacementPlan> BruteForcePlacement(const PlacementProblem& p,
                                                  const std::vector<double>& load_cap) {
  const int groups = p.layers * p.experts;
  if (p.instances <= 0 || groups <= 0 || std::pow(static_cast<double>(p.instances), groups) > 2e6) {
    return absl::InvalidArgumentError("brute force is for tiny problems only");
  }
  PlacementPlan plan;
  plan.layers = p.layers;
  plan.experts = p.experts;
  plan.instances = p.instances;
  plan.replicas.assign(groups, {{0, 1.0}});
  std::vector<int> digit(groups, 0);
  std::vector<int> used(p.instances, 0);
  PlacementPlan best;
  double best_cost = 0;
  bool found = false;
  while (true) {
    std::fill(used.begin(), used.end(), 0);
    bool fits = true;
    for (int g = 0; g < groups; ++g) {
      plan.replicas[g][0].instance = digit[g];
      fits &= ++used[digit[g]] <= p.Capacity(digit[g]);
    }
    if (fits) {
      const PlanObjective o = EvaluatePlan(p, plan);
      for (int l = 0; l < p.layers && !load_cap.empty(); ++l) {
        fits &= o.layer_max_load[l] <= load_cap[l] * (1 + 1e-9);
      }
      if (fits && (!found || o.cost < best_cost)) {
        best = plan;
        best_cost = o.cost;
        found = true;
      }
    }
    int g = 0;
    while (g < groups && ++digit[g] == p.instances) digit[g++] = 0;
    if (g == groups) break;
  }
  if (!found) return absl::FailedPreconditionError("no single-replica placement fits");
  return best;
}

}  // namespace moe::scheduler
