// PlacementPlan: a versioned value saying, for every (layer, expert), which expert-service
// instances hold a replica and which share of that expert's tokens each replica gets.
//
// Thread-safety: a plain value; the functions are pure.
#ifndef MOE_SCHEDULER_PLACEMENT_PLAN_H_
#define MOE_SCHEDULER_PLACEMENT_PLAN_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace moe::scheduler {

struct Replica {
  int instance = 0;    // index into PlacementPlan::instance_info / [0, instances)
  double share = 0.0;  // fraction of the expert's tokens; an expert's shares sum to 1

  bool operator==(const Replica&) const = default;
};

// Who an instance index is, when the plan comes from a live scheduler (empty strings offline).
struct PlanInstance {
  std::string id;
  std::string address;

  bool operator==(const PlanInstance&) const = default;
};

struct PlacementPlan {
  int64_t epoch = 0;
  int instances = 0;
  int layers = 0;
  int experts = 0;  // per layer
  // [layers * experts], layer-major: replicas[l * experts + e].
  std::vector<std::vector<Replica>> replicas;
  // Empty, or `instances` entries.
  std::vector<PlanInstance> instance_info;

  const std::vector<Replica>& At(int layer, int expert) const {
    return replicas[static_cast<size_t>(layer) * experts + expert];
  }
  std::vector<Replica>& At(int layer, int expert) {
    return replicas[static_cast<size_t>(layer) * experts + expert];
  }
  // Replica copies held by `instance` (all layers).
  int ReplicasOn(int instance) const;

  bool operator==(const PlacementPlan&) const = default;
};

// Checks the invariants: sizes, every (layer, expert) has >= 1 replica, instance indices in
// range and distinct per expert, shares > 0 and summing to 1 (within 1e-6).
absl::Status ValidatePlan(const PlacementPlan& plan);

// The offline format (DESIGN.md section 5):
//   {"instances": N, "replicas": {"l:e": [[instance, share], ...], ...}}
// plus optional "epoch", "layers", "experts" (written by PlanToJson; when absent on read, the
// shape is the largest l and e seen + 1). Read validates with ValidatePlan.
std::string PlanToJson(const PlacementPlan& plan);
absl::StatusOr<PlacementPlan> PlanFromJson(const std::string& json);

}  // namespace moe::scheduler

#endif  // MOE_SCHEDULER_PLACEMENT_PLAN_H_
