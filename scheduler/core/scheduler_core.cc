#include "scheduler/core/scheduler_core.h"

#include <algorithm>
#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status.h"
#include "scheduler/placement/objective.h"

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
  if (c.heartbeat_timeout <= absl::ZeroDuration() || c.heartbeat_interval <= absl::ZeroDuration() ||
      c.load_window <= absl::ZeroDuration() || c.load_bucket <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("durations must be > 0");
  }
  if (c.rebalance.threshold <= 0 || c.rebalance.threshold > 1 || c.rebalance.min_improvement < 0 ||
      c.rebalance.commit_timeout <= absl::ZeroDuration() ||
      c.rebalance.min_interval < absl::ZeroDuration() || c.rebalance.min_tokens < 0) {
    return absl::InvalidArgumentError(
        "rebalance: need 0 < threshold <= 1, min improvement >= 0, commit timeout > 0");
  }
  if (c.policy == PlacementPolicy::kLayerBlocks && c.rebalance.enabled) {
    return absl::InvalidArgumentError(
        "layer-blocks placement keeps whole layers on one instance (for instances sharing one "
        "host's cores); load rebalancing would split them: turn rebalancing off");
  }
  if (c.heartbeat_interval >= c.heartbeat_timeout) {
    return absl::InvalidArgumentError("heartbeat interval must be shorter than the timeout");
  }
  return absl::OkStatus();
}

SchedulerCore::SchedulerCore(SchedulerConfig config, PlanListener listener)
    : config_(std::move(config)),
      listener_(std::move(listener)),
      window_(config_.layers, config_.experts, config_.load_window, config_.load_bucket) {
  stats_.layers = config_.layers;
  stats_.experts = config_.experts;
  stats_.expert_tokens.assign(static_cast<size_t>(config_.layers) * config_.experts, 0);
}

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
  MOE_RETURN_IF_ERROR(window_.Add(report, now));
  for (size_t g = 0; g < report.tokens.size() && g < stats_.expert_tokens.size(); ++g) {
    stats_.expert_tokens[g] += report.tokens[g];
  }
  return absl::OkStatus();
}

std::shared_ptr<const PublishedPlan> SchedulerCore::Current() const {
  absl::MutexLock lock(&mu_);
  return current_;
}

