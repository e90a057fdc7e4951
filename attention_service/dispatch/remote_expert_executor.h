// RemoteExpertExecutor: ExpertExecutor whose experts live in expert services reached through
// an ExpertTransport (DESIGN.md section 4, steps 3-5, and the failover of section 5).
//
// Per MoE layer: takes the current PlacementSnapshot from the PlacementHolder (once per layer
// dispatch; a new plan applies from the next dispatch), GroupByExpert, and spreads each
// expert's routed pairs over its usable replicas with ChooseReplicas (replica_choice.h:
// locality-first within shares). The tokens' homes there are the instances (matched by address,
// so they survive a placement change) that computed the tokens' pairs in the previous MoE layer
// of the same forward pass, as recorded in the caller's DispatchMemory; without one (nullptr,
// or it holds no earlier layer for this many tokens: the first MoE layer) there is no locality
// and large shards split into contiguous runs as before. After a successful Run the memory
// holds where this layer's pairs were actually computed (after any resends). ONE
// ComputeRequest per instance carries all its shards in combine mode (router weights and
// compact output rows, `epoch` = the snapshot's epoch), so each instance returns a
// [distinct tokens, hidden] partial sum, which is added into `out` (every replica holds the
// same weights: the choice changes only the float summation order of a token's partial sums).
// All instances are called in parallel with a deadline. A failed call (any status but
// INVALID_ARGUMENT) resends that call's experts to their next replicas and, unless it was
// FAILED_PRECONDITION (alive, but the expert is not loaded there yet), marks its instance (by
// address) unhealthy for `unhealthy_for`. When an expert has no replica left, Run waits up
// to `placement_wait` (in total per Run) for a snapshot with a newer epoch (a scheduler plan
// without the dead instance) and resends the remaining experts with it; UNAVAILABLE when none
// comes (instances that answered FAILED_PRECONDITION are retried every 100 ms meanwhile).
//
// Thread-safety: Run may be called from several threads at once, each with its own
// DispatchMemory (per-call state is local; the health marks are mutex-guarded; the snapshot is
// immutable).
#ifndef MOE_ATTENTION_SERVICE_DISPATCH_REMOTE_EXPERT_EXECUTOR_H_
#define MOE_ATTENTION_SERVICE_DISPATCH_REMOTE_EXPERT_EXECUTOR_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "attention_service/dispatch/expert_executor.h"
#include "attention_service/dispatch/expert_transport.h"
#include "attention_service/dispatch/placement.h"
#include "attention_service/dispatch/replica_choice.h"
#include "attention_service/dispatch/routing_load.h"

namespace moe::attention {

struct RemoteExecutorOptions {
  absl::Duration timeout = absl::Seconds(10);       // per dispatch round (all instances)
  absl::Duration unhealthy_for = absl::Seconds(5);  // skip a failed instance this long
  // Per Run, in total: how long to wait for a newer placement when an expert has no live
  // replica left (0: fail at once).
  absl::Duration placement_wait = absl::ZeroDuration();
  ReplicaChoiceParams replica_choice;  // how shards are spread over an expert's replicas
  int64_t epoch = 0;  // static constructor only: the epoch of the static snapshot
  // Optional (must outlive the executor): every Run's routing is recorded here.
  RoutingLoadRecorder* load = nullptr;
};

class RemoteExpertExecutor final : public ExpertExecutor {
 public:
  // Routes with whatever `placement` holds at each dispatch. `placement` and `transport` must
  // outlive this object.
  RemoteExpertExecutor(const PlacementHolder* placement, ExpertTransport* transport,
                       RemoteExecutorOptions options = {});
  // A fixed placement: `instances[i]` is the transport address of placement instance i (a size
  // mismatch fails every Run with FAILED_PRECONDITION). `transport` must outlive this object;
  // `placement` is copied.
  RemoteExpertExecutor(const StaticPlacement* placement, std::vector<std::string> instances,
                       ExpertTransport* transport, RemoteExecutorOptions options = {});

  absl::Status Run(int layer, const float* x, int hidden, const model::Routing& routing,
                   float* out, DispatchMemory* memory) override;
  bool ComputesElsewhere() const override { return true; }
  bool RunIsThreadSafe() const override { return true; }  // see "Thread-safety" above

  // Experts resent to another replica after a failed call, since construction.
  int64_t failovers() const { return failovers_.load(); }
  // Times a Run waited for a newer placement and got one, since construction.
  int64_t placement_waits() const { return placement_waits_.load(); }
  // Routed pairs dispatched in a layer whose DispatchMemory held the previous MoE layer, and of
  // those, the pairs computed on an instance that ran one of their token's experts there
  // (moe_dispatch_pairs_total, moe_dispatch_local_pairs_total), since construction.
  int64_t pairs_after_previous_layer() const { return pairs_after_previous_.load(); }
  int64_t local_pairs() const { return local_pairs_.load(); }

 private:
  bool Healthy(const std::string& address, absl::Time now) const;
  void MarkUnhealthy(const std::string& address, absl::Time until);

  std::unique_ptr<PlacementHolder> owned_;  // static constructor only
  const PlacementHolder* placement_;
  absl::Status static_error_;  // static constructor: why the placement is unusable
  ExpertTransport* transport_;
  const RemoteExecutorOptions options_;
  mutable absl::Mutex health_mu_;
  absl::flat_hash_map<std::string, absl::Time> unhealthy_until_ ABSL_GUARDED_BY(health_mu_);
  std::atomic<int64_t> failovers_{0};
  std::atomic<int64_t> placement_waits_{0};
  std::atomic<int64_t> pairs_after_previous_{0};
  std::atomic<int64_t> local_pairs_{0};
};

}  // namespace moe::attention

#endif  // MOE_ATTENTION_SERVICE_DISPATCH_REMOTE_EXPERT_EXECUTOR_H_
