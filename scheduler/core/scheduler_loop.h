// SchedulerLoop: the scheduler process's one scheduling thread ("sched-loop"). It calls
// SchedulerCore::Tick with the given clock's time whenever a membership change asks for it and
// at least every `period`, and reports each tick to `on_tick` (metrics, logs) on that thread.
#ifndef MOE_SCHEDULER_CORE_SCHEDULER_LOOP_H_
#define MOE_SCHEDULER_CORE_SCHEDULER_LOOP_H_

#include <functional>
#include <thread>

#include "common/clock.h"
#include "scheduler/core/scheduler_core.h"

namespace moe::scheduler {

class SchedulerLoop {
 public:
  using TickCallback = std::function<void(const TickResult&, const SchedulerStats&)>;
  // Starts the thread. `core` and `clock` must outlive this object.
  SchedulerLoop(SchedulerCore* core, const Clock* clock, absl::Duration period,
                TickCallback on_tick);
  ~SchedulerLoop();  // Stop()
  // Stops the core's waits and joins the thread. Idempotent.
  void Stop();

 private:
  void Run();

  SchedulerCore* core_;
  const Clock* clock_;
  absl::Duration period_;
  TickCallback on_tick_;
  std::thread thread_;
};

}  // namespace moe::scheduler

#endif  // MOE_SCHEDULER_CORE_SCHEDULER_LOOP_H_
