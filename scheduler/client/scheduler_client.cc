#include "scheduler/client/scheduler_client.h"

#include <pthread.h>

#include <algorithm>
#include <utility>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/logging.h"
#include "common/status.h"

namespace moe::scheduler {
namespace {

namespace v1 = ::moe::scheduler::v1;

std::chrono::system_clock::time_point DeadlineIn(absl::Duration d) {
  return absl::ToChronoTime(absl::Now() + d);
}

void NameThisThread(const char* name) { pthread_setname_np(pthread_self(), name); }

}  // namespace

SchedulerClient::SchedulerClient(SchedulerClientOptions options, PlanCallback on_plan,
                                 StatusProvider status, LoadProvider load)
    : options_(std::move(options)),
      on_plan_(std::move(on_plan)),
      status_(std::move(status)),
      load_(std::move(load)) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  // Reconnect quickly after the scheduler restarts (gRPC's default backoff grows to 120 s).
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS,
              static_cast<int>(absl::ToInt64Milliseconds(options_.initial_backoff)) + 1);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS,
              static_cast<int>(absl::ToInt64Milliseconds(options_.max_backoff)) + 1);
  channel_ = grpc::CreateCustomChannel(options_.scheduler, grpc::InsecureChannelCredentials(),
                                       args);
  stub_ = v1::SchedulerService::NewStub(channel_);
}

absl::StatusOr<std::unique_ptr<SchedulerClient>> SchedulerClient::Start(
    SchedulerClientOptions options, PlanCallback on_plan, StatusProvider status,
    LoadProvider load) {
  if (options.scheduler.empty()) return absl::InvalidArgumentError("no scheduler address");
  std::unique_ptr<SchedulerClient> c(
      new SchedulerClient(std::move(options), std::move(on_plan), std::move(status),
                          std::move(load)));
  const SchedulerClientOptions& o = c->options_;
  if (!o.register_in_background) {
    MOE_RETURN_IF_ERROR(c->RegisterBlocking());
  }
  c->heartbeat_thread_ = std::thread([p = c.get()] { p->HeartbeatLoop(); });
  if (c->on_plan_) c->watch_thread_ = std::thread([p = c.get()] { p->WatchLoop(); });
  if (c->load_ && o.load_interval > absl::ZeroDuration()) {
    c->load_thread_ = std::thread([p = c.get()] { p->LoadLoop(); });
  }
  return c;
}

absl::Status SchedulerClient::RegisterBlocking() {
  const SchedulerClientOptions& o = options_;
  const absl::Time deadline = absl::Now() + o.startup_timeout;
  absl::Duration backoff = o.initial_backoff;
  absl::Status last;
  while (true) {
    last = RegisterOnce();
    if (last.ok()) break;
    if (last.code() == absl::StatusCode::kInvalidArgument) return last;
    if (absl::Now() + backoff >= deadline) {
      return absl::DeadlineExceededError(absl::StrCat("cannot register with the scheduler at ",
                                                      o.scheduler, " within ",
                                                      absl::FormatDuration(o.startup_timeout),
                                                      ": ", last.message()));
    }
    MOE_LOG_DEBUG("register with {}: {}; retrying", o.scheduler, last.ToString());
    absl::SleepFor(backoff);
    backoff = std::min(backoff * 2, o.max_backoff);
  }
  MOE_LOG_INFO("registered with the scheduler at {} as {}", o.scheduler, instance_id());
  return absl::OkStatus();
}

bool SchedulerClient::RegisterInBackground() {
  const absl::Time warn_at = absl::Now() + options_.startup_timeout;
  bool warned = false;
  absl::Duration backoff = options_.initial_backoff;
  while (true) {
    absl::Status s = RegisterOnce();
    if (s.ok()) {
      MOE_LOG_INFO("registered with the scheduler at {} as {}", options_.scheduler,
                   instance_id());
      return true;
    }
    if (!warned && absl::Now() >= warn_at) {
      MOE_LOG_WARN("cannot register with the scheduler at {} yet ({}); still trying",
                   options_.scheduler, s.ToString());
      warned = true;
    }
    if (!SleepFor(backoff)) return false;
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
}

SchedulerClient::~SchedulerClient() { Stop(); }

absl::Status SchedulerClient::RegisterOnce() {
  v1::RegisterRequest req;
  req.set_role(options_.role);
  req.set_address(options_.address);
  req.set_name(options_.name);
  req.set_memory_bytes(options_.memory_bytes);
  req.set_expert_slots(options_.expert_slots);
  v1::RegisterResponse resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(DeadlineIn(options_.rpc_timeout));
  MOE_RETURN_IF_ERROR(FromGrpcStatus(stub_->Register(&ctx, req, &resp)));
  if (resp.instance_id().empty()) return absl::DataLossError("Register gave no instance id");
  absl::MutexLock lock(&mu_);
  instance_id_ = resp.instance_id();
  if (resp.heartbeat_interval_ms() > 0) {
    heartbeat_interval_ = absl::Milliseconds(resp.heartbeat_interval_ms());
  }
  ++registrations_;
  return absl::OkStatus();
}

std::string SchedulerClient::instance_id() const {
  absl::MutexLock lock(&mu_);
  return instance_id_;
}

int64_t SchedulerClient::registrations() const {
  absl::MutexLock lock(&mu_);
  return registrations_;
}

int64_t SchedulerClient::scheduler_epoch() const {
  absl::MutexLock lock(&mu_);
  return scheduler_epoch_;
}

void SchedulerClient::HeartbeatNow() {
  absl::MutexLock lock(&mu_);
  heartbeat_now_ = true;
}

bool SchedulerClient::SleepFor(absl::Duration d, bool heartbeat) {
  absl::MutexLock lock(&mu_);
  auto wake = [this, heartbeat]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return stopped_ || (heartbeat && heartbeat_now_);
  };
  mu_.AwaitWithTimeout(absl::Condition(&wake), d);
  if (heartbeat) heartbeat_now_ = false;
  return !stopped_;
}

