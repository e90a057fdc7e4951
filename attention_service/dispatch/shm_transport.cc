#include "attention_service/dispatch/shm_transport.h"

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "common/shm_ring.h"
#include "moe/expert/v1/expert.grpc.pb.h"

namespace moe::attention {

namespace v1 = ::moe::expert::v1;

namespace {

// moe_shm_transport_calls_total{path="shm"|"grpc"}: how the calls of every ShmExpertTransport
// in the process travelled (gRPC: fallback instances, oversized or excess calls).
struct TransportMetrics {
  prometheus::Counter& shm;
  prometheus::Counter& grpc;
  static TransportMetrics& Get() {
    static TransportMetrics* m = [] {
      auto& family = prometheus::BuildCounter()
                         .Name("moe_shm_transport_calls_total")
                         .Help("Expert calls of the shm transport by the path they took")
                         .Register(MetricsRegistry());
      return new TransportMetrics{family.Add({{"path", "shm"}}), family.Add({{"path", "grpc"}})};
    }();
    return *m;
  }
};

}  // namespace

struct ShmExpertTransport::Instance {
  std::string address;
  absl::Mutex mu;  // held while negotiating: one OpenShm per instance at a time
  std::unique_ptr<v1::ExpertService::Stub> stub ABSL_GUARDED_BY(mu);
  std::shared_ptr<shm::ShmRing> ring ABSL_GUARDED_BY(mu);
  bool fallback ABSL_GUARDED_BY(mu) = false;  // for good: gRPC only
  absl::Time retry_after ABSL_GUARDED_BY(mu) = absl::InfinitePast();
};

ShmExpertTransport::ShmExpertTransport(ShmTransportOptions options)
    : options_(options), grpc_(options.grpc) {
  TransportMetrics::Get();  // register the family up front
}

ShmExpertTransport::~ShmExpertTransport() = default;

int64_t ShmExpertTransport::shm_calls() const { return shm_calls_.load(); }
int64_t ShmExpertTransport::grpc_calls() const { return grpc_calls_.load(); }

ShmExpertTransport::Instance* ShmExpertTransport::InstanceFor(const std::string& address) {
  absl::MutexLock lock(&mu_);
  std::unique_ptr<Instance>& in = instances_[address];
  if (in == nullptr) {
    in = std::make_unique<Instance>();
    in->address = address;
  }
  return in.get();
}

std::shared_ptr<shm::ShmRing> ShmExpertTransport::RingFor(const std::string& address,
                                                          absl::Time deadline) {
  Instance* in = InstanceFor(address);
  absl::MutexLock lock(&in->mu);
  if (in->ring != nullptr) {
    if (in->ring->ServerAlive()) return in->ring;
    MOE_LOG_WARN("expert service {}: shared-memory server gone; renegotiating", address);
    in->ring.reset();  // calls still waiting on it hold their own reference
    in->retry_after = absl::Now() + options_.renegotiate_after;
  }
  if (in->fallback || absl::Now() < in->retry_after) return nullptr;

  auto give_up = [&](const absl::Status& s) -> std::shared_ptr<shm::ShmRing> {
    in->fallback = true;
    MOE_LOG_WARN("expert service {}: shared memory unavailable ({}); using gRPC", address,
                 s.ToString());
    return nullptr;
  };
  absl::StatusOr<std::unique_ptr<shm::ShmRing>> ring =
      shm::ShmRing::Create(options_.slots, options_.slot_bytes);
  if (!ring.ok()) return give_up(ring.status());
  if (in->stub == nullptr) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
    in->stub = v1::ExpertService::NewStub(
        grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args));
  }
  v1::OpenShmRequest req;
  req.set_name((*ring)->name());
  req.set_slot_count((*ring)->slots());
  req.set_slot_bytes((*ring)->slot_bytes());
  req.set_nonce((*ring)->nonce());
  v1::OpenShmResponse resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(
      absl::ToChronoTime(std::min(deadline, absl::Now() + options_.negotiate_timeout)));
  const absl::Status s = FromGrpcStatus(in->stub->OpenShm(&ctx, req, &resp));
  if (s.code() == absl::StatusCode::kUnavailable ||
      s.code() == absl::StatusCode::kDeadlineExceeded) {
    in->retry_after = absl::Now() + options_.renegotiate_after;  // unreachable for now
    return nullptr;
  }
  if (!s.ok()) return give_up(s);
  // The service must be a process this one can watch (same pid namespace), else a dead
  // service could only be noticed by timeouts.
  if (resp.server_pid() != (*ring)->server_pid() || !(*ring)->ServerAlive()) {
    return give_up(absl::FailedPreconditionError(
        absl::StrCat("service process ", resp.server_pid(), " not visible from here")));
  }
  (*ring)->Unlink();
  in->ring = std::shared_ptr<shm::ShmRing>(std::move(*ring));
  MOE_LOG_INFO("expert service {}: shared-memory data plane {} ({} slots of {} bytes)", address,
               in->ring->name(), in->ring->slots(), in->ring->slot_bytes());
  return in->ring;
}

