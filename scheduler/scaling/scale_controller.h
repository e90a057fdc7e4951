// ScaleController: the scheduler's elastic-scaling loop (one named thread, "sched-scale").
// Every `interval` it reads the scheduler (live expert members with their measured tokens/s,
// the load window), calls DecideScale, and acts through the InstanceProvider:
//   - grow: provider->ScaleTo(n + k); the new instances register and the scheduler places
//     experts on them like on any joining instance;
//   - shrink by k: k times, one at a time: the instance NextToRemove names is drained
//     (target->Drain(its member id): a plan without it) and, once target->Drained(id) (or after
//     `drain_timeout`, with a warning), the provider scales to n - 1, stopping exactly that one.
//     An instance not registered (still starting, or gone) is removed without draining.
// A drain never blocks the loop: each step re-checks Drained and returns. While a shrink is in
// progress no new decision is made. Instances that exit on their own are logged; the next
// decision restores the minimum.
//
// Thread-safety: Start/Stop from the owner thread. Step is what the thread runs; tests call it
// directly (without Start) with a FakeClock's time. `target` and `provider` are used only on the
// thread that runs Step.
#ifndef MOE_SCHEDULER_SCALING_SCALE_CONTROLLER_H_
#define MOE_SCHEDULER_SCALING_SCALE_CONTROLLER_H_

#include <cstdint>
#include <functional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "scheduler/scaling/decide_scale.h"
#include "scheduler/scaling/instance_provider.h"
#include "scheduler/scaling/scaling_target.h"

namespace moe::scheduler {

struct ScaleControllerOptions {
  ScaleParams params;
  absl::Duration interval = absl::Seconds(1);
  // Demand = tokens in the load window / this (the scheduler's --load-window-s).
  absl::Duration load_window = absl::Seconds(60);
  // A drain that has not finished after this removes the instance anyway (logged).
  absl::Duration drain_timeout = absl::Seconds(60);
};

absl::Status ValidateScaleControllerOptions(const ScaleControllerOptions& o);

// What one step saw and did (for metrics and tests).
struct ScaleStatus {
  ScaleDecision decision;      // the last decision made (kept while a shrink is in progress)
  int current = 0;             // provider's count after the step
  int64_t scale_ups = 0;       // grow actions so far
  int64_t scale_downs = 0;     // instances removed by scale-down so far
  int64_t instance_exits = 0;  // instances that ended on their own so far
  std::string draining;        // name of the instance being drained, "" if none
  absl::Status error;          // a provider / target failure in this step
};

class ScaleController {
 public:
  using StepCallback = std::function<void(const ScaleStatus&)>;
  // All pointers must outlive this object. `on_step` (may be null) runs after every step on the
  // stepping thread.
  ScaleController(ScalingTarget* target, InstanceProvider* provider, const Clock* clock,
                  ScaleControllerOptions options, StepCallback on_step = nullptr);
  ~ScaleController();  // Stop()

  // Starts "sched-scale": Step(clock->Now()) every interval (the first at once).
  void Start();
  // Joins the thread (returns within one step). Idempotent.
  void Stop();

  ScaleStatus Step(absl::Time now);

 private:
  void Run();
  // Not draining: continues a shrink, or decides with `current` instances and acts.
  void Decide(absl::Time now, int current, ScaleStatus* st);
  // Drains (or directly removes) NextToRemove. Step's thread.
  void StartDrain(absl::Time now, ScaleStatus* st);
  void ContinueDrain(absl::Time now, ScaleStatus* st);
  // provider->ScaleTo(current - 1).
  void RemoveOne(absl::Time now, ScaleStatus* st);

  ScalingTarget* const target_;
  InstanceProvider* const provider_;
  const Clock* const clock_;
  const ScaleControllerOptions options_;
  const StepCallback on_step_;

  // Step's state (one stepping thread at a time).
  absl::Time last_action_ = absl::InfinitePast();
  ScaleDecision decision_;
  int down_target_ = -1;  // a shrink in progress walks down to this count; -1: none
  std::string draining_name_;
  std::string draining_id_;
  absl::Time draining_since_;
  int64_t ups_ = 0;
  int64_t downs_ = 0;
  int64_t exits_ = 0;

  absl::Mutex mu_;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace moe::scheduler

#endif  // MOE_SCHEDULER_SCALING_SCALE_CONTROLLER_H_
