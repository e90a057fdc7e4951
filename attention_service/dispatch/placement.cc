#include "attention_service/dispatch/placement.h"

#include "absl/strings/str_cat.h"

namespace moe::attention {

absl::StatusOr<StaticPlacement> StaticPlacement::RoundRobin(const model::ModelConfig& config,
                                                            int num_instances, int replication) {
  if (num_instances < 1 || replication < 1 || replication > num_instances) {
    return absl::InvalidArgumentError(absl::StrCat("bad placement: ", num_instances,
                                                   " instances, replication ", replication));
  }
  if (config.num_experts < 1) return absl::InvalidArgumentError("model has no routed experts");
  StaticPlacement p;
  p.num_instances_ = num_instances;
  p.num_layers_ = config.num_hidden_layers;
  p.num_experts_ = config.num_experts;
  p.replicas_.resize(static_cast<size_t>(p.num_layers_) * p.num_experts_);
  for (int l = 0; l < p.num_layers_; ++l) {
    if (!config.IsMoeLayer(l)) continue;
    for (int e = 0; e < p.num_experts_; ++e) {
      const int i = (l * p.num_experts_ + e) % num_instances;
      std::vector<int>& r = p.replicas_[static_cast<size_t>(l) * p.num_experts_ + e];
      for (int k = 0; k < replication; ++k) r.push_back((i + k) % num_instances);
    }
  }
  return p;
}

std::string StaticPlacement::ExpertList(int instance) const {
  std::string out;
  for (int l = 0; l < num_layers_; ++l) {
    for (int e = 0; e < num_experts_; ++e) {
      for (int i : Replicas(l, e)) {
        if (i != instance) continue;
        absl::StrAppend(&out, out.empty() ? "" : ",", l, ":", e);
      }
    }
  }
  return out;
}

}  // namespace moe::attention
