// PlacementProblem: what a placement solver needs to know. A plain value.
#ifndef MOE_SCHEDULER_PLACEMENT_PROBLEM_H_
#define MOE_SCHEDULER_PLACEMENT_PROBLEM_H_

#include <algorithm>
#include <cstdint>
#include <optional>
#include <vector>

#include "scheduler/placement/plan.h"

namespace moe::scheduler {

// Tokens that chose expert `a` in `layer` and expert `b` in `layer + 1`.
struct CoActivation {
  int layer = 0;
  int a = 0;
  int b = 0;
  int64_t count = 0;
};

// Weights of the placement objective (see objective.h):
//   cost = sum over layers of the busiest instance's speed-weighted load (tokens)
//        + lambda * tokens that change instance between consecutive layers
//        + mu * expert copies moved from the current plan (each copy = bytes_per_expert bytes).
// All three terms are in tokens, so lambda is unitless and mu is tokens per copy moved.
struct ObjectiveWeights {
  double lambda = 0.5;
  // < 0: automatic, the mean load of one (layer, expert) in the window (moving one expert's
  // weights costs as much as serving one average expert's tokens for a window).
  double mu = -1.0;
};

struct PlacementProblem {
  int layers = 0;
  int experts = 0;    // per layer
  int instances = 0;  // expert-service instances, indexed [0, instances)
  // (layer, expert) copies each instance may hold: empty or `instances` entries; 0 = no limit.
  std::vector<int> slots;
  // Bytes of expert weights each instance may hold: empty or `instances` entries; 0 = no limit.
  std::vector<int64_t> memory_bytes;
  int64_t bytes_per_expert = 0;  // weights of one (layer, expert); 0 = unknown (memory ignored)
  // [layers * experts] tokens per (layer, expert) in the window; empty = uniform load.
  std::vector<double> load;
  std::vector<CoActivation> coact;  // used by the ILP and the objective, not by greedy
  // Relative speed of each instance (tokens it serves per unit of time; 1 = nominal): empty or
  // `instances` entries; <= 0 reads as 1. Loads are divided by it when finding the busiest one.
  std::vector<double> speed;
  // Instances that may hold copies: empty = all; a dead instance's capacity is 0.
  std::vector<bool> live;
  int top_k = 1;  // experts per token per layer (turns expert loads into token counts)
  // The plan in force, indexed by this problem's instances (for "bytes moved"); none = no move
  // is counted.
  std::optional<PlacementPlan> current;
  ObjectiveWeights weights;
  double time_limit_seconds = 10.0;  // for the ILP solvers

  double Speed(int i) const {
    return i < static_cast<int>(speed.size()) && speed[i] > 0 ? speed[i] : 1.0;
  }
  bool Live(int i) const { return i >= static_cast<int>(live.size()) || live[i]; }

  double Load(int layer, int expert) const {
    return load.empty() ? 1.0 : load[static_cast<size_t>(layer) * experts + expert];
  }
  // Copies instance `i` can hold: min of its slot and memory limits; `layers * experts` when
  // unlimited (more copies than that are never useful); 0 for a dead instance.
  int Capacity(int i) const {
    if (!Live(i)) return 0;
    int64_t cap = static_cast<int64_t>(layers) * experts;
    if (i < static_cast<int>(slots.size()) && slots[i] > 0) cap = std::min<int64_t>(cap, slots[i]);
    if (bytes_per_expert > 0 && i < static_cast<int>(memory_bytes.size()) && memory_bytes[i] > 0) {
      cap = std::min<int64_t>(cap, memory_bytes[i] / bytes_per_expert);
    }
    return static_cast<int>(cap);
  }
};

}  // namespace moe::scheduler

#endif  // MOE_SCHEDULER_PLACEMENT_PROBLEM_H_
