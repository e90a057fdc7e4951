// Router: turns router logits into each token's top-k experts and their combine weights, per
// the architecture's rules. Pure functions; no state.
#ifndef MOE_MODEL_ARCH_ROUTER_H_
#define MOE_MODEL_ARCH_ROUTER_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"

namespace moe::model {

enum class RouterScoring : uint8_t {
  kSoftmax,  // Mixtral, Qwen: softmax over all experts, then top-k
  kSigmoid,  // DeepSeek-V3: sigmoid scores; selection uses score + correction bias
};

struct RouterSpec {
  RouterScoring scoring = RouterScoring::kSoftmax;
  int num_experts = 0;
  int top_k = 0;
  // Divide the chosen scores by their sum (Mixtral always; Qwen when norm_topk_prob).
  bool renormalize = true;
  // Multiplies the final weights (DeepSeek-V3 routed_scaling_factor; 1 elsewhere).
  float scaling = 1.0f;
  // DeepSeek-V3 group-limited routing: experts in n_group groups; keep the topk_group groups
  // with the best (sum of top-2 biased scores), then pick top_k inside them. 1/1 = off.
  int n_group = 1;
  int topk_group = 1;
};

// Routing of T tokens: expert ids [T, k] and weights [T, k], best first.
struct Routing {
  int tokens = 0;
  int top_k = 0;
  std::vector<int32_t> experts;
  std::vector<float> weights;
};

// Validates the spec (k in [1, E], groups divide E, topk_group <= n_group, ...).
absl::Status ValidateRouterSpec(const RouterSpec& spec);

// logits: [tokens, num_experts] F32. correction_bias: [num_experts] or empty (sigmoid only).
// Ties are broken by the lower expert id. Scores are computed in F32 (as HF does after its
// float() cast); the softmax uses max subtraction.
void Route(const RouterSpec& spec, const float* logits, int tokens,
           absl::Span<const float> correction_bias, Routing* out);

}  // namespace moe::model

#endif  // MOE_MODEL_ARCH_ROUTER_H_
