#include "scheduler/core/scheduler_core.h"

#include <algorithm>
#include <map>
#include <utility>

#include "absl/strings/str_cat.h"

namespace moe::scheduler {

absl::Status ValidateSchedulerConfig(const SchedulerConfig& c) {
  if (c.layers <= 0 || c.experts <= 0) {
    return absl::InvalidArgumentError("need layers > 0 and experts > 0");
  }
  if (c.min_expert_instances < 0) {
    return absl::InvalidArgumentError("min expert instances must be >= 0");
  }
  if (c.replication.min_replicas < 1 || c.replication.replication < 1.0) {
    return absl::InvalidArgumentError("need replicas >= 1 and replication >= 1");
  }
  if (c.heartbeat_timeout <= absl::ZeroDuration() ||
      c.heartbeat_interval <= absl::ZeroDuration() || c.load_window <= absl::ZeroDuration() ||
      c.load_bucket <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("durations must be > 0");
  }
  if (c.heartbeat_interval >= c.heartbeat_timeout) {
    return absl::InvalidArgumentError("heartbeat interval must be shorter than the timeout");
  }
  return absl::OkStatus();
}

SchedulerCore::SchedulerCore(SchedulerConfig config, PlanListener listener)
    : config_(std::move(config)),
      listener_(std::move(listener)),
      window_(config_.layers, config_.experts, config_.load_window, config_.load_bucket) {}

absl::StatusOr<std::string> SchedulerCore::Register(const MemberInfo& info, absl::Time now) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<std::string> id = members_.Register(info, now);
  if (id.ok() && info.role == Role::kExpert) work_ = true;  // the expert set changed
  return id;
}

absl::Status SchedulerCore::Heartbeat(const std::string& id, const HeartbeatInfo& hb,
                                      absl::Time now) {
  absl::MutexLock lock(&mu_);
  return members_.Heartbeat(id, hb, now);
}

absl::Status SchedulerCore::ReportLoad(const std::string& id, const LoadReport& report,
                                       absl::Time now) {
  absl::MutexLock lock(&mu_);
  if (!id.empty() && members_.Find(id) == nullptr) {
    return absl::NotFoundError(absl::StrCat("unknown instance \"", id, "\": register again"));
  }
  return window_.Add(report, now);
}

std::shared_ptr<const PublishedPlan> SchedulerCore::Current() const {
  absl::MutexLock lock(&mu_);
  return current_;
}

SchedulerStats SchedulerCore::Stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

std::vector<Member> SchedulerCore::Members() const {
  absl::MutexLock lock(&mu_);
  return members_.All();
}

LoadSnapshot SchedulerCore::Load(absl::Time now) {
  absl::MutexLock lock(&mu_);
  return window_.Totals(now);
}

absl::StatusOr<PlacementPlan> SchedulerCore::Place(const std::vector<Member>& experts,
                                                   const PublishedPlan* current, bool failover,
                                                   absl::Time now) {
  PlacementProblem problem;
  problem.layers = config_.layers;
  problem.experts = config_.experts;
  problem.instances = static_cast<int>(experts.size());
  problem.bytes_per_expert = config_.bytes_per_expert;
  for (const Member& m : experts) {
    problem.slots.push_back(m.info.expert_slots);
    problem.memory_bytes.push_back(m.info.memory_bytes);
  }
  const LoadSnapshot load = window_.Totals(now);
  if (load.total_tokens > 0) {
    // +1 so experts unseen in the window still weigh something when packing.
    for (int64_t t : load.tokens) problem.load.push_back(static_cast<double>(t) + 1.0);
    problem.coact = load.coact;
  }
  absl::StatusOr<PlacementPlan> plan;
  if (failover && current != nullptr) {
    // Keep the survivors' replicas; re-place only what the dead instances held.
    std::map<std::string, int> index;
    for (size_t i = 0; i < experts.size(); ++i) index[experts[i].id] = static_cast<int>(i);
    PlacementPlan survivors;
    survivors.layers = config_.layers;
    survivors.experts = config_.experts;
    survivors.instances = problem.instances;
    survivors.replicas.resize(current->plan.replicas.size());
    for (size_t g = 0; g < current->plan.replicas.size(); ++g) {
      for (const Replica& r : current->plan.replicas[g]) {
        auto it = index.find(current->plan.instance_info[r.instance].id);
        if (it != index.end()) survivors.replicas[g].push_back({it->second, r.share});
      }
    }
    plan = RepairPlacement(problem, survivors, config_.replication);
  } else if (config_.policy == PlacementPolicy::kRoundRobin) {
    plan = RoundRobinPlacement(problem, config_.replication);
  } else {
    plan = GreedyPlacement(problem, config_.replication);
  }
  if (!plan.ok()) return plan.status();
  for (const Member& m : experts) plan->instance_info.push_back({m.id, m.info.address});
  return plan;
}