bool ShmExpertTransport::UsesShm(const std::string& instance) {
  return RingFor(instance, absl::Now() + options_.negotiate_timeout) != nullptr;
}

void ShmExpertTransport::ForwardGrpc(absl::Span<ExpertCall> calls,
                                     const std::vector<size_t>& indices, absl::Time deadline) {
  if (indices.empty()) return;
  grpc_calls_.fetch_add(static_cast<int64_t>(indices.size()));
  TransportMetrics::Get().grpc.Increment(static_cast<double>(indices.size()));
  const absl::Duration left = deadline - absl::Now();
  if (left <= absl::ZeroDuration()) {
    for (size_t i : indices) calls[i].status = absl::DeadlineExceededError("dispatch deadline");
    return;
  }
  std::vector<ExpertCall> batch(indices.size());
  for (size_t k = 0; k < indices.size(); ++k) batch[k] = std::move(calls[indices[k]]);
  grpc_.ForwardAll(absl::MakeSpan(batch), left);
  for (size_t k = 0; k < indices.size(); ++k) calls[indices[k]] = std::move(batch[k]);
}

void ShmExpertTransport::ForwardAll(absl::Span<ExpertCall> calls, absl::Duration timeout) {
  if (calls.empty()) return;
  const absl::Time deadline = absl::Now() + timeout;
  struct Posted {
    size_t index;
    std::shared_ptr<shm::ShmRing> ring;
    int slot;
  };
  std::vector<Posted> posted;
  std::vector<size_t> over_grpc;
  // 1. Post every call that fits into a slot of its instance's ring.
  for (size_t i = 0; i < calls.size(); ++i) {
    ExpertCall& call = calls[i];
    std::shared_ptr<shm::ShmRing> ring = RingFor(call.instance, deadline);
    const size_t size = ring != nullptr ? call.request.ByteSizeLong() : 0;
    const int slot = ring != nullptr && size <= ring->slot_bytes() ? ring->TryClaim() : -1;
    if (slot < 0) {
      over_grpc.push_back(i);
      continue;
    }
    call.request.SerializeWithCachedSizesToArray(reinterpret_cast<uint8_t*>(ring->payload(slot)));
    ring->Post(slot, size, deadline);
    posted.push_back({i, std::move(ring), slot});
  }
  // 2. The rest over gRPC, while the services compute the posted ones.
  ForwardGrpc(calls, over_grpc, deadline);
  // 3. Collect the posted ones (each wait bounded by the deadline and the service's liveness).
  std::vector<size_t> retry;
  for (Posted& p : posted) {
    ExpertCall& call = calls[p.index];
    shm::ShmRing& ring = *p.ring;
    call.status = ring.AwaitResponse(p.slot, deadline);
    if (!call.status.ok()) continue;  // the slot was handed back
    absl::StatusOr<shm::SlotResponse> r = ring.ReadResponse(p.slot);
    if (!r.ok()) {
      call.status = r.status();
    } else if (r->code == absl::StatusCode::kOk) {
      if (!call.response.ParseFromArray(r->payload.data(), static_cast<int>(r->payload.size()))) {
        call.status = absl::InternalError("malformed ComputeResponse in the shm slot");
      }
    } else if ((r->flags & shm::kFlagResponseTooLarge) != 0) {
      retry.push_back(p.index);
    } else {
      call.status = absl::Status(r->code, absl::string_view(r->payload.data(), r->payload.size()));
    }
    ring.Release(p.slot);
  }
  shm_calls_.fetch_add(static_cast<int64_t>(posted.size() - retry.size()));
  TransportMetrics::Get().shm.Increment(static_cast<double>(posted.size() - retry.size()));
  // 4. Responses too large for a slot: once more over gRPC.
  ForwardGrpc(calls, retry, deadline);
}

}  // namespace moe::attention
