#include "scheduler/core/scheduler_loop.h"

#include <pthread.h>

#include <utility>

namespace moe::scheduler {

SchedulerLoop::SchedulerLoop(SchedulerCore* core, const Clock* clock, absl::Duration period,
                             TickCallback on_tick)
    : core_(core), clock_(clock), period_(period), on_tick_(std::move(on_tick)) {
  thread_ = std::thread([this] { Run(); });
}

SchedulerLoop::~SchedulerLoop() { Stop(); }

void SchedulerLoop::Stop() {
  core_->Stop();
  if (thread_.joinable()) thread_.join();
}

void SchedulerLoop::Run() {
  pthread_setname_np(pthread_self(), "sched-loop");
  for (;;) {
    const TickResult r = core_->Tick(clock_->Now());
    if (on_tick_) on_tick_(r, core_->Stats());
    if (!core_->AwaitWork(period_)) return;
  }
}

}  // namespace moe::scheduler
