// The narrow interface between the dense part of the model (attention worker) and the routed
// experts (DESIGN.md section 4, steps 3-5): dispatch one layer's tokens by their routing, run
// the experts wherever they live, and combine the router-weighted outputs per token.
#ifndef MOE_ATTENTION_SERVICE_DISPATCH_EXPERT_EXECUTOR_H_
#define MOE_ATTENTION_SERVICE_DISPATCH_EXPERT_EXECUTOR_H_

#include "absl/status/status.h"
#include "model/arch/router.h"

namespace moe::attention {

class ExpertExecutor {
 public:
  virtual ~ExpertExecutor() = default;
  // out[t] = sum_j routing.weights[t, j] * FFN(layer, routing.experts[t, j])(x[t]) for every
  // token t < routing.tokens. x and out are [tokens, hidden] F32; out is overwritten.
  // Called from the engine loop, or with micro-batches (ModelRunner::Forward) from its lane
  // threads: one call at a time unless RunIsThreadSafe().
  virtual absl::Status Run(int layer, const float* x, int hidden, const model::Routing& routing,
                           float* out) = 0;

  // True if Run mostly waits while the experts compute elsewhere (other processes or devices)
  // rather than computing on this process's cores: micro-batch lanes then let another lane
  // compute while one waits in Run.
  virtual bool ComputesElsewhere() const { return false; }
  // True if concurrent Run calls (from different micro-batch lanes, on disjoint x/routing/out)
  // are safe; otherwise the caller serialises them.
  virtual bool RunIsThreadSafe() const { return false; }
};

// Groups a layer's tokens by expert: for expert e, rows[offsets[e] .. offsets[e+1]) are the
// (token, weight) pairs routed to it, in token order. Pure; used by every executor.
struct ExpertGroups {
  std::vector<int> offsets;      // [num_experts + 1]
  std::vector<int32_t> tokens;   // token index per routed pair
  std::vector<float> weights;    // router weight per routed pair
};
void GroupByExpert(const model::Routing& routing, int num_experts, ExpertGroups* groups);

}  // namespace moe::attention

#endif  // MOE_ATTENTION_SERVICE_DISPATCH_EXPERT_EXECUTOR_H_
