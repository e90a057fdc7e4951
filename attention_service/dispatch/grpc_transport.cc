#include "attention_service/dispatch/grpc_transport.h"

#include <chrono>
#include <memory>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "common/grpc_status.h"

namespace moe::attention {

moe::expert::v1::ExpertService::Stub* GrpcExpertTransport::StubFor(const std::string& instance) {
  absl::MutexLock lock(&mu_);
  auto& stub = stubs_[instance];
  if (stub == nullptr) {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(options_.max_message_bytes);
    args.SetMaxSendMessageSize(options_.max_message_bytes);
    // Reconnect quickly after a peer restarts; failover is handled by the caller.
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
    stub = moe::expert::v1::ExpertService::NewStub(
        grpc::CreateCustomChannel(instance, grpc::InsecureChannelCredentials(), args));
  }
  return stub.get();
}

void GrpcExpertTransport::ForwardAll(absl::Span<ExpertCall> calls, absl::Duration timeout) {
  if (calls.empty()) return;
  const auto deadline = std::chrono::system_clock::now() + absl::ToChronoNanoseconds(timeout);
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts(calls.size());
  absl::Mutex done_mu;
  size_t pending = calls.size();
  for (size_t i = 0; i < calls.size(); ++i) {
    ExpertCall& call = calls[i];
    contexts[i] = std::make_unique<grpc::ClientContext>();
    contexts[i]->set_deadline(deadline);
    StubFor(call.instance)
        ->async()
        ->Forward(contexts[i].get(), &call.request, &call.response,
                  [&call, &done_mu, &pending](grpc::Status s) {
                    call.status = FromGrpcStatus(s);
                    absl::MutexLock lock(&done_mu);
                    --pending;
                  });
  }
  // Every call ends by its deadline (gRPC guarantees the callback), so this wait is bounded.
  absl::MutexLock lock(&done_mu);
  done_mu.Await(absl::Condition(
      +[](size_t* p) { return *p == 0; }, &pending));
}

}  // namespace moe::attention
