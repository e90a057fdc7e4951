// SchedulerCore: the scheduler's state and decisions, without gRPC. Membership, the load
// window, and the current placement plan; Tick(now) declares dead instances and publishes a new
// plan (epoch + 1) when the set of expert instances to place on changed or the load is out of
// balance.
//
// Make before break (DESIGN.md section 5): the initial plan and failover plans (an instance of
// the plan died: nothing to keep serving with) are published COMMITTED at once. Every other new
// plan (an instance joined, an instance is drained for scale-down, a rebalance) is published
// PENDING first: expert services load its experts while serving the committed plan and report
// loaded_epoch in their heartbeats; once every instance of the pending plan has, a later Tick
// publishes the same epoch COMMITTED (attention workers switch between steps; expert services
// drop what they no longer hold after a grace). A pending plan not loaded within
// rebalance.commit_timeout is abandoned (the committed plan is published again).
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
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "scheduler/core/rebalance.h"
#include "scheduler/load/load_window.h"
#include "scheduler/membership/membership.h"
#include "scheduler/placement/greedy.h"
#include "scheduler/placement/plan.h"
#include "scheduler/placement/solver.h"

namespace moe::scheduler {

enum class PlanReason { kInitial, kMembership, kFailover, kRebalance, kScale };
// kLayerBlocks is for expert instances sharing one host's cores (`moe up`): whole layers per
// instance (LayerBlockPlacement); it excludes load rebalancing, which would split the layers.
enum class PlacementPolicy { kGreedy, kRoundRobin, kLayerBlocks };

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
  RebalanceConfig rebalance;
  int top_k = 1;  // experts per token per layer (the objective's token counts)
  // The solver of rebalance plans: load-aware whatever `policy` is, with the committed plan as
  // the baseline of the migration term. Runs outside the core's mutex.
  SolverKind rebalance_solver = SolverKind::kIlpCbc;
  double solve_time_limit_s = 2.0;
};

absl::Status ValidateSchedulerConfig(const SchedulerConfig& config);

// A published plan. Immutable once published (shared between watchers).
struct PublishedPlan {
  PlacementPlan plan;
  PlanReason reason = PlanReason::kInitial;
  bool pending = false;         // make-before-break: load, keep routing with committed_epoch
  int64_t committed_epoch = 0;  // == plan.epoch once committed
};

struct SchedulerStats {
  int64_t epoch = 0;
  int expert_instances = 0;           // live
  int attention_instances = 0;        // live
  int64_t instance_deaths = 0;        // members declared dead (missed heartbeats), all roles
  int64_t failovers = 0;              // plans published because an expert instance in the plan died
  int64_t plans_published = 0;        // pending and committed publications
  int64_t pending_epoch = 0;          // the pending plan's epoch; 0 when none
  int64_t rebalances = 0;             // rebalance plans committed
  int64_t abandoned = 0;              // pending plans abandoned (not loaded in time)
  double last_rebalance_seconds = 0;  // pending -> committed time of the newest rebalance
  // The committed plan's balancedness per layer (mean / max instance load) under the window's
  // load, refreshed about once a second; empty before a plan and a load report exist.
  std::vector<double> balancedness;
  // The newest rebalance solve (published or not): seconds and its plan's objective parts.
  int64_t solves = 0;
  double last_solve_seconds = 0;
  PlanObjective last_objective;
  int layers = 0, experts = 0;
  // Tokens per (layer, expert) [layers * experts] over every load report since start.
  std::vector<int64_t> expert_tokens;
};

struct TickResult {
  std::vector<std::string> dead;                   // declared dead at this tick
  std::shared_ptr<const PublishedPlan> published;  // nullptr: no new plan
  absl::Status placement_status;                   // why no plan could be made, if one was due
  std::string note;  // a decision worth logging (rebalance tried, pending plan abandoned)
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

