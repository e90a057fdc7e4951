#include "expert_service/control/plan_follower.h"

#include <pthread.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status.h"

namespace moe::expert {
namespace {

namespace v1 = ::moe::scheduler::v1;

bool Committed(const v1::PlacementPlan& plan) {
  return plan.state() != v1::PLAN_STATE_PENDING && !plan.pending();
}

}  // namespace

PlanFollower::PlanFollower(ShardExecutor* executor, const ModelExpertSource* source,
                           PlanFollowerOptions options)
    : executor_(executor), source_(source), options_(std::move(options)) {
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "plan-loader");
    Loop();
  });
}

PlanFollower::~PlanFollower() { Stop(); }

void PlanFollower::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopped_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void PlanFollower::OnPlan(const v1::PlacementPlan& plan, const std::string& self_id) {
  absl::MutexLock lock(&mu_);
  queued_ = Queued(plan, self_id);
}

int64_t PlanFollower::applied_epoch() const {
  absl::MutexLock lock(&mu_);
  return applied_epoch_;
}

int64_t PlanFollower::loaded_epoch() const {
  absl::MutexLock lock(&mu_);
  return loaded_epoch_;
}

bool PlanFollower::ready() const {
  absl::MutexLock lock(&mu_);
  return ready_;
}

int64_t PlanFollower::WaitForApplied(int64_t epoch, absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  auto done = [this, epoch]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return applied_any_ && applied_epoch_ >= epoch;
  };
  mu_.AwaitWithTimeout(absl::Condition(&done), timeout);
  return applied_epoch_;
}

absl::StatusOr<std::vector<std::pair<int, int>>> PlanFollower::ExpertsOf(
    const v1::PlacementPlan& plan, const std::string& self_id, const model::ModelConfig& config) {
  if (plan.layers() != config.num_hidden_layers || plan.num_experts() != config.num_experts) {
    return absl::InvalidArgumentError(
        absl::StrCat("plan epoch ", plan.epoch(), " places ", plan.layers(), "x",
                     plan.num_experts(), " experts; the model has ", config.num_hidden_layers,
                     "x", config.num_experts));
  }
  std::set<std::pair<int, int>> mine;
  for (const auto& ep : plan.experts()) {
    if (ep.layer() < 0 || ep.layer() >= plan.layers() || ep.expert() < 0 ||
        ep.expert() >= plan.num_experts()) {
      return absl::InvalidArgumentError(absl::StrCat("plan epoch ", plan.epoch(), ": expert ",
                                                     ep.layer(), ":", ep.expert(),
                                                     " out of range"));
    }
    if (!config.IsMoeLayer(ep.layer())) continue;
    for (const auto& r : ep.replicas()) {
      // instance_index is authoritative; the replica's own id is a fallback.
      const int i = r.instance_index();
      const std::string& id = (i >= 0 && i < plan.instances_size())
                                  ? plan.instances(i).instance_id()
                                  : r.instance_id();
      if (!self_id.empty() && id == self_id) mine.insert({ep.layer(), ep.expert()});
    }
  }
  return std::vector<std::pair<int, int>>(mine.begin(), mine.end());
}

void PlanFollower::SetReady(bool ready) {
  {
    absl::MutexLock lock(&mu_);
    if (ready_ == ready) return;
    ready_ = ready;
  }
  if (options_.on_ready_change) options_.on_ready_change(ready);
}

