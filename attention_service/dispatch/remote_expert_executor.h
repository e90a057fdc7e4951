// RemoteExpertExecutor: ExpertExecutor whose experts live in expert services reached through
// an ExpertTransport (DESIGN.md section 4, steps 3-5, and the failover of section 5).
//
// Per MoE layer: GroupByExpert; each expert goes to its first healthy replica in the
// placement; ONE ComputeRequest per instance carries all its shards in combine mode (router
// weights and compact output rows), so each instance returns a [distinct tokens, hidden]
// partial sum, which is added into `out`. All instances are called in parallel with a
// deadline. A failed call (any status but INVALID_ARGUMENT) marks its instance unhealthy for
// `unhealthy_for` and resends that call's experts to their next replicas; an expert with no
// replica left fails the layer with UNAVAILABLE.
//
// Thread affinity: the engine loop (one Run at a time).
#ifndef MOE_ATTENTION_SERVICE_DISPATCH_REMOTE_EXPERT_EXECUTOR_H_
#define MOE_ATTENTION_SERVICE_DISPATCH_REMOTE_EXPERT_EXECUTOR_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "attention_service/dispatch/expert_executor.h"
#include "attention_service/dispatch/expert_transport.h"
#include "attention_service/dispatch/placement.h"

namespace moe::attention {

struct RemoteExecutorOptions {
  absl::Duration timeout = absl::Seconds(10);       // per dispatch round (all instances)
  absl::Duration unhealthy_for = absl::Seconds(5);  // skip a failed instance this long
  int64_t epoch = 0;                                // placement epoch sent with each request
};

class RemoteExpertExecutor final : public ExpertExecutor {
 public:
  // `placement` and `transport` must outlive this object; `instances[i]` is the transport
  // address of placement instance i (size must equal placement->num_instances()).
  RemoteExpertExecutor(const StaticPlacement* placement, std::vector<std::string> instances,
                       ExpertTransport* transport, RemoteExecutorOptions options = {});

  absl::Status Run(int layer, const float* x, int hidden, const model::Routing& routing,
                   float* out) override;

  // Experts resent to another replica after a failed call, since construction.
  int64_t failovers() const { return failovers_; }

 private:
  bool Healthy(int instance, absl::Time now) const { return unhealthy_until_[instance] <= now; }

  const StaticPlacement* placement_;
  const std::vector<std::string> instances_;
  ExpertTransport* transport_;
  const RemoteExecutorOptions options_;
  std::vector<absl::Time> unhealthy_until_;  // per instance
  int64_t failovers_ = 0;
  ExpertGroups groups_;
  std::vector<int32_t> row_of_token_;  // scratch: compact output row per token, per instance
};

}  // namespace moe::attention

#endif  // MOE_ATTENTION_SERVICE_DISPATCH_REMOTE_EXPERT_EXECUTOR_H_
