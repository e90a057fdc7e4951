// The narrow interface between the dense part of the model (attention worker) and the routed
// experts (DESIGN.md section 4, steps 3-5): dispatch one layer's tokens by their routing, run
// the experts wherever they live, and combine the router-weighted outputs per token.
#ifndef MOE_ATTENTION_SERVICE_DISPATCH_EXPERT_EXECUTOR_H_
#define MOE_ATTENTION_SERVICE_DISPATCH_EXPERT_EXECUTOR_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "model/arch/router.h"

namespace moe::attention {

// Where each token's routed experts ran in one MoE layer: token t's homes are
// ids[offsets[t] .. offsets[t + 1]), distinct and ascending. What an id means is the owner's
// to say (an index into DispatchMemory::instances, or a placement snapshot's instance index).
struct TokenHomes {
  std::vector<int32_t> offsets;  // [tokens + 1]; empty: nothing known
  std::vector<int32_t> ids;
  int tokens() const { return offsets.empty() ? 0 : static_cast<int>(offsets.size()) - 1; }
  absl::Span<const int32_t> Of(int token) const {
    return absl::MakeConstSpan(ids.data() + offsets[token], offsets[token + 1] - offsets[token]);
  }
  bool Contains(int token, int32_t id) const;
};

// Builds `homes` for `tokens` tokens from routed pairs: pair p of token pair_token[p] ran on
// pair_home[p] (negative: unknown, skipped).
void BuildTokenHomes(int tokens, absl::Span<const int32_t> pair_token,
                     absl::Span<const int32_t> pair_home, TokenHomes* homes);

// Memory of one forward pass of one batch (issue 6, "per-token replica choice"): where each
// token's experts ran in the last MoE layer dispatched with it, so an executor whose experts
// have several replicas can keep a token on the instances it was on (see
// remote_expert_executor.h). The caller of Run owns it for one forward pass (one micro-batch
// lane: the same tokens in every layer), passes it to every layer's Run in layer order and
// calls Reset before the next forward. Executors that compute in-process ignore it.
// Not thread-safe: one Run at a time uses it.
struct DispatchMemory {
  int layer = -1;  // the MoE layer recorded last; -1: none (the next Run is the first layer)
  std::vector<std::string> instances;  // instance addresses; `homes` ids index this
  TokenHomes homes;                    // per token of that layer
  void Reset() {
    layer = -1;
    instances.clear();
    homes.offsets.clear();
    homes.ids.clear();
  }
};

class ExpertExecutor {
 public:
  virtual ~ExpertExecutor() = default;
  // out[t] = sum_j routing.weights[t, j] * FFN(layer, routing.experts[t, j])(x[t]) for every
  // token t < routing.tokens. x and out are [tokens, hidden] F32; out is overwritten.
  // `memory` (optional: nullptr) is this forward pass's DispatchMemory: read for where the
  // tokens' experts ran in the previous MoE layer and updated with where they ran in this one.
  // Called from the engine loop, or with micro-batches (ModelRunner::Forward) from its lane
  // threads: one call at a time unless RunIsThreadSafe().
  virtual absl::Status Run(int layer, const float* x, int hidden, const model::Routing& routing,
                           float* out, DispatchMemory* memory) = 0;

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