absl::Status PlanFollower::Apply(const v1::PlacementPlan& plan, const std::string& self) {
  bool listed = false;
  for (const auto& inst : plan.instances()) listed |= !self.empty() && inst.instance_id() == self;
  if (!listed) {
    // Not (or no longer / not yet) a member of this plan: e.g. the plan was made before this
    // instance (re-)registered. Keep serving what is loaded; the next plan will list it.
    MOE_LOG_WARN("plan epoch {} does not list this instance ({}): kept {} experts",
                 plan.epoch(), self.empty() ? "unregistered" : self, executor_->Loaded().size());
    return absl::OkStatus();
  }
  absl::StatusOr<std::vector<std::pair<int, int>>> mine =
      ExpertsOf(plan, self, source_->config());
  if (!mine.ok()) return mine.status();
  const std::vector<std::pair<int, int>> loaded = executor_->Loaded();
  const std::set<std::pair<int, int>> have(loaded.begin(), loaded.end());
  std::vector<std::pair<int, int>> missing;
  for (const auto& p : *mine) {
    if (!have.count(p)) missing.push_back(p);
  }
  const bool committed = Committed(plan);
  if (!missing.empty()) {
    const absl::Time start = absl::Now();
    MOE_RETURN_IF_ERROR(source_->LoadInto(missing, committed ? plan.epoch() : 0, executor_));
    MOE_LOG_INFO("plan epoch {}{}: loaded {} experts in {}", plan.epoch(),
                 committed ? "" : " (pending)", missing.size(),
                 absl::FormatDuration(absl::Now() - start));
  } else if (committed) {
    MOE_RETURN_IF_ERROR(executor_->LoadExperts({}, plan.epoch()));  // records the epoch
  }
  std::set<std::pair<int, int>> wanted(mine->begin(), mine->end());
  if (!committed) {
    // Make-before-break: keep everything; the committed plan decides what goes.
    wanted.insert(wanted_.begin(), wanted_.end());
    wanted_ = std::move(wanted);
    absl::MutexLock lock(&mu_);
    loaded_epoch_ = plan.epoch();
    return absl::OkStatus();
  }
  // Experts held but no longer placed here: drop them after the grace period (unless a later
  // plan places them here again).
  const absl::Time when = absl::Now() + options_.drop_grace;
  drops_.erase(std::remove_if(drops_.begin(), drops_.end(),
                              [&wanted](const auto& d) { return wanted.count(d.second) > 0; }),
               drops_.end());
  for (const auto& p : executor_->Loaded()) {
    if (wanted.count(p)) continue;
    const bool scheduled = std::any_of(drops_.begin(), drops_.end(),
                                       [&p](const auto& d) { return d.second == p; });
    if (!scheduled) drops_.push_back({when, p});
  }
  wanted_ = std::move(wanted);
  bool became_ready = false;
  {
    absl::MutexLock lock(&mu_);
    applied_epoch_ = plan.epoch();
    applied_any_ = true;
    became_ready = !ready_;
    ready_ = true;
  }
  if (became_ready && options_.on_ready_change) options_.on_ready_change(true);
  MOE_LOG_INFO("plan epoch {} applied as {}: {} experts here ({} to drop in {})", plan.epoch(),
               self, mine->size(), drops_.size(), absl::FormatDuration(options_.drop_grace));
  return absl::OkStatus();
}

void PlanFollower::DropExpired(absl::Time now) {
  std::vector<std::pair<int, int>> drop;
  auto expired = [now](const auto& d) { return d.first <= now; };
  for (const auto& d : drops_) {
    if (expired(d) && !wanted_.count(d.second)) drop.push_back(d.second);
  }
  drops_.erase(std::remove_if(drops_.begin(), drops_.end(), expired), drops_.end());
  if (drop.empty()) return;
  if (absl::Status s = executor_->DropExperts(drop); !s.ok()) {
    MOE_LOG_ERROR("dropping {} experts: {}", drop.size(), s.ToString());
  } else {
    MOE_LOG_INFO("dropped {} experts no longer placed here", drop.size());
  }
}

void PlanFollower::Loop() {
  absl::Time retry_at = absl::InfiniteFuture();
  std::optional<Queued> failed;  // the plan to retry at retry_at
  while (true) {
    std::optional<Queued> plan;
    {
      absl::MutexLock lock(&mu_);
      absl::Time wake = retry_at;
      for (const auto& d : drops_) wake = std::min(wake, d.first);
      auto work = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopped_ || queued_.has_value();
      };
      mu_.AwaitWithDeadline(absl::Condition(&work), wake);
      if (stopped_) return;
      if (queued_.has_value()) {
        plan = std::move(queued_);
        queued_.reset();
        failed.reset();  // a newer plan supersedes the one that failed
        retry_at = absl::InfiniteFuture();
      }
    }
    const absl::Time now = absl::Now();
    if (!plan.has_value() && failed.has_value() && now >= retry_at) {
      plan = std::move(failed);
      failed.reset();
      retry_at = absl::InfiniteFuture();
    }
    if (plan.has_value()) {
      absl::Status s = Apply(plan->first, plan->second);
      if (!s.ok()) {
        MOE_LOG_ERROR("plan epoch {}: {}; retrying in {}", plan->first.epoch(), s.ToString(),
                      absl::FormatDuration(options_.retry_after));
        if (Committed(plan->first)) SetReady(false);
        failed = std::move(plan);
        retry_at = absl::Now() + options_.retry_after;
      }
    }
    DropExpired(absl::Now());
  }
}

}  // namespace moe::expert
