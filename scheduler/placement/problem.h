// PlacementProblem: what a placement solver needs to know. A plain value.
#ifndef MOE_SCHEDULER_PLACEMENT_PROBLEM_H_
#define MOE_SCHEDULER_PLACEMENT_PROBLEM_H_

#include <cstdint>
#include <vector>

namespace moe::scheduler {

// Tokens that chose expert `a` in `layer` and expert `b` in `layer + 1`.
struct CoActivation {
  int layer = 0;
  int a = 0;
  int b = 0;
  int64_t count = 0;
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
  std::vector<CoActivation> coact;  // used by the ILP (issue "scheduler"), not by greedy

  double Load(int layer, int expert) const {
    return load.empty() ? 1.0 : load[static_cast<size_t>(layer) * experts + expert];
  }
  // Copies instance `i` can hold: min of its slot and memory limits; `layers * experts` when
  // unlimited (more copies than that are never useful).
  int Capacity(int i) const {
    int64_t cap = static_cast<int64_t>(layers) * experts;
    if (i < static_cast<int>(slots.size()) && slots[i] > 0) cap = std::min<int64_t>(cap, slots[i]);
    if (bytes_per_expert > 0 && i < static_cast<int>(memory_bytes.size()) &&
        memory_bytes[i] > 0) {
      cap = std::min<int64_t>(cap, memory_bytes[i] / bytes_per_expert);
    }
    return static_cast<int>(cap);
  }
};

}  // namespace moe::scheduler

#endif  // MOE_SCHEDULER_PLACEMENT_PROBLEM_H_
