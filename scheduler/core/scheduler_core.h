// SchedulerCore: the scheduler's state and decisions, without gRPC. Membership, the load
// window, and the current placement plan; Tick(now) declares dead instances and publishes a new
// plan (epoch + 1) when the set of live expert instances changed.
//
// Thread-safety: every method is thread-safe (one mutex). gRPC handlers call Register,
// Heartbeat, ReportLoad and Current (cheap: no placement is computed there); the scheduling
// loop thread calls AwaitWork and Tick. The plan listener runs on the Tick caller's thread,
// outside the mutex.
#ifndef MOE_SCHEDULER_CORE_SCHEDULER_CORE_H_
#define MOE_SCHEDULER_CORE_SCHEDULER_CORE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "scheduler/load/load_window.h"
#include "scheduler/membership/membership.h"
#include "scheduler/placement/greedy.h"
#include "scheduler/placement/plan.h"

namespace moe::scheduler {

enum class PlanReason { kInitial, kMembership, kFailover, kRebalance, kScale };
enum class PlacementPolicy { kGreedy, kRoundRobin };

struct SchedulerConfig {
  int layers = 0;   // MoE layers to place (> 0)
  int experts = 0;  // routed experts per layer (> 0)
  ReplicationParams replication;
  PlacementPolicy policy = PlacementPolicy::kGreedy;
  int64_t bytes_per_expert = 0;  // 0 = unknown: memory limits ignored
  // The INITIAL plan waits until this many expert instances registered (so N instances started
  // together get one plan over all N, not a plan over the first and then reshuffles). Later
  // plans (joins, deaths) are made with whatever is live.
  int min_expert_instances = 1;
  absl::Duration heartbeat_interval = absl::Milliseconds(500);  // told to instances
  absl::Duration heartbeat_timeout = absl::Seconds(3);          // silence => dead
  absl::Duration load_window = absl::Seconds(60);
  absl::Duration load_bucket = absl::Seconds(5);
};

absl::Status ValidateSchedulerConfig(const SchedulerConfig& config);

// A published plan. Immutable once published (shared between watchers).
struct PublishedPlan {
  PlacementPlan plan;
  PlanReason reason = PlanReason::kInitial;
  bool pending = false;  // make-before-break (issue "scheduler"); always false here
  int64_t committed_epoch = 0;
};

struct SchedulerStats {
  int64_t epoch = 0;
  int expert_instances = 0;     // live
  int attention_instances = 0;  // live
  int64_t instance_deaths = 0;  // members declared dead (missed heartbeats), all roles
  int64_t failovers = 0;        // plans published because an expert instance in the plan died
  int64_t plans_published = 0;
};

struct TickResult {
  std::vector<std::string> dead;                // declared dead at this tick
  std::shared_ptr<const PublishedPlan> published;  // nullptr: no new plan
  absl::Status placement_status;                // why no plan could be made, if one was due
};

class SchedulerCore {
 public:
  using PlanListener = std::function<void(std::shared_ptr<const PublishedPlan>)>;

  // `config` must pass ValidateSchedulerConfig.
  SchedulerCore(SchedulerConfig config, PlanListener listener);

  const SchedulerConfig& config() const { return config_; }

  absl::StatusOr<std::string> Register(const MemberInfo& info, absl::Time now);
  absl::Status Heartbeat(const std::string& id, const HeartbeatInfo& hb, absl::Time now);
  // INVALID_ARGUMENT on a shape mismatch; NOT_FOUND for an unknown instance id (if given).
  absl::Status ReportLoad(const std::string& id, const LoadReport& report, absl::Time now);

  // The newest plan, or nullptr before the first one.
  std::shared_ptr<const PublishedPlan> Current() const;
  SchedulerStats Stats() const;
  // Live members in registration order (with their last heartbeat's status).
  std::vector<Member> Members() const;
  LoadSnapshot Load(absl::Time now);

  // Liveness check and re-placement. Publishes (and calls the listener) at most once.
  // Called by one thread at a time (the scheduling loop; tests), so listener calls are ordered.
  TickResult Tick(absl::Time now);

  // Blocks until a membership change asks for a Tick, Stop() is called, or `timeout` passes.
  // Returns false once stopped.
  bool AwaitWork(absl::Duration timeout);
  void Stop();

 private:
  absl::StatusOr<PlacementPlan> Place(const std::vector<Member>& experts,
                                      const PublishedPlan* current, bool failover,
                                      absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  bool WorkOrStopped() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return work_ || stopped_; }

  const SchedulerConfig config_;
  const PlanListener listener_;
  mutable absl::Mutex mu_;
  MembershipTable members_ ABSL_GUARDED_BY(mu_);
  LoadWindow window_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<const PublishedPlan> current_ ABSL_GUARDED_BY(mu_);
  SchedulerStats stats_ ABSL_GUARDED_BY(mu_);
  bool work_ ABSL_GUARDED_BY(mu_) = false;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace moe::scheduler

#endif  // MOE_SCHEDULER_CORE_SCHEDULER_CORE_H_