std::shared_ptr<const PublishedPlan> SchedulerCore::Pending() const {
  absl::MutexLock lock(&mu_);
  return pending_;
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

absl::Status SchedulerCore::Drain(const std::string& id) {
  absl::MutexLock lock(&mu_);
  const Member* m = members_.Find(id);
  if (m == nullptr) return absl::NotFoundError(absl::StrCat("unknown instance \"", id, "\""));
  if (m->info.role != Role::kExpert) {
    return absl::InvalidArgumentError(absl::StrCat(id, " is not an expert instance"));
  }
  int others = 0;
  for (const Member& e : members_.WithRole(Role::kExpert)) {
    if (e.id != id && draining_.count(e.id) == 0) ++others;
  }
  if (others == 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot drain ", id, ": it is the last expert instance"));
  }
  if (draining_.insert(id).second) work_ = true;
  return absl::OkStatus();
}

bool SchedulerCore::Drained(const std::string& id) const {
  absl::MutexLock lock(&mu_);
  return Drained(id, current_.get());
}

bool SchedulerCore::Drained(const std::string& id, const PublishedPlan* plan) const {
  if (plan == nullptr) return true;
  for (const PlanInstance& pi : plan->plan.instance_info) {
    if (pi.id == id) return false;
  }
  for (const Member& a : members_.WithRole(Role::kAttention)) {
    if (a.applied_epoch < plan->plan.epoch) return false;
  }
  return true;
}

PlacementProblem SchedulerCore::Problem(const std::vector<Member>& experts, absl::Time now,
                                        int64_t* window_tokens) {
  PlacementProblem problem;
  problem.layers = config_.layers;
  problem.experts = config_.experts;
  problem.instances = static_cast<int>(experts.size());
  problem.bytes_per_expert = config_.bytes_per_expert;
  problem.top_k = std::max(1, config_.top_k);
  problem.time_limit_seconds = config_.solve_time_limit_s;
  for (const Member& m : experts) {
    problem.slots.push_back(m.info.expert_slots);
    problem.memory_bytes.push_back(m.info.memory_bytes);
    problem.speed.push_back(m.info.speed);
  }
  const LoadSnapshot load = window_.Totals(now);
  if (window_tokens != nullptr) *window_tokens = load.total_tokens;
  if (load.total_tokens > 0) {
    // +1 so experts unseen in the window still weigh something when packing.
    for (int64_t t : load.tokens) problem.load.push_back(static_cast<double>(t) + 1.0);
    problem.coact = load.coact;
  }
  return problem;
}

absl::StatusOr<PlacementPlan> SchedulerCore::Place(const std::vector<Member>& experts,
                                                   const PublishedPlan* current, PlaceMode mode,
                                                   absl::Time now) {
  const PlacementProblem problem = Problem(experts, now);
  absl::StatusOr<PlacementPlan> plan;
  if (mode == PlaceMode::kRepair && current != nullptr) {
    // Keep the survivors' replicas; re-place only what the other instances held.
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
  } else if (mode == PlaceMode::kPolicy && config_.policy == PlacementPolicy::kRoundRobin) {
    plan = RoundRobinPlacement(problem, config_.replication);
  } else if (mode == PlaceMode::kPolicy && config_.policy == PlacementPolicy::kLayerBlocks) {
    plan = LayerBlockPlacement(problem, config_.replication);
  } else {
    plan = GreedyPlacement(problem, config_.replication);
  }
  if (!plan.ok()) return plan.status();
  for (const Member& m : experts) plan->instance_info.push_back({m.id, m.info.address});
  return plan;
}

std::shared_ptr<const PublishedPlan> SchedulerCore::Publish(PlacementPlan plan, PlanReason reason,
                                                            bool pending, absl::Time now) {
  auto published = std::make_shared<PublishedPlan>();
  published->plan = std::move(plan);
  published->plan.epoch = ++last_epoch_;
  published->reason = reason;
  published->pending = pending;
  published->committed_epoch =
      pending ? (current_ ? current_->plan.epoch : 0) : published->plan.epoch;
  ++stats_.plans_published;
  if (pending) {
    pending_ = published;
    pending_since_ = now;
    stats_.pending_epoch = published->plan.epoch;
  } else {
    current_ = published;
    pending_ = nullptr;
    stats_.pending_epoch = 0;
    stats_.epoch = published->plan.epoch;
    last_change_ = now;
  }
  return published;
}

namespace {

std::vector<std::string> Ids(const PublishedPlan* p) {
  std::vector<std::string> ids;
  if (p != nullptr) {
    for (const PlanInstance& pi : p->plan.instance_info) ids.push_back(pi.id);
  }
  return ids;
}

bool Contains(const std::vector<std::string>& ids, const std::string& id) {
  return std::find(ids.begin(), ids.end(), id) != ids.end();
}

}  // namespace

std::shared_ptr<const PublishedPlan> SchedulerCore::AdvancePending(absl::Time now,
                                                                   std::string* note) {
  const int64_t epoch = pending_->plan.epoch;
  bool loaded = true;
  for (const PlanInstance& pi : pending_->plan.instance_info) {
    const Member* m = members_.Find(pi.id);
    if (m == nullptr || std::max(m->loaded_epoch, m->applied_epoch) < epoch) loaded = false;
  }
  if (loaded) {
    auto committed = std::make_shared<PublishedPlan>(*pending_);
    committed->pending = false;
    committed->committed_epoch = epoch;
    if (committed->reason == PlanReason::kRebalance) {
      ++stats_.rebalances;
      stats_.last_rebalance_seconds = absl::ToDoubleSeconds(now - pending_since_);
    }
    current_ = committed;
    pending_ = nullptr;
    stats_.pending_epoch = 0;
    stats_.epoch = epoch;
    ++stats_.plans_published;
    last_change_ = now;
    return committed;
  }
  if (now - pending_since_ < config_.rebalance.commit_timeout) return nullptr;
  *note = absl::StrCat("pending plan epoch ", epoch, " abandoned: not loaded by every instance in ",
                       absl::FormatDuration(config_.rebalance.commit_timeout));
  ++stats_.abandoned;
  pending_ = nullptr;
  stats_.pending_epoch = 0;
  last_change_ = now;
  return current_;  // published again: followers forget the abandoned plan
}

std::optional<SchedulerCore::RebalanceJob> SchedulerCore::PlanRebalance(
    const std::vector<Member>& experts, absl::Time now) {
  if (current_ == nullptr || now - last_balance_ < absl::Seconds(1)) return std::nullopt;
  last_balance_ = now;
  int64_t tokens = 0;
  PlacementProblem problem = Problem(experts, now, &tokens);
  if (problem.load.empty()) {
    stats_.balancedness.clear();
    return std::nullopt;
  }
  stats_.balancedness = EvaluatePlan(problem, current_->plan).layer_balancedness;
  const RebalanceDecision decision =
      DecideRebalance({stats_.balancedness, tokens, now, last_change_}, config_.rebalance);
  if (!decision.rebalance) return std::nullopt;
  last_change_ = now;  // an attempt: the next one waits min_interval
  PlacementPlan base = current_->plan;
  base.instance_info.clear();
  problem.current = std::move(base);  // same instances in the same order (ids checked by Tick)
  return RebalanceJob{std::move(problem), experts, current_, WorstLayer(stats_.balancedness),
                      decision.why};
}

absl::StatusOr<SolveReport> SchedulerCore::SolveBalanced(const PlacementProblem& problem) const {
  SolverParams params;
  params.solver = config_.rebalance_solver;
  params.replication = config_.replication;
  params.time_limit_seconds = config_.solve_time_limit_s;
  return SolvePlacementWithReport(problem, params);
}

std::shared_ptr<const PublishedPlan> SchedulerCore::FinishRebalance(
    const RebalanceJob& job, absl::StatusOr<SolveReport> report, absl::Time now,
    std::string* note) {
  if (!report.ok()) {
    *note = absl::StrCat("rebalance (", job.why, ") failed: ", report.status().ToString());
    return nullptr;
  }
  ++stats_.solves;
  stats_.last_solve_seconds = report->seconds;
  stats_.last_objective = report->objective;
  std::optional<PlacementPlan> plan = std::move(report->plan);
  if (current_ != job.base || pending_ != nullptr) {
    *note = absl::StrCat("rebalance (", job.why, ") superseded by another plan");
    return nullptr;
  }
  const double after = EvaluatePlan(job.problem, *plan).min_balancedness;
  if (after < job.before + config_.rebalance.min_improvement) {
    *note = absl::StrFormat("rebalance (%s): no better plan (worst layer %.3f -> %.3f)", job.why,
                            job.before, after);
    return nullptr;
  }
  *note = absl::StrFormat("rebalance (%s): worst layer %.3f -> %.3f", job.why, job.before, after);
  plan->instance_info.clear();
  for (const Member& m : job.experts) plan->instance_info.push_back({m.id, m.info.address});
  return Publish(*std::move(plan), PlanReason::kRebalance, /*pending=*/true, now);
}

absl::StatusOr<std::shared_ptr<const PublishedPlan>> SchedulerCore::Replan(
    const std::vector<Member>& experts, const std::vector<Member>& live, absl::Time now) {
  if (current_ == nullptr &&
      static_cast<int>(experts.size()) < std::max(1, config_.min_expert_instances)) {
    return absl::UnavailableError(absl::StrCat("waiting for ", config_.min_expert_instances,
                                               " expert instances before the first plan (",
                                               experts.size(), " live)"));
  }
  if (experts.empty()) {
    // Nothing to place on: keep the last plan (its instances are gone; clients retry and wait
    // for the next plan, which comes when an expert instance registers).
    return absl::UnavailableError("no live expert instance");
  }
  std::vector<std::string> live_ids, target_ids;
  for (const Member& m : live) live_ids.push_back(m.id);
  for (const Member& m : experts) target_ids.push_back(m.id);
  const std::vector<std::string> plan_ids = Ids(current_.get());
  // Failover: an instance of the current plan died. Nothing to keep serving with: the repair
  // keeps the survivors' replicas and re-places the orphans, committed at once.
  bool lost = false, removed = false, added = false;
  for (const std::string& id : plan_ids) {
    lost |= !Contains(live_ids, id);
    removed |= !Contains(target_ids, id);
  }
  for (const std::string& id : target_ids) added |= !Contains(plan_ids, id);
  if (current_ == nullptr || lost) {
    absl::StatusOr<PlacementPlan> plan =
        Place(experts, current_.get(), lost ? PlaceMode::kRepair : PlaceMode::kPolicy, now);
    if (!plan.ok()) return plan.status();
    if (lost) ++stats_.failovers;
    return Publish(*std::move(plan), lost ? PlanReason::kFailover : PlanReason::kInitial,
                   /*pending=*/false, now);
  }
  // Joins and drains: make before break. Only removals keep every other replica in place.
  absl::StatusOr<PlacementPlan> plan = Place(
      experts, current_.get(), removed && !added ? PlaceMode::kRepair : PlaceMode::kPolicy, now);
  if (!plan.ok()) return plan.status();
  bool draining = false;
  for (const std::string& id : plan_ids) draining |= draining_.count(id) > 0;
  return Publish(*std::move(plan), draining ? PlanReason::kScale : PlanReason::kMembership,
                 /*pending=*/true, now);
}

TickResult SchedulerCore::Tick(absl::Time now) {
  TickResult result;
  std::optional<RebalanceJob> job;
  {
    absl::MutexLock lock(&mu_);
    work_ = false;
    result.dead = DecideLiveness(members_.All(), now, config_.heartbeat_timeout);
    for (const std::string& id : result.dead) {
      members_.Remove(id);
      draining_.erase(id);
    }
    stats_.instance_deaths += static_cast<int64_t>(result.dead.size());
    const std::vector<Member> live = members_.WithRole(Role::kExpert);
    stats_.expert_instances = static_cast<int>(live.size());
    stats_.attention_instances = static_cast<int>(members_.WithRole(Role::kAttention).size());

    std::vector<Member> experts;  // the instances to place on: live and not draining
    std::vector<std::string> target_ids;
    for (const Member& m : live) {
      if (draining_.count(m.id) > 0) continue;
      experts.push_back(m);
      target_ids.push_back(m.id);
    }
    // A pending plan for another set of instances is stale: a new one replaces it.
    if (pending_ != nullptr && Ids(pending_.get()) != target_ids) {
      pending_ = nullptr;
      stats_.pending_epoch = 0;
    }
    if (pending_ != nullptr) {
      result.published = AdvancePending(now, &result.note);
    } else if (target_ids == Ids(current_.get())) {
      job = PlanRebalance(experts, now);
    } else {
      absl::StatusOr<std::shared_ptr<const PublishedPlan>> published = Replan(experts, live, now);
      if (published.ok()) {
        result.published = *std::move(published);
      } else {
        result.placement_status = published.status();
      }
    }
  }
  if (job.has_value()) {
    // The solver may take its time limit: heartbeats and reports go on meanwhile.
    absl::StatusOr<SolveReport> report = SolveBalanced(job->problem);
    absl::MutexLock lock(&mu_);
    result.published = FinishRebalance(*job, std::move(report), now, &result.note);
  }
  if (listener_ && result.published != nullptr) listener_(result.published);
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
