// ScalingTarget: what the ScaleController reads from and asks of the scheduler. The process
// wires SchedulerCoreTarget (core_target.h) over SchedulerCore; tests use a fake.
//
// Thread-safety: implementations are called from the controller's thread ("sched-scale") while
// the scheduler's other threads run; SchedulerCore's methods are thread-safe.
#ifndef MOE_SCHEDULER_SCALING_SCALING_TARGET_H_
#define MOE_SCHEDULER_SCALING_SCALING_TARGET_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "scheduler/load/load_window.h"
#include "scheduler/membership/membership.h"

namespace moe::scheduler {

class ScalingTarget {
 public:
  virtual ~ScalingTarget() = default;
  // Live members, all roles (SchedulerCore::Members).
  virtual std::vector<Member> Members() const = 0;
  // Load over the window ending at `now` (SchedulerCore::Load).
  virtual LoadSnapshot Load(absl::Time now) = 0;
  // Asks for a plan without expert instance `id` (SchedulerCore::Drain): NOT_FOUND if unknown,
  // FAILED_PRECONDITION if it is the last one.
  virtual absl::Status Drain(const std::string& id) = 0;
  // True once nothing routes to `id` any more (SchedulerCore::Drained).
  virtual bool Drained(const std::string& id) const = 0;
};

}  // namespace moe::scheduler

#endif  // MOE_SCHEDULER_SCALING_SCALING_TARGET_H_
