// A bounded FIFO of jobs drained by one named thread. TryPush never blocks (false when full:
// the caller answers RESOURCE_EXHAUSTED). Stop() runs the jobs already queued, then joins.
// Jobs run one at a time: TryRunInline runs a job on the caller's thread instead, but only
// when nothing is queued or running, so the order and the one-at-a-time rule still hold.
#ifndef MOE_EXPERT_SERVICE_GRPC_WORK_QUEUE_H_
#define MOE_EXPERT_SERVICE_GRPC_WORK_QUEUE_H_

#include <pthread.h>

#include <deque>
#include <functional>
#include <string>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace moe::expert {

class WorkQueue {
 public:
  using Job = std::function<void()>;

  // `name` (<= 15 chars) names the thread; `on_depth` (optional) is told the depth after
  // every push and pop, from the pushing or draining thread.
  WorkQueue(std::string name, size_t capacity, std::function<void(size_t)> on_depth = nullptr)
      : capacity_(capacity), on_depth_(std::move(on_depth)) {
    thread_ = std::thread([this, name] {
      pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
      Loop();
    });
  }
  ~WorkQueue() { Stop(); }

  bool TryPush(Job job) {
    size_t depth;
    {
      absl::MutexLock lock(&mu_);
      if (stopping_ || jobs_.size() >= capacity_) return false;
      jobs_.push_back(std::move(job));
      depth = jobs_.size();
    }
    if (on_depth_) on_depth_(depth);
    return true;
  }

  // Runs `job` now on the calling thread if the queue is idle (nothing queued, no job
  // running) and not stopping; returns false (job not run) otherwise. While it runs, the
  // queue's thread waits and TryPush still queues behind it. Saves the hand-off to the
  // queue's thread (a wake-up that costs up to a millisecond when other processes hold the
  // cores) for a caller that would only wait anyway.
  bool TryRunInline(const Job& job) {
    {
      absl::MutexLock lock(&mu_);
      if (stopping_ || running_ || !jobs_.empty()) return false;
      running_ = true;
    }
    job();
    absl::MutexLock lock(&mu_);
    running_ = false;
    return true;
  }

  void Stop() {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
    }
    if (thread_.joinable()) thread_.join();
  }

 private:
  void Loop() {
    for (;;) {
      Job job;
      size_t depth;
      {
        absl::MutexLock lock(&mu_);
        mu_.Await(absl::Condition(
            +[](WorkQueue* q) ABSL_EXCLUSIVE_LOCKS_REQUIRED(q->mu_) {
              return !q->running_ && (q->stopping_ || !q->jobs_.empty());
            },
            this));
        if (jobs_.empty()) return;  // stopping and drained
        job = std::move(jobs_.front());
        jobs_.pop_front();
        depth = jobs_.size();
        running_ = true;
      }
      if (on_depth_) on_depth_(depth);
      job();
      absl::MutexLock lock(&mu_);
      running_ = false;
    }
  }

  const size_t capacity_;
  const std::function<void(size_t)> on_depth_;
  absl::Mutex mu_;
  std::deque<Job> jobs_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool running_ ABSL_GUARDED_BY(mu_) = false;  // a job runs (queue thread or TryRunInline)
  std::thread thread_;
};

}  // namespace moe::expert

#endif  // MOE_EXPERT_SERVICE_GRPC_WORK_QUEUE_H_
