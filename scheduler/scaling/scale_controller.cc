#include "scheduler/scaling/scale_controller.h"

#include <pthread.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/logging.h"

namespace moe::scheduler {

absl::Status ValidateScaleControllerOptions(const ScaleControllerOptions& o) {
  if (absl::Status s = ValidateScaleParams(o.params); !s.ok()) return s;
  if (o.interval <= absl::ZeroDuration() || o.load_window <= absl::ZeroDuration() ||
      o.drain_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("scale interval, load window and drain timeout must be > 0");
  }
  return absl::OkStatus();
}

ScaleController::ScaleController(ScalingTarget* target, InstanceProvider* provider,
                                 const Clock* clock, ScaleControllerOptions options,
                                 StepCallback on_step)
    : target_(target),
      provider_(provider),
      clock_(clock),
      options_(std::move(options)),
      on_step_(std::move(on_step)) {}

ScaleController::~ScaleController() { Stop(); }

void ScaleController::Start() {
  thread_ = std::thread([this] { Run(); });
}

void ScaleController::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopped_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void ScaleController::Run() {
  pthread_setname_np(pthread_self(), "sched-scale");
  for (;;) {
    const ScaleStatus st = Step(clock_->Now());
    if (on_step_) on_step_(st);
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithTimeout(absl::Condition(&stopped_), options_.interval);
    if (stopped_) return;
  }
}

ScaleStatus ScaleController::Step(absl::Time now) {
  ScaleStatus st;
  const int64_t actions = ups_ + downs_;
  int known = -1;  // the provider's count read in this step (each read may be an API call)
  for (const InstanceExit& e : provider_->TakeExited()) {
    MOE_LOG_WARN("elastic: expert instance {} ended on its own (code {})", e.name, e.code);
    ++exits_;
    if (e.name == draining_name_) draining_name_.clear();  // nothing left to drain
  }
  if (!draining_name_.empty()) {
    ContinueDrain(now, &st);
  } else if (absl::StatusOr<int> current = provider_->Current(); !current.ok()) {
    st.error = current.status();
  } else {
    known = *current;
    Decide(now, *current, &st);
  }
  if (!st.error.ok()) MOE_LOG_WARN("elastic: {}", st.error.ToString());
  st.decision = decision_;
  if (known >= 0 && ups_ + downs_ == actions) {
    st.current = known;
  } else if (absl::StatusOr<int> current = provider_->Current(); current.ok()) {
    st.current = *current;
  }
  st.scale_ups = ups_;
  st.scale_downs = downs_;
  st.instance_exits = exits_;
  st.draining = draining_name_;
  return st;
}

void ScaleController::Decide(absl::Time now, int current, ScaleStatus* st) {
  if (down_target_ >= 0 && down_target_ < current) {
    StartDrain(now, st);  // the next instance of a shrink by more than one
    return;
  }
  down_target_ = -1;
  ScaleInput in;
  in.current = current;
  in.last_action = last_action_;
  in.demand_tps = static_cast<double>(target_->Load(now).total_tokens) /
                  absl::ToDoubleSeconds(options_.load_window);
  for (const Member& m : target_->Members()) {
    if (m.info.role == Role::kExpert) in.measured_tps.push_back(m.tokens_per_second);
  }
  decision_ = DecideScale(in, now, options_.params);
  if (decision_.desired == current) {
    MOE_LOG_DEBUG("elastic: {} expert instances: {} (demand {:.0f} tokens/s)", current,
                  decision_.Describe(), in.demand_tps);
    return;
  }
  MOE_LOG_INFO("elastic: {} -> {} expert instances: {} (demand {:.0f} tokens/s)", current,
               decision_.desired, decision_.Describe(), in.demand_tps);
  if (decision_.desired < current) {
    down_target_ = decision_.desired;
    StartDrain(now, st);
  } else if (absl::Status s = provider_->ScaleTo(decision_.desired); s.ok()) {
    ++ups_;
    last_action_ = now;
  } else {
    st->error = s;
  }
}

void ScaleController::StartDrain(absl::Time now, ScaleStatus* st) {
  absl::StatusOr<std::string> name = provider_->NextToRemove();
  if (!name.ok()) {
    st->error = name.status();
    down_target_ = -1;
    return;
  }
  // The member registered under that name (the newest, should it have registered twice).
  const Member* member = nullptr;
  const std::vector<Member> members = target_->Members();
  for (const Member& m : members) {
    if (m.info.role == Role::kExpert && m.info.name == *name &&
        (member == nullptr || m.seq > member->seq)) {
      member = &m;
    }
  }
  if (member == nullptr) {
    MOE_LOG_INFO("elastic: {} is not registered: removing it without a drain", *name);
    RemoveOne(now, st);
    return;
  }
  absl::Status s = target_->Drain(member->id);
  if (s.ok()) {
    MOE_LOG_INFO("elastic: draining {} (instance {})", *name, member->id);
    draining_name_ = *name;
    draining_id_ = member->id;
    draining_since_ = now;
    last_action_ = now;  // the shrink started (cool-downs also count from its removal)
  } else if (absl::IsNotFound(s)) {
    RemoveOne(now, st);  // gone meanwhile
  } else {
    st->error = absl::Status(s.code(), absl::StrCat("drain ", *name, ": ", s.message()));
    down_target_ = -1;  // e.g. the last instance: give the shrink up
  }
}

void ScaleController::ContinueDrain(absl::Time now, ScaleStatus* st) {
  absl::StatusOr<std::string> next = provider_->NextToRemove();
  if (!next.ok() || *next != draining_name_) {
    // The drained instance is no longer the one a scale-down removes (it ended): start over.
    MOE_LOG_WARN("elastic: {} is no longer the next to remove: drain abandoned", draining_name_);
    draining_name_.clear();
    return;
  }
  const bool drained = target_->Drained(draining_id_);
  if (!drained && now - draining_since_ < options_.drain_timeout) return;  // re-check next step
  if (drained) {
    MOE_LOG_INFO("elastic: {} drained after {}: stopping it", draining_name_,
                 absl::FormatDuration(now - draining_since_));
  } else {
    MOE_LOG_WARN("elastic: {} not drained after {}: stopping it anyway", draining_name_,
                 absl::FormatDuration(options_.drain_timeout));
  }
  draining_name_.clear();
  RemoveOne(now, st);
}

void ScaleController::RemoveOne(absl::Time now, ScaleStatus* st) {
  absl::StatusOr<int> current = provider_->Current();
  absl::Status s = current.ok() ? provider_->ScaleTo(*current - 1) : current.status();
  if (!s.ok()) {
    st->error = s;
    down_target_ = -1;
    return;
  }
  ++downs_;
  last_action_ = now;
}

}  // namespace moe::scheduler
