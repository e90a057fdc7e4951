// ExpertTransport: the data plane between an attention worker and the expert services
// (DESIGN.md section 4). One call = one ComputeRequest (every shard of one layer destined to
// one expert-service instance) and its ComputeResponse. Implementations: gRPC
// (grpc_transport.h, any host), in-process (in_process_transport.h, tests); shared memory and
// NCCL may follow behind the same interface.
#ifndef MOE_ATTENTION_SERVICE_DISPATCH_EXPERT_TRANSPORT_H_
#define MOE_ATTENTION_SERVICE_DISPATCH_EXPERT_TRANSPORT_H_

#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "moe/expert/v1/expert.pb.h"

namespace moe::attention {

// One Forward call. The transport reads `instance` and `request` and fills `status` and (when
// status is OK) `response`.
struct ExpertCall {
  std::string instance;  // the expert service's address, e.g. "127.0.0.1:5001"
  moe::expert::v1::ComputeRequest request;
  moe::expert::v1::ComputeResponse response;
  absl::Status status;
};

class ExpertTransport {
 public:
  virtual ~ExpertTransport() = default;
  // Issues every call (in parallel where the transport can) and returns once all of them have
  // finished, each within `timeout` (DEADLINE_EXCEEDED past it). Per-call errors go to
  // ExpertCall::status; the calls' order is kept. Thread-safe: concurrent ForwardAll calls are
  // allowed.
  virtual void ForwardAll(absl::Span<ExpertCall> calls, absl::Duration timeout) = 0;
};

}  // namespace moe::attention

#endif  // MOE_ATTENTION_SERVICE_DISPATCH_EXPERT_TRANSPORT_H_
