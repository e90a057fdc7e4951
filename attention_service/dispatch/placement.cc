#include "attention_service/dispatch/placement.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace moe::attention {

absl::StatusOr<StaticPlacement> StaticPlacement::RoundRobin(const model::ModelConfig& config,
                                                            int num_instances, int replication) {
  if (num_instances < 1 || replication < 1 || replication > num_instances) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad placement: ", num_instances, " instances, replication ", replication));
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

absl::StatusOr<std::shared_ptr<const PlacementSnapshot>> PlacementSnapshot::FromStatic(
    const StaticPlacement& placement, std::vector<std::string> addresses, int64_t epoch) {
  if (static_cast<int>(addresses.size()) != placement.num_instances()) {
    return absl::InvalidArgumentError(
        absl::StrCat(addresses.size(), " addresses for ", placement.num_instances(), " instances"));
  }
  std::shared_ptr<PlacementSnapshot> s(new PlacementSnapshot());
  s->epoch_ = epoch;
  s->num_layers_ = placement.num_layers();
  s->num_experts_ = placement.num_experts();
  s->ids_ = addresses;
  s->addresses_ = std::move(addresses);
  s->replicas_.resize(static_cast<size_t>(s->num_layers_) * s->num_experts_);
  for (int l = 0; l < s->num_layers_; ++l) {
    for (int e = 0; e < s->num_experts_; ++e) {
      absl::Span<const int> r = placement.Replicas(l, e);
      s->replicas_[static_cast<size_t>(l) * s->num_experts_ + e].assign(r.begin(), r.end());
    }
  }
  s->EqualShares();
  return std::shared_ptr<const PlacementSnapshot>(std::move(s));
}

absl::StatusOr<std::shared_ptr<const PlacementSnapshot>> PlacementSnapshot::FromPlan(
    const moe::scheduler::v1::PlacementPlan& plan, const model::ModelConfig& config) {
  if (plan.layers() != config.num_hidden_layers || plan.num_experts() != config.num_experts) {
    return absl::InvalidArgumentError(absl::StrCat(
        "plan epoch ", plan.epoch(), " places ", plan.layers(), "x", plan.num_experts(),
        " experts; the model has ", config.num_hidden_layers, "x", config.num_experts));
  }
  std::shared_ptr<PlacementSnapshot> s(new PlacementSnapshot());
  s->epoch_ = plan.epoch();
  s->num_layers_ = plan.layers();
  s->num_experts_ = plan.num_experts();
  const int n = plan.instances_size();
  for (int i = 0; i < n; ++i) {
    const auto& inst = plan.instances(i);
    if (inst.address().empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("plan epoch ", plan.epoch(), ": instance ", i, " has no address"));
    }
    s->addresses_.push_back(inst.address());
    s->ids_.push_back(inst.instance_id());
  }
  s->replicas_.resize(static_cast<size_t>(s->num_layers_) * s->num_experts_);
  s->shares_.resize(s->replicas_.size());
  for (const auto& ep : plan.experts()) {
    const int l = ep.layer(), e = ep.expert();
    if (l < 0 || l >= s->num_layers_ || e < 0 || e >= s->num_experts_) {
      return absl::InvalidArgumentError(
          absl::StrCat("plan epoch ", plan.epoch(), ": expert ", l, ":", e, " out of range"));
    }
    if (!config.IsMoeLayer(l)) continue;
    std::vector<int>& r = s->replicas_[static_cast<size_t>(l) * s->num_experts_ + e];
    std::vector<double>& sh = s->shares_[static_cast<size_t>(l) * s->num_experts_ + e];
    r.clear();
    sh.clear();
    double total = 0;
    for (const auto& rep : ep.replicas()) {
      const int i = rep.instance_index();
      if (i < 0 || i >= n) {
        return absl::InvalidArgumentError(absl::StrCat("plan epoch ", plan.epoch(), ": expert ", l,
                                                       ":", e, " on instance ", i, " of ", n));
      }
      r.push_back(i);
      sh.push_back(rep.share() > 0 ? rep.share() : 0.0);
      total += sh.back();
    }
    for (double& x : sh) x = total > 0 ? x / total : 1.0 / static_cast<double>(sh.size());
    // Rotate each expert's list by its index so that the first choices (ties in the dispatcher's
    // balancing) spread over the replicas instead of all being the first one.
    if (r.size() > 1) {
      const size_t k = (l * s->num_experts_ + e) % r.size();
      std::rotate(r.begin(), r.begin() + k, r.end());
      std::rotate(sh.begin(), sh.begin() + k, sh.end());
    }
  }
  for (int l = 0; l < s->num_layers_; ++l) {
    if (!config.IsMoeLayer(l)) continue;
    for (int e = 0; e < s->num_experts_; ++e) {
      if (s->Replicas(l, e).empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat("plan epoch ", plan.epoch(), ": expert ", l, ":", e, " has no replica"));
      }
    }
  }
  return std::shared_ptr<const PlacementSnapshot>(std::move(s));
}

void PlacementSnapshot::EqualShares() {
  shares_.resize(replicas_.size());
  for (size_t g = 0; g < replicas_.size(); ++g) {
    shares_[g].assign(replicas_[g].size(),
                      replicas_[g].empty() ? 0.0 : 1.0 / static_cast<double>(replicas_[g].size()));
  }
}

PlacementHolder::PlacementHolder(std::shared_ptr<const PlacementSnapshot> initial)
    : current_(std::move(initial)) {}

std::shared_ptr<const PlacementSnapshot> PlacementHolder::Get() const {
  absl::MutexLock lock(&mu_);
  return current_;
}

bool PlacementHolder::Set(std::shared_ptr<const PlacementSnapshot> snapshot) {
  if (snapshot == nullptr) return false;
  absl::MutexLock lock(&mu_);
  if (current_ != nullptr && current_->epoch() > snapshot->epoch()) return false;
  current_ = std::move(snapshot);
  return true;
}

void PlacementHolder::Replace(std::shared_ptr<const PlacementSnapshot> snapshot) {
  if (snapshot == nullptr) return;
  absl::MutexLock lock(&mu_);
  current_ = std::move(snapshot);
  ++replacements_;
}

std::shared_ptr<const PlacementSnapshot> PlacementHolder::WaitForNewerThan(
    int64_t epoch, absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  const int64_t replacements = replacements_;
  auto newer = [this, epoch, replacements]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return current_ != nullptr && (current_->epoch() > epoch || replacements_ != replacements);
  };
  mu_.AwaitWithTimeout(absl::Condition(&newer), timeout);
  return current_;
}

}  // namespace moe::attention
