#include "attention_service/dispatch/local_expert_executor.h"

#include <algorithm>
#include <cstring>

namespace moe::attention {

absl::Status LocalExpertExecutor::Run(int layer, const float* x, int hidden,
                                      const model::Routing& routing, float* out,
                                      DispatchMemory* /*memory*/) {
  GroupByExpert(routing, num_experts_, &groups_);
  const size_t pairs = groups_.tokens.size();
  gathered_.resize(pairs * hidden);
  for (size_t i = 0; i < pairs; ++i) {
    std::memcpy(&gathered_[i * hidden], x + static_cast<size_t>(groups_.tokens[i]) * hidden,
                hidden * sizeof(float));
  }
  std::fill(out, out + static_cast<size_t>(routing.tokens) * hidden, 0.0f);
  shards_.clear();
  for (int e = 0; e < num_experts_; ++e) {
    int begin = groups_.offsets[e], end = groups_.offsets[e + 1];
    if (begin == end) continue;
    expert::ExpertShard s;
    s.expert = e;
    s.tokens = end - begin;
    s.input = &gathered_[static_cast<size_t>(begin) * hidden];
    s.output = out;
    s.combine_weight = &groups_.weights[begin];
    s.combine_row = &groups_.tokens[begin];
    shards_.push_back(s);
  }
  return backend_->Run(layer, shards_);
}

}  // namespace moe::attention
