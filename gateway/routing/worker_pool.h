// The attention workers this gateway sends requests to, with gateway-side admission control.
//
// Every worker has `max_running` Generate calls in flight at most and a bounded queue of
// `max_queue` calls waiting at the gateway behind them. A new call goes to the worker with the
// fewest outstanding tokens (prompt + tokens still to generate, over its running and queued
// calls) that has a free running slot, else to the one with the fewest outstanding tokens whose
// queue has room; when every queue is full, Submit fails with RESOURCE_EXHAUSTED (the HTTP
// layer's 429). A queued call starts when a running call of its worker ends.
//
// Calls use gRPC's callback API (ClientReadReactor): no thread waits on a call; the callbacks
// run on gRPC's threads, each GenerateResponse as it arrives. A handle cancels its call
// (queued: removed; running: TryCancel, which the attention worker sees as the client gone and
// frees the sequence).
//
// Metrics: moe_num_requests_running, moe_num_requests_waiting (gauges, calls),
// moe_request_queue_time_seconds (histogram: admission to dispatch).
#ifndef MOE_GATEWAY_ROUTING_WORKER_POOL_H_
#define MOE_GATEWAY_ROUTING_WORKER_POOL_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "moe/attention/v1/attention.grpc.pb.h"

namespace moe::gateway {

// The gateway's view of one worker, for routing.
struct WorkerLoad {
  int running = 0;
  int queued = 0;
  int64_t outstanding_tokens = 0;
};

struct Placement {
  size_t worker = 0;
  bool queued = false;  // true: waits in the worker's gateway queue
};

// The routing rule (see the file comment). Ties go to the lowest index. nullopt: all full.
std::optional<Placement> PickWorker(absl::Span<const WorkerLoad> loads, int max_running,
                                    int max_queue);

struct WorkerPoolOptions {
  int max_running = 64;  // Generate calls in flight per worker
  int max_queue = 64;    // calls waiting at the gateway per worker
};

// What a caller hears about one call. Each runs on a gRPC thread (or, for on_done of a call
// cancelled in the queue, on the cancelling thread), never two at once for one call, in this
// order: on_start at most once, on_message any number of times, on_done exactly once.
struct GenerateCallbacks {
  std::function<void(absl::Duration queue_time)> on_start;
  std::function<void(attention::v1::GenerateResponse)> on_message;
  std::function<void(absl::Status)> on_done;
};

// A submitted call. Thread-safe; may outlive the pool.
class GenerateHandle {
 public:
  virtual ~GenerateHandle() = default;
  // Cancels the call (idempotent; no effect once done). on_done then reports CANCELLED unless
  // the call had already finished.
  virtual void Cancel() = 0;
};

// Thread-safe. Destruction cancels the calls still queued or running and waits for their
// callbacks.
class WorkerPool {
 public:
  explicit WorkerPool(const std::vector<std::string>& addresses, WorkerPoolOptions options = {});
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  size_t size() const;
  const std::string& address(size_t i) const;
  std::vector<WorkerLoad> Loads() const;
  const WorkerPoolOptions& options() const;

  // Admits and routes one call. `cost_tokens` is what it adds to the worker's outstanding
  // tokens (prompt + max tokens); each streamed token takes one off. The call's deadline is
  // `deadline` (also while queued). RESOURCE_EXHAUSTED when every queue is full, UNAVAILABLE
  // without workers or while shutting down: then no callback runs.
  absl::StatusOr<std::shared_ptr<GenerateHandle>> Submit(attention::v1::GenerateRequest request,
                                                         int64_t cost_tokens, absl::Time deadline,
                                                         GenerateCallbacks callbacks);

  // GetLoad on worker i; `done` runs exactly once on a gRPC thread.
  using LoadDone = std::function<void(absl::StatusOr<attention::v1::GetLoadResponse>)>;
  void GetLoad(size_t i, absl::Duration timeout, LoadDone done);

  struct Core;  // shared with calls and handles (defined in the .cc)

 private:
  std::shared_ptr<Core> core_;
};

}  // namespace moe::gateway

#endif  // MOE_GATEWAY_ROUTING_WORKER_POOL_H_
