// InProcessExpertTransport: ExpertTransport that calls moe::expert::ShardExecutor objects in
// this process directly (same decode/validate/compute path as the expert service, no
// sockets). For tests and single-process setups.
#ifndef MOE_ATTENTION_SERVICE_DISPATCH_IN_PROCESS_TRANSPORT_H_
#define MOE_ATTENTION_SERVICE_DISPATCH_IN_PROCESS_TRANSPORT_H_

#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "attention_service/dispatch/expert_transport.h"
#include "expert_service/executor/shard_executor.h"

namespace moe::attention {

class InProcessExpertTransport final : public ExpertTransport {
 public:
  // `executor` must outlive the transport. Call before the first ForwardAll.
  void Add(const std::string& instance, expert::ShardExecutor* executor) {
    executors_[instance] = executor;
  }
  // Runs the calls one after another (ShardExecutor::Forward is single-threaded per executor;
  // a mutex serialises concurrent ForwardAll callers). Unknown instance: UNAVAILABLE. The
  // timeout is not enforced (calls are synchronous).
  void ForwardAll(absl::Span<ExpertCall> calls, absl::Duration timeout) override;

 private:
  absl::flat_hash_map<std::string, expert::ShardExecutor*> executors_;
  absl::Mutex mu_;
};

}  // namespace moe::attention

#endif  // MOE_ATTENTION_SERVICE_DISPATCH_IN_PROCESS_TRANSPORT_H_
