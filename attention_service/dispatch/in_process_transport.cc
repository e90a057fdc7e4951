#include "attention_service/dispatch/in_process_transport.h"

#include "absl/strings/str_cat.h"
#include "expert_service/grpc/wire.h"

namespace moe::attention {

void InProcessExpertTransport::ForwardAll(absl::Span<ExpertCall> calls,
                                          absl::Duration /*timeout*/) {
  absl::MutexLock lock(&mu_);
  for (ExpertCall& call : calls) {
    call.response.Clear();
    auto it = executors_.find(call.instance);
    if (it == executors_.end()) {
      call.status = absl::UnavailableError(absl::StrCat("no instance ", call.instance));
      continue;
    }
    expert::ShardExecutor* ex = it->second;
    absl::StatusOr<expert::ForwardResult> r =
        ex->Forward(expert::DecodeForwardRequest(call.request));
    call.status = r.status();
    if (!r.ok()) continue;
    expert::EncodeForwardResult(*r, call.request.combine(), call.request.combined_rows(),
                                ex->config().hidden, &call.response);
  }
}

}  // namespace moe::attention
