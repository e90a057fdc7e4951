#include "expert_service/grpc/expert_server.h"

#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>
#include <utility>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "common/shm_ring.h"
#include "common/status.h"
#include "expert_service/grpc/wire.h"
#include "expert_service/grpc/work_queue.h"
#include "moe/expert/v1/expert.grpc.pb.h"

namespace moe::expert {

namespace v1 = ::moe::expert::v1;

namespace {

constexpr char kServiceName[] = "moe.expert.v1.ExpertService";
// Slots per shared-memory segment this server accepts.
constexpr uint32_t kMaxShmSlots = 64;
// How often an idle shm serving thread checks that its client still exists.
constexpr absl::Duration kShmIdleCheck = absl::Milliseconds(200);

// One Forward call in flight, whichever transport carried it. Finish is called exactly once.
class ForwardCall {
 public:
  virtual ~ForwardCall() = default;
  virtual const v1::ComputeRequest& request() const = 0;
  virtual v1::ComputeResponse* response() = 0;
  virtual bool Cancelled() const = 0;
  virtual std::chrono::system_clock::time_point deadline() const = 0;
  virtual void Finish(const absl::Status& status) = 0;
};

class GrpcForwardCall final : public ForwardCall {
 public:
  GrpcForwardCall(grpc::CallbackServerContext* ctx, grpc::ServerUnaryReactor* reactor,
                  const v1::ComputeRequest* req, v1::ComputeResponse* resp)
      : ctx_(ctx), reactor_(reactor), req_(req), resp_(resp) {}
  const v1::ComputeRequest& request() const override { return *req_; }
  v1::ComputeResponse* response() override { return resp_; }
  bool Cancelled() const override { return ctx_->IsCancelled(); }
  std::chrono::system_clock::time_point deadline() const override { return ctx_->deadline(); }
  void Finish(const absl::Status& status) override { reactor_->Finish(ToGrpcStatus(status)); }

 private:
  grpc::CallbackServerContext* const ctx_;
  grpc::ServerUnaryReactor* const reactor_;
  const v1::ComputeRequest* const req_;
  v1::ComputeResponse* const resp_;
};

// A call posted into one slot of a shared-memory segment. One object per slot, reused: a slot
// holds at most one call until Finish answers it. `busy` guards the reuse against a client
// that reposts a slot before its answer (the protocol forbids it; a broken client must not
// corrupt the server): the serving thread skips a slot whose call is still busy.
class ShmForwardCall final : public ForwardCall {
 public:
  // Serving thread: true if the slot's previous call has finished (and marks it busy).
  bool TryAcquire() { return !busy_.exchange(true, std::memory_order_acq_rel); }

  // Serving thread: takes the slot's request (already parsed into request_).
  // `in_flight` (the segment's count of calls that may still touch the mapping) is
  // incremented here and decremented once Finish has published the answer.
  void Start(shm::ShmRing* ring, std::atomic<int>* in_flight, int slot, int64_t deadline_unix_ns) {
    in_flight->fetch_add(1);
    in_flight_ = in_flight;
    ring_ = ring;
    slot_ = slot;
    deadline_ = deadline_unix_ns == 0
                    ? std::chrono::system_clock::time_point::max()
                    : std::chrono::system_clock::time_point(std::chrono::duration_cast<
                          std::chrono::system_clock::duration>(
                          std::chrono::nanoseconds(deadline_unix_ns)));
    response_.Clear();
  }
  v1::ComputeRequest* mutable_request() { return &request_; }
  const v1::ComputeRequest& request() const override { return request_; }
  v1::ComputeResponse* response() override { return &response_; }
  bool Cancelled() const override { return ring_->Abandoned(slot_); }
  std::chrono::system_clock::time_point deadline() const override { return deadline_; }
  // Writes the serialized response (or the error) into the slot and rings the client. A
  // response larger than the slot answers RESOURCE_EXHAUSTED with kFlagResponseTooLarge.
  // The object is released (busy = false) before the slot is published: after that only
  // locals are used, so the serving thread may reuse it as soon as the client reposts.
  void Finish(const absl::Status& status) override {
    shm::ShmRing* const ring = ring_;
    std::atomic<int>* const in_flight = in_flight_;
    const int slot = slot_;
    if (!status.ok()) {
      busy_.store(false, std::memory_order_release);
      ring->RespondError(slot, status);
    } else if (const size_t size = response_.ByteSizeLong(); size > ring->slot_bytes()) {
      busy_.store(false, std::memory_order_release);
      ring->RespondError(
          slot,
          absl::ResourceExhaustedError(absl::StrCat("response of ", size,
                                                    " bytes exceeds the shm slot (",
                                                    ring->slot_bytes(), " bytes)")),
          shm::kFlagResponseTooLarge);
    } else {
      response_.SerializeWithCachedSizesToArray(
          reinterpret_cast<uint8_t*>(ring->response_payload(slot)));
      busy_.store(false, std::memory_order_release);
      ring->Respond(slot, absl::StatusCode::kOk, 0, size);
    }
    in_flight->fetch_sub(1, std::memory_order_release);
  }

