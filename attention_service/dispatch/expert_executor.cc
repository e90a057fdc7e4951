#include "attention_service/dispatch/expert_executor.h"

namespace moe::attention {

void GroupByExpert(const model::Routing& routing, int num_experts, ExpertGroups* groups) {
  const int n = routing.tokens * routing.top_k;
  groups->offsets.assign(num_experts + 1, 0);
  for (int i = 0; i < n; ++i) ++groups->offsets[routing.experts[i] + 1];
  for (int e = 0; e < num_experts; ++e) groups->offsets[e + 1] += groups->offsets[e];
  groups->tokens.resize(n);
  groups->weights.resize(n);
  std::vector<int> fill(groups->offsets.begin(), groups->offsets.end() - 1);
  for (int i = 0; i < n; ++i) {
    int e = routing.experts[i];
    int at = fill[e]++;
    groups->tokens[at] = i / routing.top_k;
    groups->weights[at] = routing.weights[i];
  }
}

}  // namespace moe::attention
