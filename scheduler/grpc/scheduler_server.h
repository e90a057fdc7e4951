// SchedulerServer: moe.scheduler.v1.SchedulerService over gRPC (callback API) in front of a
// SchedulerCore. Handlers convert wire types, call the core (mutex-guarded bookkeeping only; no
// placement is computed on a gRPC thread) and map errors with ToGrpcStatus. WatchPlan streams
// go through a PlanBroadcaster that the core's plan listener feeds (PublishPlan).
#ifndef MOE_SCHEDULER_GRPC_SCHEDULER_SERVER_H_
#define MOE_SCHEDULER_GRPC_SCHEDULER_SERVER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/clock.h"
#include "scheduler/core/scheduler_core.h"

namespace moe::scheduler {

struct SchedulerServerOptions {
  std::string host = "127.0.0.1";
  int port = 0;  // 0: pick a free port; see port()
  int max_message_bytes = 64 << 20;
};

class SchedulerServer {
 public:
  // `core` and `clock` must outlive the server.
  static absl::StatusOr<std::unique_ptr<SchedulerServer>> Start(
      const SchedulerServerOptions& options, SchedulerCore* core, const Clock* clock);
  ~SchedulerServer();  // Shutdown()

  int port() const;
  // Sends `plan` to every open WatchPlan stream (and to later ones as their first message).
  // Thread-safe; call it from the core's plan listener.
  void PublishPlan(const PublishedPlan& plan);
  // Ends every WatchPlan stream with OK, stops accepting calls, drains. Idempotent.
  void Shutdown();

 private:
  struct Impl;
  explicit SchedulerServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace moe::scheduler

#endif  // MOE_SCHEDULER_GRPC_SCHEDULER_SERVER_H_
