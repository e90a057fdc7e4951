#include "expert_service/grpc/expert_server.h"

#include <atomic>
#include <chrono>
#include <cstring>
#include <utility>

#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "expert_service/grpc/wire.h"
#include "expert_service/grpc/work_queue.h"
#include "moe/expert/v1/expert.grpc.pb.h"

namespace moe::expert {

namespace v1 = ::moe::expert::v1;

namespace {

constexpr char kServiceName[] = "moe.expert.v1.ExpertService";

// Prometheus families, registered once per process.
struct Metrics {
  prometheus::Family<prometheus::Counter>& tokens;
  prometheus::Family<prometheus::Counter>& requests;
  prometheus::Histogram& batch_tokens;
  prometheus::Histogram& compute_seconds;
  prometheus::Gauge& queue_depth;

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

  void StopQueues() {
    compute_.Stop();
    loader_.Stop();
  }

  grpc::ServerUnaryReactor* Forward(grpc::CallbackServerContext* ctx,
                                    const v1::ComputeRequest* req,
                                    v1::ComputeResponse* resp) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    auto decoded = std::make_shared<ForwardRequest>(DecodeForwardRequest(*req));
    if (absl::Status s = executor_->Validate(*decoded); !s.ok()) {
      Finish(reactor, ToGrpcStatus(s));
      return reactor;
    }
    const bool queued = compute_.TryPush([this, ctx, reactor, resp, decoded] {
      if (ctx->IsCancelled()) return Finish(reactor, grpc::Status::CANCELLED);
      if (ctx->deadline() < std::chrono::system_clock::now()) {
        return Finish(reactor, grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                                            "deadline passed while queued"));
      }
      Compute(*decoded, resp, reactor);
    });
    if (!queued) {
      Finish(reactor, grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                                   absl::StrCat("expert queue full (", options_.max_queue,
                                                " calls waiting)")));
    }
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
  void Finish(grpc::ServerUnaryReactor* reactor, const grpc::Status& status) {
    metrics_.Count(status.error_code());
    reactor->Finish(status);
  }

  // Compute thread only.
  void Compute(const ForwardRequest& req, v1::ComputeResponse* resp,
               grpc::ServerUnaryReactor* reactor) {
    const auto start = std::chrono::steady_clock::now();
    absl::StatusOr<ForwardResult> r = executor_->Forward(req);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (!r.ok()) return Finish(reactor, ToGrpcStatus(r.status()));
    metrics_.compute_seconds.Observe(seconds);
    metrics_.batch_tokens.Observe(static_cast<double>(r->tokens));
    const int64_t hidden = executor_->config().hidden;
    const std::string layer = std::to_string(req.layer);
    for (const ShardRequest& s : req.shards) {
      metrics_.tokens.Add({{"layer", layer}, {"expert", std::to_string(s.expert)}})
          .Increment(static_cast<double>(s.hidden.shape[0]));
    }
    EncodeForwardResult(*r, req.combine, req.combined_rows, hidden, resp);
    Finish(reactor, grpc::Status::OK);
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
  Metrics& metrics_;
  WorkQueue compute_;
  WorkQueue loader_;
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
  // Queued calls still complete: the compute thread runs until the server has drained.
  impl_->server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  impl_->service->StopQueues();
  impl_->server->Wait();
}

}  // namespace moe::expert
