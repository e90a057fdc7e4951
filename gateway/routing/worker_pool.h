// The attention workers this gateway sends requests to, with a gateway-side count of in-flight
// Generate calls per worker. Calls use gRPC's callback API (ClientReadReactor): no thread waits
// on a call; completion callbacks run on gRPC's own threads.
#ifndef MOE_GATEWAY_ROUTING_WORKER_POOL_H_
#define MOE_GATEWAY_ROUTING_WORKER_POOL_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "moe/attention/v1/attention.grpc.pb.h"

namespace moe::gateway {

// Index of the smallest value (ties: the lowest index). `in_flight` must be non-empty.
size_t PickLeastLoaded(absl::Span<const int> in_flight);

// The whole stream of one Generate call.
struct GenerateStream {
  std::vector<attention::v1::GenerateResponse> messages;
};

// Thread-safe. Destruction cancels the calls still running and waits for their callbacks.
class WorkerPool {
 public:
  using GenerateDone = std::function<void(absl::StatusOr<GenerateStream>)>;
  using LoadDone = std::function<void(absl::StatusOr<attention::v1::GetLoadResponse>)>;

  explicit WorkerPool(const std::vector<std::string>& addresses);
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  size_t size() const { return workers_.size(); }
  const std::string& address(size_t i) const { return workers_[i]->address; }
  std::vector<int> InFlight() const;

  // Starts Generate on the least-loaded worker; `done` runs exactly once, on a gRPC thread,
  // with the streamed messages or the call's status (gRPC codes mapped to absl codes).
  void Generate(attention::v1::GenerateRequest request, absl::Duration timeout, GenerateDone done);
  // GetLoad on worker i; `done` runs exactly once on a gRPC thread.
  void GetLoad(size_t i, absl::Duration timeout, LoadDone done);

 private:
  class GenerateCall;
  struct Worker {
    std::string address;
    std::unique_ptr<attention::v1::AttentionService::Stub> stub;
    std::atomic<int> in_flight{0};
  };
  void CallStarted();
  void CallEnded();

  std::vector<std::unique_ptr<Worker>> workers_;
  mutable absl::Mutex mu_;
  int live_calls_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<grpc::ClientContext*> live_contexts_ ABSL_GUARDED_BY(mu_);
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace moe::gateway

#endif  // MOE_GATEWAY_ROUTING_WORKER_POOL_H_
