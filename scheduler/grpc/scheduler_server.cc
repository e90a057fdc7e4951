#include "scheduler/grpc/scheduler_server.h"

#include <deque>
#include <set>
#include <utility>

#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/grpc_status.h"
#include "common/logging.h"
#include "moe/scheduler/v1/scheduler.grpc.pb.h"
#include "scheduler/placement/plan_proto.h"

namespace moe::scheduler {
namespace {

constexpr char kServiceName[] = "moe.scheduler.v1.SchedulerService";
using PlanPtr = std::shared_ptr<const v1::PlacementPlan>;

class PlanBroadcaster;

// One WatchPlan stream. Owns a queue of plans to write; one write in flight at a time.
// Deletes itself in OnDone after unregistering from the broadcaster.
class WatchReactor final : public grpc::ServerWriteReactor<v1::PlacementPlan> {
 public:
  explicit WatchReactor(PlanBroadcaster* broadcaster) : broadcaster_(broadcaster) {}

  void Enqueue(PlanPtr plan) {
    absl::MutexLock lock(&mu_);
    if (finishing_) return;
    queue_.push_back(std::move(plan));
    MaybeWriteLocked();
  }
  // Ends the stream with `status` once the write in flight (if any) completes.
  void End(const grpc::Status& status) {
    absl::MutexLock lock(&mu_);
    EndLocked(status);
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    queue_.pop_front();
    // A failed write ends the stream; if it was already ending (Close or OnCancel during the
    // write), the Finish that waited for this write is due now. (Returning without it left the
    // reactor undone, and Server::Shutdown waited for it forever.)
    if (!ok) EndLocked(grpc::Status(grpc::StatusCode::CANCELLED, "write failed"));
    if (finishing_) {
      if (!finished_) {
        finished_ = true;
        Finish(end_status_);
      }
      return;
    }
    MaybeWriteLocked();
  }
  void OnCancel() override { End(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled")); }
  void OnDone() override;

 private:
  void MaybeWriteLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (writing_ || queue_.empty()) return;
    writing_ = true;
    StartWrite(queue_.front().get());
  }
  void EndLocked(const grpc::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finishing_) return;
    finishing_ = true;
    end_status_ = status;
    if (!writing_) {
      finished_ = true;
      Finish(status);
    }
  }

  PlanBroadcaster* broadcaster_;
  absl::Mutex mu_;
  std::deque<PlanPtr> queue_ ABSL_GUARDED_BY(mu_);  // front is in flight while writing_
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finishing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status end_status_ ABSL_GUARDED_BY(mu_);
};

// The set of open watch streams and the newest plan. Lock order: broadcaster, then reactor.
class PlanBroadcaster {
 public:
  // Returns nullptr-equivalent handling: after Close, new watchers are ended at once.
  void Add(WatchReactor* r) {
    absl::MutexLock lock(&mu_);
    if (closed_) {
      r->End(grpc::Status::OK);
      return;
    }
    watchers_.insert(r);
    // The committed plan first (what to route with), then a pending one still being loaded.
    if (committed_ != nullptr) r->Enqueue(committed_);
    if (pending_ != nullptr) r->Enqueue(pending_);
  }
  void Remove(WatchReactor* r) {
    absl::MutexLock lock(&mu_);
    watchers_.erase(r);
  }
  void Publish(PlanPtr plan) {
    absl::MutexLock lock(&mu_);
    if (plan->state() == v1::PLAN_STATE_PENDING) {
      pending_ = plan;
    } else {
      committed_ = plan;
      pending_ = nullptr;
    }
    for (WatchReactor* r : watchers_) r->Enqueue(plan);
  }
  void Close() {
    absl::MutexLock lock(&mu_);
    closed_ = true;
    for (WatchReactor* r : watchers_) r->End(grpc::Status::OK);
  }

 private:
  absl::Mutex mu_;
  std::set<WatchReactor*> watchers_ ABSL_GUARDED_BY(mu_);
  PlanPtr committed_ ABSL_GUARDED_BY(mu_);
  PlanPtr pending_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

void WatchReactor::OnDone() {
  broadcaster_->Remove(this);
  delete this;
}

v1::PlanReason ToProtoReason(PlanReason r) {
  switch (r) {
    case PlanReason::kInitial: return v1::PLAN_REASON_INITIAL;
    case PlanReason::kMembership: return v1::PLAN_REASON_MEMBERSHIP;
    case PlanReason::kFailover: return v1::PLAN_REASON_FAILOVER;
    case PlanReason::kRebalance: return v1::PLAN_REASON_REBALANCE;
    case PlanReason::kScale: return v1::PLAN_REASON_SCALE;
  }
  return v1::PLAN_REASON_UNSPECIFIED;
}

class ServiceImpl final : public v1::SchedulerService::CallbackService {
 public:
  ServiceImpl(SchedulerCore* core, const Clock* clock) : core_(core), clock_(clock) {}
  PlanBroadcaster& broadcaster() { return broadcaster_; }

  grpc::ServerUnaryReactor* Register(grpc::CallbackServerContext* ctx,
                                     const v1::RegisterRequest* req,
                                     v1::RegisterResponse* resp) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    MemberInfo info;
    switch (req->role()) {
      case v1::ROLE_EXPERT: info.role = Role::kExpert; break;
      case v1::ROLE_ATTENTION: info.role = Role::kAttention; break;
      default:
        reactor->Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "role is required"));
        return reactor;
    }
    info.address = req->address();
    info.memory_bytes = req->memory_bytes();
    info.expert_slots = req->expert_slots();
    info.speed = req->speed();
    info.name = req->name();
    absl::StatusOr<std::string> id = core_->Register(info, clock_->Now());
    if (id.ok()) {
      resp->set_instance_id(*id);
      resp->set_heartbeat_interval_ms(
          absl::ToInt64Milliseconds(core_->config().heartbeat_interval));
      MOE_LOG_INFO("registered {} ({}, {})", *id, req->address(), req->name());
    }
    reactor->Finish(ToGrpcStatus(id.status()));
    return reactor;
  }