 private:
  shm::ShmRing* ring_ = nullptr;
  std::atomic<int>* in_flight_ = nullptr;
  int slot_ = -1;
  std::chrono::system_clock::time_point deadline_;
  v1::ComputeRequest request_;
  v1::ComputeResponse response_;
  std::atomic<bool> busy_{false};
};

// One negotiated segment and the thread serving it. Queued calls hold a reference (aliasing
// shared_ptr to their ShmForwardCall), so the mapping outlives them.
struct ShmSegment {
  // Null once the client is gone and no call touches it any more (the serving thread unmaps
  // it then, so a dead client's memory is freed); guarded by the service's shm_mu_.
  std::unique_ptr<shm::ShmRing> ring;
  std::atomic<int> in_flight{0};  // calls that may still write into the mapping
  std::unique_ptr<ShmForwardCall[]> calls;  // one per slot
  std::thread thread;
  std::atomic<bool> stop{false};
  std::atomic<bool> done{false};
};

// Prometheus families, registered once per process.
struct Metrics {
  prometheus::Family<prometheus::Counter>& tokens;
  prometheus::Family<prometheus::Counter>& requests;
  prometheus::Histogram& batch_tokens;
  prometheus::Histogram& compute_seconds;
  prometheus::Gauge& queue_depth;
  prometheus::Gauge& shm_segments;

  static Metrics& Get() {
    static Metrics* m = [] {
      prometheus::Registry& r = MetricsRegistry();
      return new Metrics{
          prometheus::BuildCounter()
              .Name("moe_expert_tokens_total")
              .Help("Tokens computed per (layer, expert) on this instance")
              .Register(r),
          prometheus::BuildCounter()
              .Name("moe_expert_requests_total")
              .Help("Forward calls by gRPC status code")
              .Register(r),
          prometheus::BuildHistogram()
              .Name("moe_expert_batch_tokens")
              .Help("Tokens per Forward call (all shards)")
              .Register(r)
              .Add({}, ExponentialBuckets(1, 2, 14)),
          prometheus::BuildHistogram()
              .Name("moe_expert_compute_seconds")
              .Help("Compute time per Forward call, seconds")
              .Register(r)
              .Add({}, ExponentialBuckets(1e-5, 2, 20)),
          prometheus::BuildGauge()
              .Name("moe_expert_queue_depth")
              .Help("Forward calls waiting for the compute thread")
              .Register(r)
              .Add({}),
          prometheus::BuildGauge()
              .Name("moe_expert_shm_segments")
              .Help("Shared-memory segments (same-host clients) being served")
              .Register(r)
              .Add({})};
    }();
    return *m;
  }
  void Count(grpc::StatusCode code) {
    requests.Add({{"code", std::to_string(static_cast<int>(code))}}).Increment();
  }
};

class ServiceImpl final : public v1::ExpertService::CallbackService {
 public:
  ServiceImpl(const ExpertServerOptions& options, ShardExecutor* executor,
              const ModelExpertSource* source)
      : options_(options),
        executor_(executor),
        source_(source),
        metrics_(Metrics::Get()),
        compute_("expert-compute", options.max_queue,
                 [this](size_t d) { metrics_.queue_depth.Set(static_cast<double>(d)); }),
        loader_("expert-loader", 4) {}

  void set_port(int port) { port_.store(port); }
  int64_t tokens_computed() const { return tokens_computed_.load(std::memory_order_relaxed); }

  void StopQueues() {
    compute_.Stop();
    loader_.Stop();
  }

