// ShmExpertTransport: ExpertTransport over shared memory for expert services on the same host
// (DESIGN.md section 4), with gRPC as the fallback.
//
// Per instance address, on first use: create a segment (common/shm_ring.h: `slots` slots of
// `slot_bytes`), ask the service to serve it (ExpertService.OpenShm over gRPC), then unlink its
// name (nothing is left in /dev/shm if either process dies). If negotiation fails for good (the
// service is on another host, refuses, is too old, /dev/shm is full, ...) the instance is
// logged once and served by the inner GrpcExpertTransport from then on; if it fails because
// the service is unreachable, or a negotiated service dies, negotiation is retried after
// `renegotiate_after`.
//
// A call travels as its serialized ComputeRequest written straight into a claimed slot, and
// its answer as a serialized ComputeResponse (or status code + message) in the same slot. Per
// call, gRPC is used instead when: the request does not fit a slot, every slot of the ring is
// busy (more than `slots` calls in flight to one instance), or the response did not fit (the
// service answers RESOURCE_EXHAUSTED + kFlagResponseTooLarge; the call is re-sent over gRPC,
// so its compute runs twice). Size slots for the largest layer request: with combine the
// response is never larger than the F32 request, so slot_bytes >= request bytes suffices.
// Memory: slots * slot_bytes per (attention worker, expert instance), reserved up front.
//
// Thread-safe: ForwardAll may run concurrently from several threads (slots are claimed
// atomically; each ForwardAll only waits for its own slots).
#ifndef MOE_ATTENTION_SERVICE_DISPATCH_SHM_TRANSPORT_H_
#define MOE_ATTENTION_SERVICE_DISPATCH_SHM_TRANSPORT_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "attention_service/dispatch/expert_transport.h"
#include "attention_service/dispatch/grpc_transport.h"

namespace moe::shm {
class ShmRing;
}

namespace moe::attention {

struct ShmTransportOptions {
  uint32_t slots = 8;              // per instance: calls in flight over shm at once
  uint64_t slot_bytes = 8u << 20;  // per slot, request and response (<= the service's limit)
  absl::Duration negotiate_timeout = absl::Seconds(2);  // OpenShm deadline
  absl::Duration renegotiate_after = absl::Seconds(1);  // after an unreachable / dead service
  GrpcTransportOptions grpc;                            // the fallback transport
};

class ShmExpertTransport final : public ExpertTransport {
 public:
  explicit ShmExpertTransport(ShmTransportOptions options = {});
  ~ShmExpertTransport() override;  // closes and unlinks every segment

  void ForwardAll(absl::Span<ExpertCall> calls, absl::Duration timeout) override;

  // Whether calls to `instance` go over shared memory now (negotiating first if due).
  bool UsesShm(const std::string& instance);

  // Calls answered over shared memory / sent over gRPC (fallback), since construction.
  int64_t shm_calls() const;
  int64_t grpc_calls() const;

 private:
  struct Instance;
  Instance* InstanceFor(const std::string& address);
  // The instance's live ring, negotiating if due; null: use gRPC.
  std::shared_ptr<shm::ShmRing> RingFor(const std::string& address, absl::Time deadline);
  // Runs calls[i] for i in `indices` over gRPC, all bounded by `deadline`.
  void ForwardGrpc(absl::Span<ExpertCall> calls, const std::vector<size_t>& indices,
                   absl::Time deadline);

  const ShmTransportOptions options_;
  GrpcExpertTransport grpc_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::unique_ptr<Instance>> instances_ ABSL_GUARDED_BY(mu_);
  std::atomic<int64_t> shm_calls_{0};
  std::atomic<int64_t> grpc_calls_{0};
};

}  // namespace moe::attention

#endif  // MOE_ATTENTION_SERVICE_DISPATCH_SHM_TRANSPORT_H_