TickResult SchedulerCore::Tick(absl::Time now) {
  TickResult result;
  {
    absl::MutexLock lock(&mu_);
    work_ = false;
    result.dead = DecideLiveness(members_.All(), now, config_.heartbeat_timeout);
    for (const std::string& id : result.dead) members_.Remove(id);
    stats_.instance_deaths += static_cast<int64_t>(result.dead.size());
    const std::vector<Member> experts = members_.WithRole(Role::kExpert);
    stats_.expert_instances = static_cast<int>(experts.size());
    stats_.attention_instances = static_cast<int>(members_.WithRole(Role::kAttention).size());

    std::vector<std::string> live_ids;
    for (const Member& m : experts) live_ids.push_back(m.id);
    std::vector<std::string> plan_ids;
    if (current_ != nullptr) {
      for (const PlanInstance& pi : current_->plan.instance_info) plan_ids.push_back(pi.id);
    }
    if (live_ids == plan_ids) return result;
    if (current_ == nullptr &&
        static_cast<int>(experts.size()) < std::max(1, config_.min_expert_instances)) {
      result.placement_status = absl::UnavailableError(
          absl::StrCat("waiting for ", config_.min_expert_instances,
                       " expert instances before the first plan (", experts.size(), " live)"));
      return result;
    }
    if (experts.empty()) {
      // Nothing to place on: keep the last plan (its instances are gone; clients retry and
      // wait for the next plan, which comes when an expert instance registers).
      result.placement_status = absl::UnavailableError("no live expert instance");
      return result;
    }
    // Failover: an instance of the current plan is gone (it may also have gained members; the
    // repair keeps survivors and re-places the orphans, a later rebalance spreads the rest).
    bool lost = false;
    for (const std::string& id : plan_ids) {
      lost |= std::find(live_ids.begin(), live_ids.end(), id) == live_ids.end();
    }
    absl::StatusOr<PlacementPlan> plan = Place(experts, current_.get(), lost, now);
    if (!plan.ok()) {
      result.placement_status = plan.status();
      return result;
    }
    auto published = std::make_shared<PublishedPlan>();
    published->plan = *std::move(plan);
    published->plan.epoch = (current_ ? current_->plan.epoch : 0) + 1;
    published->committed_epoch = published->plan.epoch;
    published->reason = current_ == nullptr ? PlanReason::kInitial
                        : lost              ? PlanReason::kFailover
                                            : PlanReason::kMembership;
    current_ = published;
    stats_.epoch = published->plan.epoch;
    ++stats_.plans_published;
    if (lost) ++stats_.failovers;
    result.published = std::move(published);
  }
  if (listener_) listener_(result.published);
  return result;
}

bool SchedulerCore::AwaitWork(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  mu_.AwaitWithTimeout(absl::Condition(this, &SchedulerCore::WorkOrStopped), timeout);
  return !stopped_;
}

void SchedulerCore::Stop() {
  absl::MutexLock lock(&mu_);
  stopped_ = true;
}

}  // namespace moe::scheduler
