// GrpcExpertTransport: ExpertTransport over gRPC (callback API). One channel and stub per
// instance address, created on first use and reused; message size limits raised; every call
// carries a deadline; the calls of one ForwardAll run concurrently.
#ifndef MOE_ATTENTION_SERVICE_DISPATCH_GRPC_TRANSPORT_H_
#define MOE_ATTENTION_SERVICE_DISPATCH_GRPC_TRANSPORT_H_

#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "attention_service/dispatch/expert_transport.h"
#include "moe/expert/v1/expert.grpc.pb.h"

namespace moe::attention {

struct GrpcTransportOptions {
  int max_message_bytes = 256 * 1024 * 1024;  // send and receive limits
};

class GrpcExpertTransport final : public ExpertTransport {
 public:
  explicit GrpcExpertTransport(GrpcTransportOptions options = {}) : options_(options) {}
  void ForwardAll(absl::Span<ExpertCall> calls, absl::Duration timeout) override;

 private:
  moe::expert::v1::ExpertService::Stub* StubFor(const std::string& instance);

  const GrpcTransportOptions options_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::unique_ptr<moe::expert::v1::ExpertService::Stub>> stubs_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace moe::attention

#endif  // MOE_ATTENTION_SERVICE_DISPATCH_GRPC_TRANSPORT_H_