void SchedulerClient::HeartbeatLoop() {
  NameThisThread("sched-heartbeat");
  if (instance_id().empty() && !RegisterInBackground()) return;
  absl::Duration interval;
  {
    absl::MutexLock lock(&mu_);
    interval = heartbeat_interval_;
  }
  while (SleepFor(interval, /*heartbeat=*/true)) {
    v1::HeartbeatRequest req;
    req.set_instance_id(instance_id());
    if (status_) {
      const InstanceStatus s = status_();
      req.set_applied_epoch(s.applied_epoch);
      req.set_ready(s.ready);
      req.set_loaded_epoch(s.loaded_epoch);
      req.set_tokens_per_second(s.tokens_per_second);
      req.set_leaving(s.leaving);
    }
    v1::HeartbeatResponse resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(DeadlineIn(options_.rpc_timeout));
    const grpc::Status st = stub_->Heartbeat(&ctx, req, &resp);
    if (st.ok()) {
      absl::MutexLock lock(&mu_);
      scheduler_epoch_ = std::max(scheduler_epoch_, resp.epoch());
    } else if (st.error_code() == grpc::StatusCode::NOT_FOUND) {
      // Declared dead (or the scheduler restarted): register again, under a new id.
      MOE_LOG_WARN("scheduler forgot instance {}: registering again", req.instance_id());
      if (absl::Status s = RegisterOnce(); !s.ok()) {
        MOE_LOG_WARN("re-register: {}", s.ToString());
      } else {
        MOE_LOG_INFO("registered again as {}", instance_id());
        // A plan naming the new id may have arrived before the id was known here: hand the
        // newest plan over again with the new id (the next plan comes when the scheduler
        // re-places, which it does for a new expert instance).
        if (on_plan_) Deliver(nullptr);
      }
    } else {
      MOE_LOG_DEBUG("heartbeat: {}", st.error_message());
    }
    absl::MutexLock lock(&mu_);
    interval = heartbeat_interval_;
  }
}

void SchedulerClient::WatchLoop() {
  NameThisThread("sched-watch");
  {
    // The plan names instances by id: open the stream once registered.
    absl::MutexLock lock(&mu_);
    auto registered = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return stopped_ || !instance_id_.empty();
    };
    mu_.Await(absl::Condition(&registered));
    if (stopped_) return;
  }
  absl::Duration backoff = options_.initial_backoff;
  while (true) {
    grpc::ClientContext ctx;
    {
      absl::MutexLock lock(&mu_);
      if (stopped_) return;
      watch_ctx_ = &ctx;
    }
    v1::WatchPlanRequest req;
    req.set_instance_id(instance_id());
    std::unique_ptr<grpc::ClientReader<v1::PlacementPlan>> reader = stub_->WatchPlan(&ctx, req);
    v1::PlacementPlan plan;
    bool got_any = false;
    while (reader->Read(&plan)) {
      got_any = true;
      {
        absl::MutexLock lock(&mu_);
        scheduler_epoch_ = std::max(scheduler_epoch_, plan.epoch());
      }
      Deliver(&plan);
    }
    const grpc::Status st = reader->Finish();
    {
      absl::MutexLock lock(&mu_);
      watch_ctx_ = nullptr;
      if (stopped_) return;
    }
    if (got_any) backoff = options_.initial_backoff;
    MOE_LOG_DEBUG("plan stream ended ({}); reconnecting", st.error_message());
    if (!SleepFor(backoff)) return;
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
}

void SchedulerClient::Deliver(const v1::PlacementPlan* plan) {
  absl::MutexLock lock(&deliver_mu_);
  if (plan != nullptr) {
    last_plan_ = *plan;
  } else if (!last_plan_.has_value()) {
    return;
  }
  on_plan_(*last_plan_, instance_id());
}

void SchedulerClient::LoadLoop() {
  NameThisThread("sched-load");
  while (SleepFor(options_.load_interval)) {
    std::optional<v1::ReportLoadRequest> req = load_();
    if (!req.has_value()) continue;
    if (absl::Status s = ReportLoad(*std::move(req)); !s.ok()) {
      MOE_LOG_DEBUG("report load: {}", s.ToString());
    }
  }
}

absl::Status SchedulerClient::ReportLoad(v1::ReportLoadRequest request) {
  request.set_instance_id(instance_id());
  v1::ReportLoadResponse resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(DeadlineIn(options_.rpc_timeout));
  return FromGrpcStatus(stub_->ReportLoad(&ctx, request, &resp));
}

void SchedulerClient::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopped_ && !heartbeat_thread_.joinable() && !watch_thread_.joinable() &&
        !load_thread_.joinable()) {
      return;
    }
    stopped_ = true;
    if (watch_ctx_ != nullptr) watch_ctx_->TryCancel();
  }
  if (heartbeat_thread_.joinable()) heartbeat_thread_.join();
  if (watch_thread_.joinable()) watch_thread_.join();
  if (load_thread_.joinable()) load_thread_.join();
}

}  // namespace moe::scheduler