  grpc::ServerUnaryReactor* Heartbeat(grpc::CallbackServerContext* ctx,
                                      const v1::HeartbeatRequest* req,
                                      v1::HeartbeatResponse* resp) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    HeartbeatInfo hb;
    hb.applied_epoch = req->applied_epoch();
    hb.loaded_epoch = req->loaded_epoch();
    hb.ready = req->ready();
    hb.tokens_per_second = req->tokens_per_second();
    absl::Status s = core_->Heartbeat(req->instance_id(), hb, clock_->Now());
    if (s.ok() && req->leaving()) {
      // Idempotent; refused for the last expert instance (nothing to move its experts to) or
      // for another role: the instance then just stops, as without the flag.
      if (absl::Status d = core_->Drain(req->instance_id()); !d.ok()) {
        MOE_LOG_DEBUG("instance {} leaving, not drained: {}", req->instance_id(), d.ToString());
      }
    }
    // The newest published epoch, pending included (an instance that missed it on its watch
    // learns that there is a plan to load).
    if (auto pending = core_->Pending()) {
      resp->set_epoch(pending->plan.epoch);
    } else if (auto current = core_->Current()) {
      resp->set_epoch(current->plan.epoch);
    }
    reactor->Finish(ToGrpcStatus(s));
    return reactor;
  }

  grpc::ServerUnaryReactor* ReportLoad(grpc::CallbackServerContext* ctx,
                                       const v1::ReportLoadRequest* req,
                                       v1::ReportLoadResponse*) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    const SchedulerConfig& c = core_->config();
    if (req->layers() != c.layers || req->experts() != c.experts) {
      reactor->Finish(grpc::Status(
          grpc::StatusCode::INVALID_ARGUMENT,
          absl::StrCat("load shape ", req->layers(), "x", req->experts(), ", scheduler places ",
                       c.layers, "x", c.experts)));
      return reactor;
    }
    LoadReport report;
    report.tokens.assign(req->tokens().begin(), req->tokens().end());
    for (const v1::CoActivation& ca : req->coact()) {
      report.coact.push_back({ca.layer(), ca.a(), ca.b(), ca.count()});
    }
    reactor->Finish(ToGrpcStatus(core_->ReportLoad(req->instance_id(), report, clock_->Now())));
    return reactor;
  }

  grpc::ServerWriteReactor<v1::PlacementPlan>* WatchPlan(
      grpc::CallbackServerContext*, const v1::WatchPlanRequest*) override {
    auto* reactor = new WatchReactor(&broadcaster_);
    broadcaster_.Add(reactor);
    return reactor;
  }

 private:
  SchedulerCore* core_;
  const Clock* clock_;
  PlanBroadcaster broadcaster_;
};

}  // namespace

struct SchedulerServer::Impl {
  std::unique_ptr<ServiceImpl> service;
  std::unique_ptr<grpc::Server> server;
  int port = 0;
  bool shut_down = false;
};

SchedulerServer::SchedulerServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SchedulerServer::~SchedulerServer() { Shutdown(); }

absl::StatusOr<std::unique_ptr<SchedulerServer>> SchedulerServer::Start(
    const SchedulerServerOptions& options, SchedulerCore* core, const Clock* clock) {
  auto impl = std::make_unique<Impl>();
  impl->service = std::make_unique<ServiceImpl>(core, clock);
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  builder.AddListeningPort(absl::StrCat(options.host, ":", options.port),
                           grpc::InsecureServerCredentials(), &impl->port);
  builder.SetMaxReceiveMessageSize(options.max_message_bytes);
  builder.SetMaxSendMessageSize(options.max_message_bytes);
  builder.RegisterService(impl->service.get());
  impl->server = builder.BuildAndStart();
  if (impl->server == nullptr || impl->port == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options.host, ":", options.port));
  }
  if (auto* health = impl->server->GetHealthCheckService()) {
    health->SetServingStatus(true);
    health->SetServingStatus(kServiceName, true);
  }
  return std::unique_ptr<SchedulerServer>(new SchedulerServer(std::move(impl)));
}

int SchedulerServer::port() const { return impl_->port; }

void SchedulerServer::PublishPlan(const PublishedPlan& published) {
  auto plan = std::make_shared<v1::PlacementPlan>();
  PlanToProto(published.plan, plan.get());
  plan->set_state(published.pending ? v1::PLAN_STATE_PENDING : v1::PLAN_STATE_COMMITTED);
  plan->set_pending(published.pending);
  plan->set_committed_epoch(published.committed_epoch);
  plan->set_reason(ToProtoReason(published.reason));
  impl_->service->broadcaster().Publish(std::move(plan));
}

void SchedulerServer::Shutdown() {
  if (impl_ == nullptr || impl_->shut_down) return;
  impl_->shut_down = true;
  if (auto* health = impl_->server->GetHealthCheckService()) {
    health->SetServingStatus(false);
  }
  impl_->service->broadcaster().Close();
  // The handlers only do bookkeeping: 2 s is ample for calls in flight. (An idle client
  // connection also holds Shutdown until this deadline.)
  impl_->server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  impl_->server->Wait();
}

}  // namespace moe::scheduler