  // Ends every shm serving thread (no new calls are claimed; OpenShm answers UNAVAILABLE).
  void StopShm() {
    std::vector<std::shared_ptr<ShmSegment>> segments;
    {
      absl::MutexLock lock(&shm_mu_);
      shm_stopped_ = true;
      segments = shm_segments_;
      for (auto& seg : segments) {
        seg->stop.store(true);
        if (seg->ring != nullptr) seg->ring->Wake();
      }
    }
    for (auto& seg : segments) {
      if (seg->thread.joinable()) seg->thread.join();
    }
  }

  // After StopQueues (queued shm calls have been answered): tells the clients the segments are
  // closed and drops them.
  void CloseShm() {
    absl::MutexLock lock(&shm_mu_);
    for (auto& seg : shm_segments_) {
      if (seg->ring != nullptr) seg->ring->CloseServer();
    }
    shm_segments_.clear();
  }

  grpc::ServerUnaryReactor* Forward(grpc::CallbackServerContext* ctx,
                                    const v1::ComputeRequest* req,
                                    v1::ComputeResponse* resp) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    Submit(std::make_shared<GrpcForwardCall>(ctx, reactor, req, resp));
    return reactor;
  }

  grpc::ServerUnaryReactor* OpenShm(grpc::CallbackServerContext* ctx,
                                    const v1::OpenShmRequest* req,
                                    v1::OpenShmResponse* resp) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    absl::Status s = StartShm(*req);
    if (s.ok()) {
      resp->set_server_pid(getpid());
    } else {
      MOE_LOG_WARN("OpenShm {}: {}", req->name(), s.ToString());
    }
    reactor->Finish(ToGrpcStatus(s));
    return reactor;
  }

