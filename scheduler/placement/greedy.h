// Heuristic placements: GreedyPlacement (DeepSeek EPLB's semantics), RoundRobinPlacement and
// LayerBlockPlacement.
// Pure functions of their inputs; deterministic (ties break by index).
#ifndef MOE_SCHEDULER_PLACEMENT_GREEDY_H_
#define MOE_SCHEDULER_PLACEMENT_GREEDY_H_

#include "absl/status/statusor.h"
#include "scheduler/placement/plan.h"
#include "scheduler/placement/problem.h"

namespace moe::scheduler {

struct ReplicationParams {
  // Every expert gets at least this many replicas (availability: survives min_replicas - 1
  // instance deaths); capped at the instance count.
  int min_replicas = 1;
  // Total replicas per layer = ceil(experts * replication) (>= min_replicas), capped by the
  // capacity; replicas beyond min_replicas go to the experts with the highest load per replica.
  double replication = 1.0;
};

// EPLB-style: per layer, give each expert min_replicas replicas, then repeatedly add a replica
// to the expert with the highest load per replica while the layer's replica budget and the
// instances' capacity (slots, memory) allow; then pack that layer's replicas, heaviest first,
// onto the least-loaded instance with free capacity that does not already hold the expert.
// Shares are equal among an expert's replicas. Errors: FAILED_PRECONDITION when there is no
// instance or the capacity cannot hold one copy of every expert.
absl::StatusOr<PlacementPlan> GreedyPlacement(const PlacementProblem& problem,
                                              const ReplicationParams& params);

// Expert g = l * experts + e gets replicas on instances (g + k) % instances for
// k < min(min_replicas, instances); load is ignored. FAILED_PRECONDITION if it exceeds capacity.
absl::StatusOr<PlacementPlan> RoundRobinPlacement(const PlacementProblem& problem,
                                                  const ReplicationParams& params);

// For expert instances that share one host's cores (`moe up`): the experts in layer-major order
// g = l * experts + e are cut into `instances` contiguous blocks of equal size (+-1), so with
// instances <= layers (and layers a multiple of instances) every layer lives whole on one
// instance and a decode step's layer is computed by one service at a time; instances beyond
// that get parts of a layer. Replica k goes on (block + k) % instances, k < min(min_replicas,
// instances); load is ignored (balancing instances that share the same cores buys nothing).
// FAILED_PRECONDITION if it exceeds capacity.
absl::StatusOr<PlacementPlan> LayerBlockPlacement(const PlacementProblem& problem,
                                                  const ReplicationParams& params);

// Failover without churn: keeps every replica of `survivors` (a plan whose instance indices
// already refer to `problem`'s instances, with the dead instances' replicas removed, so some
// experts may have none) and adds replicas to each expert below min(min_replicas, instances),
// heaviest first, on the least-loaded instance of that layer with free capacity that does not
// hold the expert. Shares become equal. Only the dead instances' experts move.
absl::StatusOr<PlacementPlan> RepairPlacement(const PlacementProblem& problem,
                                              const PlacementPlan& survivors,
                                              const ReplicationParams& params);

// Affinity-first packing (ExFlow's inter-layer affinity as a heuristic): `target`'s number of
// copies of every (layer, expert) (GreedyPlacement's), placed layer by layer, heaviest copy
// first, on the instance where the most of the expert's co-activation inflow from the previous
// layer's placement would stay local (objective.h's dispatch model: min(inflow there, the copy's
// share of it)), among the instances with room whose load stays <= `target`'s busiest of that
// layer (speed-weighted, equal shares); ties to the least-loaded. FAILED_PRECONDITION when a copy
// fits nowhere under that bound (use `target` then).
absl::StatusOr<PlacementPlan> AffinityPlacement(const PlacementProblem& problem,
                                                const PlacementPlan& target);

// Re-plan without churn: a plan with `target`'s number of copies of every (layer, expert)
// (GreedyPlacement's for the new load) that keeps as many of `problem.current`'s copies in
// place as it can. Per layer: the current copies are kept (up to the target count; on live
// instances within capacity), missing copies go to the least-loaded instance with room, then
// while the busiest instance is over `target`'s busiest (speed-weighted, equal shares), one of
// its copies moves to, or swaps with a lighter copy on, the instance that lowers the pair's
// maximum the most. FAILED_PRECONDITION without a current plan of the problem's shape, or when
// a layer cannot be brought under `target`'s maximum that way (use `target` then).
absl::StatusOr<PlacementPlan> StickyPlacement(const PlacementProblem& problem,
                                              const PlacementPlan& target);

// Per-layer load of each instance under `plan` (tokens x share summed), [layers][instances].
std::vector<std::vector<double>> InstanceLoads(const PlacementProblem& problem,
                                               const PlacementPlan& plan);

}  // namespace moe::scheduler

#endif  // MOE_SCHEDULER_PLACEMENT_GREEDY_H_
