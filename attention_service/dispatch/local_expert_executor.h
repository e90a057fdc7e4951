// ExpertExecutor over an in-process ExpertBackend (the single-process engine, and the
// reference the remote data plane is compared with).
#ifndef MOE_ATTENTION_SERVICE_DISPATCH_LOCAL_EXPERT_EXECUTOR_H_
#define MOE_ATTENTION_SERVICE_DISPATCH_LOCAL_EXPERT_EXECUTOR_H_

#include <vector>

#include "attention_service/dispatch/expert_executor.h"
#include "expert_service/backend/expert_backend.h"

namespace moe::attention {

// Thread affinity: the engine loop (one Run at a time).
class LocalExpertExecutor final : public ExpertExecutor {
 public:
  // `backend` must outlive this object and hold every expert Run will be asked for.
  LocalExpertExecutor(expert::ExpertBackend* backend, int num_experts)
      : backend_(backend), num_experts_(num_experts) {}
  // `memory` is ignored (every expert is computed here).
  absl::Status Run(int layer, const float* x, int hidden, const model::Routing& routing,
                   float* out, DispatchMemory* memory) override;

 private:
  expert::ExpertBackend* backend_;
  int num_experts_;
  ExpertGroups groups_;
  std::vector<float> gathered_;  // inputs, grouped by expert
  std::vector<expert::ExpertShard> shards_;
};

}  // namespace moe::attention

#endif  // MOE_ATTENTION_SERVICE_DISPATCH_LOCAL_EXPERT_EXECUTOR_H_
