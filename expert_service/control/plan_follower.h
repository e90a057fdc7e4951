// PlanFollower: makes an expert service hold what the scheduler's placement plans give it
// (DESIGN.md section 5; issue 4 item 5). For each plan it computes its own (layer, expert) set
// (the replicas whose instance is this instance), loads the missing experts into the
// ShardExecutor (ModelExpertSource::LoadInto) on its own thread ("plan-loader"), so Forward
// keeps being served meanwhile, and then drops the experts it no longer holds after
// `drop_grace` (requests routed with the previous epoch by attention workers that have not
// switched yet still succeed in that window).
//
// COMMITTED plans become the applied epoch once their experts are loaded (ready() from then
// on); PENDING plans (make-before-break) are loaded without dropping anything and reported as
// loaded_epoch. Only the newest plan queued is applied (a plan that arrives while loading
// supersedes the ones queued before it). Experts of dense layers are ignored. A plan that does
// not list this instance (made before it registered, or after it was declared dead) changes
// nothing: the experts stay loaded and the epoch is not applied.
//
// Thread-safety: every public method is thread-safe; OnPlan returns at once.
#ifndef MOE_EXPERT_SERVICE_CONTROL_PLAN_FOLLOWER_H_
#define MOE_EXPERT_SERVICE_CONTROL_PLAN_FOLLOWER_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "expert_service/executor/model_experts.h"
#include "expert_service/executor/shard_executor.h"
#include "moe/scheduler/v1/scheduler.pb.h"

namespace moe::expert {

struct PlanFollowerOptions {
  absl::Duration drop_grace = absl::Seconds(5);      // keep no-longer-placed experts this long
  absl::Duration retry_after = absl::Seconds(1);     // after a failed load
  // Called (on the loader thread) when ready() changes, e.g. to set gRPC health.
  std::function<void(bool ready)> on_ready_change;
};

class PlanFollower {
 public:
  // `executor` and `source` must outlive the follower.
  PlanFollower(ShardExecutor* executor, const ModelExpertSource* source,
               PlanFollowerOptions options = {});
  ~PlanFollower();  // Stop()

  // Queues `plan` for the loader thread; `self_id` is this instance's scheduler id when the
  // plan arrived (it changes when the instance registers again). Thread-safe; does not block
  // on loading.
  void OnPlan(const ::moe::scheduler::v1::PlacementPlan& plan, const std::string& self_id);

  // The epoch of the newest committed plan fully applied (its experts loaded); 0 before.
  int64_t applied_epoch() const;
  // Newest pending epoch whose experts are loaded (0: none).
  int64_t loaded_epoch() const;
  // True once a committed plan was applied, until applying a later one fails (it stays true
  // while a later plan loads: the previous epoch's experts are still served).
  bool ready() const;
  // Blocks until applied_epoch() >= epoch or `timeout` passes; returns applied_epoch().
  int64_t WaitForApplied(int64_t epoch, absl::Duration timeout) const;

  // This instance's (layer, expert) set in `plan` for instance `self_id`: replicas whose
  // instance id is `self_id`, MoE layers only, sorted. INVALID_ARGUMENT if the plan's shape is
  // not the model's. Pure.
  static absl::StatusOr<std::vector<std::pair<int, int>>> ExpertsOf(
      const ::moe::scheduler::v1::PlacementPlan& plan, const std::string& self_id,
      const model::ModelConfig& config);

  // Stops the loader thread (a load in progress finishes first). Idempotent.
  void Stop();

 private:
  void Loop();
  // Applies `plan`: loads its missing experts; schedules drops. Loader thread only.
  absl::Status Apply(const ::moe::scheduler::v1::PlacementPlan& plan, const std::string& self);
  void DropExpired(absl::Time now);  // loader thread only
  void SetReady(bool ready);

  ShardExecutor* const executor_;
  const ModelExpertSource* const source_;
  const PlanFollowerOptions options_;

  mutable absl::Mutex mu_;
  using Queued = std::pair<::moe::scheduler::v1::PlacementPlan, std::string>;  // plan, self id
  std::optional<Queued> queued_ ABSL_GUARDED_BY(mu_);
  int64_t applied_epoch_ ABSL_GUARDED_BY(mu_) = 0;
  bool applied_any_ ABSL_GUARDED_BY(mu_) = false;
  int64_t loaded_epoch_ ABSL_GUARDED_BY(mu_) = 0;
  bool ready_ ABSL_GUARDED_BY(mu_) = false;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;

  // Loader thread only.
  std::set<std::pair<int, int>> wanted_;  // the newest applied plan's set (committed or pending)
  std::vector<std::pair<absl::Time, std::pair<int, int>>> drops_;  // (when, expert)
  std::thread thread_;
};

}  // namespace moe::expert

#endif  // MOE_EXPERT_SERVICE_CONTROL_PLAN_FOLLOWER_H_