  // The newest committed plan, or nullptr before the first one.
  std::shared_ptr<const PublishedPlan> Current() const;
  // The pending plan (published, not committed yet), or nullptr.
  std::shared_ptr<const PublishedPlan> Pending() const;
  // Asks the next Tick to publish a plan without expert instance `id` (reason kScale, made
  // before break). NOT_FOUND if unknown; FAILED_PRECONDITION if it is the last expert instance
  // not being drained.
  absl::Status Drain(const std::string& id);
  // True once a COMMITTED plan without `id` is published and every live attention instance
  // heartbeats an applied epoch >= that plan's epoch (nothing routes to `id` any more).
  bool Drained(const std::string& id) const;
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
  // How Place makes a plan: kPolicy from scratch with config.policy (the first plan, joins);
  // kRepair keeps the current plan's replicas on the instances still in `experts` and re-places
  // the rest (failover, drains).
  enum class PlaceMode { kPolicy, kRepair };
  absl::StatusOr<PlacementPlan> Place(const std::vector<Member>& experts,
                                      const PublishedPlan* current, PlaceMode mode, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The problem over `experts` (in that order) with the window's load; `window_tokens` (if not
  // null) gets the window's token count.
  PlacementProblem Problem(const std::vector<Member>& experts, absl::Time now,
                           int64_t* window_tokens = nullptr) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::shared_ptr<const PublishedPlan> Publish(PlacementPlan plan, PlanReason reason, bool pending,
                                               absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Pending plan bookkeeping: commits it when every instance loaded it, abandons it on timeout.
  std::shared_ptr<const PublishedPlan> AdvancePending(absl::Time now, std::string* note)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A rebalance decided under the mutex and solved outside it.
  struct RebalanceJob {
    PlacementProblem problem;
    std::vector<Member> experts;
    std::shared_ptr<const PublishedPlan> base;  // the committed plan it improves on
    double before = 1.0;                        // base's worst layer balancedness
    std::string why;
  };
  // Refreshes stats_.balancedness (about once a second); a job when DecideRebalance says so.
  std::optional<RebalanceJob> PlanRebalance(const std::vector<Member>& experts, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The rebalance solver (no lock needed: reads only the immutable config).
  absl::StatusOr<SolveReport> SolveBalanced(const PlacementProblem& problem) const;
  // Publishes the solved plan as pending if nothing changed meanwhile and it beats the base's
  // worst layer by rebalance.min_improvement.
  std::shared_ptr<const PublishedPlan> FinishRebalance(const RebalanceJob& job,
                                                       absl::StatusOr<SolveReport> report,
                                                       absl::Time now, std::string* note)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A plan for a changed set of expert instances (initial, failover, join, drain).
  absl::StatusOr<std::shared_ptr<const PublishedPlan>> Replan(const std::vector<Member>& experts,
                                                              const std::vector<Member>& live,
                                                              absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool Drained(const std::string& id, const PublishedPlan* plan) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  bool WorkOrStopped() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return work_ || stopped_; }

  const SchedulerConfig config_;
  const PlanListener listener_;
  mutable absl::Mutex mu_;
  MembershipTable members_ ABSL_GUARDED_BY(mu_);
  LoadWindow window_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<const PublishedPlan> current_ ABSL_GUARDED_BY(mu_);  // committed
  std::shared_ptr<const PublishedPlan> pending_ ABSL_GUARDED_BY(mu_);
  absl::Time pending_since_ ABSL_GUARDED_BY(mu_);
  absl::Time last_change_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();   // commit or attempt
  absl::Time last_balance_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();  // balancedness refresh
  std::set<std::string> draining_ ABSL_GUARDED_BY(mu_);
  int64_t last_epoch_ ABSL_GUARDED_BY(mu_) = 0;  // newest epoch ever published (even abandoned)
  SchedulerStats stats_ ABSL_GUARDED_BY(mu_);
  bool work_ ABSL_GUARDED_BY(mu_) = false;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace moe::scheduler

#endif  // MOE_SCHEDULER_CORE_SCHEDULER_CORE_H_
