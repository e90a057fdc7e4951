// Where the experts live, as the attention worker routes (DESIGN.md section 5).
//
// StaticPlacement: the fixed round-robin placement used without a scheduler. Experts of MoE
// layers are assigned round-robin: the primary of (layer, expert) is instance
// (layer * E + expert) % N, replica r on instance (primary + r) % N.
//
// PlacementSnapshot: an immutable routing table (instance addresses + replicas per (layer,
// expert) + epoch), built from a StaticPlacement or from a scheduler PlacementPlan. Shared by
// shared_ptr; never changes after construction, so readers need no lock.
//
// PlacementHolder: the current snapshot, swapped atomically between dispatches (Set), with a
// bounded wait for a newer epoch. Thread-safe.
#ifndef MOE_ATTENTION_SERVICE_DISPATCH_PLACEMENT_H_
#define MOE_ATTENTION_SERVICE_DISPATCH_PLACEMENT_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "model/config.h"
#include "moe/scheduler/v1/scheduler.pb.h"

namespace moe::attention {

class StaticPlacement {
 public:
  // INVALID_ARGUMENT unless 1 <= replication <= num_instances and the config has experts.
  static absl::StatusOr<StaticPlacement> RoundRobin(const model::ModelConfig& config,
                                                    int num_instances, int replication);

  int num_instances() const { return num_instances_; }
  int num_layers() const { return num_layers_; }
  int num_experts() const { return num_experts_; }
  // Instance indices holding (layer, expert), in preference order; empty for a non-MoE layer.
  absl::Span<const int> Replicas(int layer, int expert) const {
    return replicas_[static_cast<size_t>(layer) * num_experts_ + expert];
  }
  // The `moe expert --experts` value for `instance`: "L:E,L:E,..." (every pair it holds), or
  // "" if it holds none.
  std::string ExpertList(int instance) const;

 private:
  int num_instances_ = 0;
  int num_layers_ = 0;
  int num_experts_ = 0;
  std::vector<std::vector<int>> replicas_;  // [layer * E + expert]
};

class PlacementSnapshot {
 public:
  // The static placement with `addresses[i]` the transport address of instance i (sizes must
  // match: INVALID_ARGUMENT otherwise). Instance ids are the addresses.
  static absl::StatusOr<std::shared_ptr<const PlacementSnapshot>> FromStatic(
      const StaticPlacement& placement, std::vector<std::string> addresses, int64_t epoch = 0);
  // A scheduler plan, checked against the model: its shape must be the config's
  // (num_hidden_layers x num_experts), every instance needs an address, every replica index
  // must be in range, and every (MoE layer, expert) needs a replica. Replicas of dense layers
  // are dropped. Replica order: the plan's list rotated by (layer * experts + expert) so the
  // first choices spread over the replicas. Shares are the plan's, normalised per expert
  // (equal when they are missing or not positive).
  static absl::StatusOr<std::shared_ptr<const PlacementSnapshot>> FromPlan(
      const moe::scheduler::v1::PlacementPlan& plan, const model::ModelConfig& config);

  int64_t epoch() const { return epoch_; }
  int num_instances() const { return static_cast<int>(addresses_.size()); }
  int num_layers() const { return num_layers_; }
  int num_experts() const { return num_experts_; }
  const std::string& address(int instance) const { return addresses_[instance]; }
  const std::string& instance_id(int instance) const { return ids_[instance]; }
  // Instance indices holding (layer, expert), in preference order; empty for a non-MoE layer.
  absl::Span<const int> Replicas(int layer, int expert) const {
    return replicas_[static_cast<size_t>(layer) * num_experts_ + expert];
  }
  // The traffic share of each replica (same order as Replicas; sums to 1 per expert).
  absl::Span<const double> Shares(int layer, int expert) const {
    return shares_[static_cast<size_t>(layer) * num_experts_ + expert];
  }

 private:
  PlacementSnapshot() = default;
  void EqualShares();  // shares_ = 1 / replicas for every expert
  int64_t epoch_ = 0;
  int num_layers_ = 0;
  int num_experts_ = 0;
  std::vector<std::string> addresses_;
  std::vector<std::string> ids_;
  std::vector<std::vector<int>> replicas_;   // [layer * E + expert]
  std::vector<std::vector<double>> shares_;  // [layer * E + expert], parallel to replicas_
};

class PlacementHolder {
 public:
  PlacementHolder() = default;
  explicit PlacementHolder(std::shared_ptr<const PlacementSnapshot> initial);

  // The current snapshot; nullptr before the first Set.
  std::shared_ptr<const PlacementSnapshot> Get() const;
  // Installs `snapshot` unless the current one has a higher epoch (a late, older plan is
  // ignored: returns false). Equal epochs replace (e.g. a static table replaced by epoch 0).
  // Wakes WaitForNewerThan callers.
  bool Set(std::shared_ptr<const PlacementSnapshot> snapshot);
  // Installs `snapshot` whatever its epoch (a restarted scheduler counts epochs from 1 again).
  // Wakes WaitForNewerThan callers (also those waiting for more than its epoch: a replaced
  // snapshot counts as newer).
  void Replace(std::shared_ptr<const PlacementSnapshot> snapshot);
  // Blocks until the current snapshot's epoch is greater than `epoch` (any snapshot when
  // `epoch` < 0), a Replace installed a snapshot after this call started, or `timeout` passes;
  // returns the current snapshot then (which may still be the caller's or nullptr after a
  // timeout: compare it).
  std::shared_ptr<const PlacementSnapshot> WaitForNewerThan(int64_t epoch,
                                                            absl::Duration timeout) const;

 private:
  mutable absl::Mutex mu_;
  std::shared_ptr<const PlacementSnapshot> current_ ABSL_GUARDED_BY(mu_);
  int64_t replacements_ ABSL_GUARDED_BY(mu_) = 0;  // Replace calls so far
};

}  // namespace moe::attention

#endif  // MOE_ATTENTION_SERVICE_DISPATCH_PLACEMENT_H_
