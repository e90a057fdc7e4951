// SchedulerCoreTarget: the ScalingTarget of the scheduler process, over SchedulerCore.
// Thread-safe (SchedulerCore is).
#ifndef MOE_SCHEDULER_SCALING_CORE_TARGET_H_
#define MOE_SCHEDULER_SCALING_CORE_TARGET_H_

#include "scheduler/core/scheduler_core.h"
#include "scheduler/scaling/scaling_target.h"

namespace moe::scheduler {

class SchedulerCoreTarget final : public ScalingTarget {
 public:
  explicit SchedulerCoreTarget(SchedulerCore* core) : core_(core) {}  // core outlives this

  std::vector<Member> Members() const override { return core_->Members(); }
  LoadSnapshot Load(absl::Time now) override { return core_->Load(now); }
  absl::Status Drain(const std::string& id) override { return core_->Drain(id); }
  bool Drained(const std::string& id) const override { return core_->Drained(id); }

 private:
  SchedulerCore* const core_;
};

}  // namespace moe::scheduler

#endif  // MOE_SCHEDULER_SCALING_CORE_TARGET_H_
