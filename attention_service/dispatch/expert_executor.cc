#include "attention_service/dispatch/expert_executor.h"

#include <algorithm>

namespace moe::attention {

bool TokenHomes::Contains(int token, int32_t id) const {
  if (token >= tokens()) return false;
  absl::Span<const int32_t> homes = Of(token);
  return std::binary_search(homes.begin(), homes.end(), id);
}

void BuildTokenHomes(int tokens, absl::Span<const int32_t> pair_token,
                     absl::Span<const int32_t> pair_home, TokenHomes* homes) {
  homes->offsets.assign(static_cast<size_t>(tokens) + 1, 0);
  for (size_t p = 0; p < pair_token.size(); ++p) {
    if (pair_home[p] >= 0) ++homes->offsets[pair_token[p] + 1];
  }
  for (int t = 0; t < tokens; ++t) homes->offsets[t + 1] += homes->offsets[t];
  homes->ids.resize(homes->offsets[tokens]);
  std::vector<int32_t> fill(homes->offsets.begin(), homes->offsets.end() - 1);
  for (size_t p = 0; p < pair_token.size(); ++p) {
    if (pair_home[p] >= 0) homes->ids[fill[pair_token[p]]++] = pair_home[p];
  }
  // Sort and deduplicate each token's ids, compacting in place.
  int32_t write = 0;
  for (int t = 0; t < tokens; ++t) {
    const auto begin = homes->ids.begin() + homes->offsets[t];
    const auto end = homes->ids.begin() + homes->offsets[t + 1];
    std::sort(begin, end);
    const auto last = std::unique(begin, end);
    homes->offsets[t] = write;
    write = static_cast<int32_t>(std::copy(begin, last, homes->ids.begin() + write) -
                                 homes->ids.begin());
  }
  homes->offsets[tokens] = write;
  homes->ids.resize(write);
}

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
