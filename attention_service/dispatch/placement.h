// StaticPlacement: which expert-service instances hold each (layer, expert), until the
// scheduler publishes placements (DESIGN.md section 5). Experts of MoE layers are assigned
// round-robin: the primary of (layer, expert) is instance (layer * E + expert) % N, replica r
// on instance (primary + r) % N.
#ifndef MOE_ATTENTION_SERVICE_DISPATCH_PLACEMENT_H_
#define MOE_ATTENTION_SERVICE_DISPATCH_PLACEMENT_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "model/config.h"

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

}  // namespace moe::attention

#endif  // MOE_ATTENTION_SERVICE_DISPATCH_PLACEMENT_H_
