// The one place that scores a placement plan: greedy, the ILP, `moe place`, tests and the
// benchmark all call EvaluatePlan. Pure; no solver inside.
//
// Model of a forward step (what the parts measure):
// - Layers run one after the other; a layer takes as long as its busiest instance, whose load is
//   sum over experts of tokens x share on it, divided by the instance's speed. The load term is
//   the sum over layers of that maximum.
// - Dispatch is locality-first within shares (attention_service/dispatch/replica_choice.h):
//   each replica of an expert gets its share of the expert's tokens, and the tokens whose
//   previous-layer expert ran on the replica's instance fill its quota first. In expectation,
//   for an expert b of layer l + 1 with co-activation inflow C_b = sum over a of
//   count(l, a -> b), arriving on instance i as in_b(i) = sum_a count(a, b) * share(l, a, i),
//   the replica of b on instance i keeps min(in_b(i), share(l + 1, b, i) * C_b) of it local;
//   the rest (C_b minus the sum over b's replicas) changes instance. With one copy of b this is
//   every token whose a ran where b is; with k equal copies of a and of b on the same k
//   instances it is all of them (an independent draw per layer would keep only 1/k).
// - Bytes moved: every copy the plan has on an instance where the current plan had none.
#ifndef MOE_SCHEDULER_PLACEMENT_OBJECTIVE_H_
#define MOE_SCHEDULER_PLACEMENT_OBJECTIVE_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "scheduler/placement/plan.h"
#include "scheduler/placement/problem.h"

namespace moe::scheduler {

struct PlanObjective {
  // Per layer: the busiest instance's speed-weighted load, the ideal (total tokens / total live
  // speed) and their ratio mean / max (1 = perfectly balanced).
  std::vector<double> layer_max_load;
  std::vector<double> layer_mean_load;
  std::vector<double> layer_balancedness;
  double max_load = 0;           // mean over layers of layer_max_load
  double mean_load = 0;          // mean over layers of layer_mean_load
  double balancedness = 0;       // mean_load / max_load
  double min_balancedness = 0;   // worst layer
  double load_term = 0;          // sum over layers of layer_max_load (tokens)
  double transitions = 0;        // tokens of all co-activations
  double cross_transitions = 0;  // of those, tokens that change instance
  double cross_per_token = 0;    // cross_transitions / tokens (tokens = layer 0's load / top_k)
  int64_t copies = 0;            // (layer, expert) copies in the plan
  int64_t copies_moved = 0;      // copies not in the current plan (0 without one)
  int64_t bytes_moved = 0;       // copies_moved * bytes_per_expert
  double lambda = 0;             // the weights used (mu resolved when automatic)
  double mu = 0;
  double cost = 0;  // load_term + lambda * cross_transitions + mu * copies_moved
};

// mu as used by the objective: problem.weights.mu, or when negative the mean load of one
// (layer, expert).
double ResolvedMu(const PlacementProblem& problem);

// Scores `plan` for `problem`. The plan must have the problem's shape (ValidatePlan-valid);
// a current plan of another shape counts every copy as moved, its replicas on instances
// outside the problem are ignored.
PlanObjective EvaluatePlan(const PlacementProblem& problem, const PlacementPlan& plan);

// The co-activations into each (layer, expert), merged: entry (l + 1) * experts + b lists
// (a, total count) of the pairs (l, a) -> (l + 1, b); out-of-range or empty entries of
// problem.coact are skipped. Layer 0's entries are empty.
std::vector<std::vector<std::pair<int, double>>> Predecessors(const PlacementProblem& problem);

// The busiest instance's speed-weighted load in `layer` of `plan` (tokens x share summed per
// instance, divided by its speed): the per-layer term of the objective.
double LayerMaxLoad(const PlacementProblem& problem, const PlacementPlan& plan, int layer);

// Capacity check: no instance holds more copies than problem.Capacity(i), no copy on a dead one.
absl::Status CheckCapacity(const PlacementProblem& problem, const PlacementPlan& plan);

// One line: "max_load=... mean_load=... balancedness=... cross/token=... moved=... cost=...".
std::string ObjectiveSummary(const PlanObjective& o);

}  // namespace moe::scheduler

#endif  // MOE_SCHEDULER_PLACEMENT_OBJECTIVE_H_