  grpc::ServerUnaryReactor* LoadExperts(grpc::CallbackServerContext* ctx,
                                        const v1::LoadExpertsRequest* req,
                                        v1::LoadExpertsResponse* resp) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    if (source_ == nullptr) {
      reactor->Finish(grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "no model source"));
      return reactor;
    }
    if (!loader_.TryPush([this, req, resp, reactor] { Load(*req, resp, reactor); })) {
      reactor->Finish(
          grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "too many loads in flight"));
    }
    return reactor;
  }

  grpc::ServerUnaryReactor* Describe(grpc::CallbackServerContext* ctx,
                                     const v1::DescribeRequest*,
                                     v1::DescribeResponse* resp) override {
    BackendInfo info = executor_->Describe();
    resp->set_instance_id(options_.instance_id.empty()
                              ? absl::StrCat(options_.host, ":", port_.load())
                              : options_.instance_id);
    resp->set_backend(info.name);
    resp->set_memory_bytes(info.weight_bytes);
    resp->set_applied_epoch(executor_->applied_epoch());
    for (const auto& [l, e] : executor_->Loaded()) {
      v1::ExpertId* id = resp->add_experts();
      id->set_layer(l);
      id->set_expert(e);
    }
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

 private:
  void Finish(ForwardCall& call, const absl::Status& status) {
    metrics_.Count(static_cast<grpc::StatusCode>(status.code()));
    call.Finish(status);
  }

  // The one Forward path for every transport: validate (caller's thread), enqueue (bounded:
  // RESOURCE_EXHAUSTED when full), then on the compute thread check cancellation and the
  // deadline and compute.
  // `may_inline`: the calling thread may compute the call itself when the compute queue is
  // idle (the shm serving threads: their client waits for this answer anyway).
  void Submit(std::shared_ptr<ForwardCall> call, bool may_inline = false) {
    auto decoded = std::make_shared<ForwardRequest>(DecodeForwardRequest(call->request()));
    if (absl::Status s = executor_->Validate(*decoded); !s.ok()) return Finish(*call, s);
    WorkQueue::Job job = [this, call, decoded] {
      if (call->Cancelled()) return Finish(*call, absl::CancelledError("cancelled"));
      if (call->deadline() < std::chrono::system_clock::now()) {
        return Finish(*call, absl::DeadlineExceededError("deadline passed while queued"));
      }
      Compute(*decoded, *call);
    };
    if (may_inline && options_.inline_shm_compute && compute_.TryRunInline(job)) return;
    const bool queued = compute_.TryPush(std::move(job));
    if (!queued) {
      Finish(*call, absl::ResourceExhaustedError(absl::StrCat(
                        "expert queue full (", options_.max_queue, " calls waiting)")));
    }
  }

  absl::Status StartShm(const v1::OpenShmRequest& req) {
    if (req.slot_count() < 1 || req.slot_count() > kMaxShmSlots) {
      return absl::InvalidArgumentError(
          absl::StrCat("slot_count must be in [1, ", kMaxShmSlots, "]"));
    }
    if (req.slot_bytes() < 1 ||
        req.slot_bytes() > static_cast<uint64_t>(options_.max_message_bytes)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "slot_bytes must be in [1, ", options_.max_message_bytes, "] (the message limit)"));
    }
    absl::MutexLock lock(&shm_mu_);
    if (shm_stopped_) return absl::UnavailableError("shutting down");
    // Reap the segments whose client went away.
    for (auto it = shm_segments_.begin(); it != shm_segments_.end();) {
      if ((*it)->done.load()) {
        (*it)->thread.join();
        it = shm_segments_.erase(it);
      } else {
        ++it;
      }
    }
    if (static_cast<int>(shm_segments_.size()) >= options_.max_shm_clients) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "shared-memory clients limit reached (", options_.max_shm_clients, ")"));
    }
    MOE_ASSIGN_OR_RETURN(
        std::unique_ptr<shm::ShmRing> ring,
        shm::ShmRing::Attach(req.name(), req.slot_count(), req.slot_bytes(), req.nonce()));
    auto seg = std::make_shared<ShmSegment>();
    seg->ring = std::move(ring);
    seg->calls = std::make_unique<ShmForwardCall[]>(req.slot_count());
    ShmSegment* raw = seg.get();
    std::weak_ptr<ShmSegment> weak = seg;
    seg->thread = std::thread([this, raw, weak] {
      pthread_setname_np(pthread_self(), "expert-shm");
      ServeShm(raw, weak);
    });
    shm_segments_.push_back(std::move(seg));
    metrics_.shm_segments.Increment();
    MOE_LOG_INFO("serving shared-memory segment {} ({} slots of {} bytes)", req.name(),
                 req.slot_count(), req.slot_bytes());
    return absl::OkStatus();
  }

  // The segment's serving thread: claims posted slots and submits them until the client
  // closes the segment or dies, or StopShm. `self` is alive while the thread runs (the
  // segment list holds it until joined).
  void ServeShm(ShmSegment* seg, std::weak_ptr<ShmSegment> weak) {
    std::shared_ptr<ShmSegment> self = weak.lock();
    shm::ShmRing& ring = *seg->ring;
    std::vector<int> claimed;
    while (!seg->stop.load()) {
      claimed.clear();
      ring.AwaitRequests(kShmIdleCheck, &claimed);
      for (int slot : claimed) {
        ShmForwardCall& call = seg->calls[slot];
        if (!call.TryAcquire()) continue;  // reposted before its answer: ignored
        absl::StatusOr<shm::SlotRequest> r = ring.ReadRequest(slot);
        call.Start(&ring, &seg->in_flight, slot, r.ok() ? r->deadline_unix_ns : 0);
        if (!r.ok()) {
          Finish(call, r.status());
          continue;
        }
        // Parsing straight from the mapping is safe against a peer writing concurrently: the
        // parser bounds-checks every length it reads and copies the bytes out.
        if (!call.mutable_request()->ParseFromArray(r->payload.data(),
                                                    static_cast<int>(r->payload.size()))) {
          Finish(call, absl::InvalidArgumentError("malformed ComputeRequest in the shm slot"));
          continue;
        }
        Submit(std::shared_ptr<ForwardCall>(self, &call), /*may_inline=*/true);
      }
      if (claimed.empty() && ring.ClientGone()) {
        MOE_LOG_INFO("shared-memory client of {} went away", ring.name());
        ring.CloseServer();
        absl::MutexLock lock(&shm_mu_);
        // No call can start any more (this thread starts them): unmap unless some are queued
        // (then the mapping goes when the segment is reaped).
        if (seg->in_flight.load(std::memory_order_acquire) == 0) seg->ring.reset();
        break;
      }
    }
    metrics_.shm_segments.Decrement();
    seg->done.store(true);
  }

  // Compute thread only.
  void Compute(const ForwardRequest& req, ForwardCall& call) {
    const auto start = std::chrono::steady_clock::now();
    absl::StatusOr<ForwardResult> r = executor_->Forward(req);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (!r.ok()) return Finish(call, r.status());
    metrics_.compute_seconds.Observe(seconds);
    metrics_.batch_tokens.Observe(static_cast<double>(r->tokens));
    tokens_computed_.fetch_add(r->tokens, std::memory_order_relaxed);
    const int64_t hidden = executor_->config().hidden;
    const std::string layer = std::to_string(req.layer);
    for (const ShardRequest& s : req.shards) {
      metrics_.tokens.Add({{"layer", layer}, {"expert", std::to_string(s.expert)}})
          .Increment(static_cast<double>(s.hidden.shape[0]));
    }
    EncodeForwardResult(*r, req.combine, req.combined_rows, hidden, call.response());
    Finish(call, absl::OkStatus());
  }

  // Loader thread only.
  void Load(const v1::LoadExpertsRequest& req, v1::LoadExpertsResponse* resp,
            grpc::ServerUnaryReactor* reactor) {
    std::vector<std::pair<int, int>> load, drop;
    for (const v1::ExpertId& id : req.load()) load.push_back({id.layer(), id.expert()});
    for (const v1::ExpertId& id : req.drop()) drop.push_back({id.layer(), id.expert()});
    absl::Status s = absl::OkStatus();
    if (!load.empty()) s = source_->LoadInto(load, req.epoch(), executor_);
    if (s.ok() && !drop.empty()) s = executor_->DropExperts(drop);
    if (s.ok()) {
      resp->set_epoch(executor_->applied_epoch());
      resp->set_loaded(static_cast<int>(executor_->Loaded().size()));
      MOE_LOG_INFO("epoch {}: loaded {}, dropped {}, now {} experts", req.epoch(), load.size(),
                   drop.size(), resp->loaded());
    }
    reactor->Finish(ToGrpcStatus(s));
  }

  const ExpertServerOptions options_;
  ShardExecutor* const executor_;
  const ModelExpertSource* const source_;
  std::atomic<int> port_{0};
  std::atomic<int64_t> tokens_computed_{0};
  Metrics& metrics_;
  WorkQueue compute_;
  WorkQueue loader_;
  absl::Mutex shm_mu_;
  std::vector<std::shared_ptr<ShmSegment>> shm_segments_ ABSL_GUARDED_BY(shm_mu_);
  bool shm_stopped_ ABSL_GUARDED_BY(shm_mu_) = false;
};

}  // namespace

