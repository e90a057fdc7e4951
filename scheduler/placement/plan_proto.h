// Conversion between PlacementPlan and moe.scheduler.v1.PlacementPlan (the wire form).
#ifndef MOE_SCHEDULER_PLACEMENT_PLAN_PROTO_H_
#define MOE_SCHEDULER_PLACEMENT_PLAN_PROTO_H_

#include "absl/status/statusor.h"
#include "moe/scheduler/v1/scheduler.pb.h"
#include "scheduler/placement/plan.h"

namespace moe::scheduler {

namespace v1 = ::moe::scheduler::v1;

// Writes epoch, shape, instances (ids/addresses from plan.instance_info, empty strings when
// absent) and every (layer, expert) in layer-major order. State/reason are left to the caller.
void PlanToProto(const PlacementPlan& plan, v1::PlacementPlan* out);
// Reads and validates (ValidatePlan). Replica.instance_index is authoritative.
absl::StatusOr<PlacementPlan> PlanFromProto(const v1::PlacementPlan& in);

}  // namespace moe::scheduler

#endif  // MOE_SCHEDULER_PLACEMENT_PLAN_PROTO_H_