struct ExpertServer::Impl {
  std::unique_ptr<ServiceImpl> service;
  std::unique_ptr<grpc::Server> server;
  int port = 0;
  bool shut_down = false;
};

ExpertServer::ExpertServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

ExpertServer::~ExpertServer() { Shutdown(); }

absl::StatusOr<std::unique_ptr<ExpertServer>> ExpertServer::Start(
    const ExpertServerOptions& options, ShardExecutor* executor,
    const ModelExpertSource* source) {
  if (options.max_queue < 1) return absl::InvalidArgumentError("max_queue must be >= 1");
  auto impl = std::make_unique<Impl>();
  impl->service = std::make_unique<ServiceImpl>(options, executor, source);
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  builder.AddListeningPort(absl::StrCat(options.host, ":", options.port),
                           grpc::InsecureServerCredentials(), &impl->port);
  builder.SetMaxReceiveMessageSize(options.max_message_bytes);
  builder.SetMaxSendMessageSize(options.max_message_bytes);
  builder.RegisterService(impl->service.get());
  impl->server = builder.BuildAndStart();
  if (impl->server == nullptr || impl->port == 0) {
    impl->service->StopShm();
    impl->service->StopQueues();
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options.host, ":", options.port));
  }
  impl->service->set_port(impl->port);
  auto server = std::unique_ptr<ExpertServer>(new ExpertServer(std::move(impl)));
  server->SetServing(false);
  return server;
}

int ExpertServer::port() const { return impl_->port; }

int64_t ExpertServer::tokens_computed() const { return impl_->service->tokens_computed(); }

void ExpertServer::SetServing(bool serving) {
  grpc::HealthCheckServiceInterface* health = impl_->server->GetHealthCheckService();
  if (health == nullptr) return;
  health->SetServingStatus(serving);
  health->SetServingStatus(kServiceName, serving);
}

void ExpertServer::Shutdown() {
  if (impl_ == nullptr || impl_->shut_down) return;
  impl_->shut_down = true;
  SetServing(false);
  impl_->service->StopShm();
  // Queued calls still complete: the compute thread runs until the server has drained.
  impl_->server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  impl_->service->StopQueues();
  impl_->service->CloseShm();
  impl_->server->Wait();
}

}  // namespace moe::expert
