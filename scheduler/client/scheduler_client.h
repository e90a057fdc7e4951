// SchedulerClient: an instance's side of the scheduler protocol (proto/moe/scheduler/v1/
// scheduler.proto): Register (retried with backoff until the scheduler answers, bounded by
// `startup_timeout`), a heartbeat thread ("sched-heartbeat": every heartbeat_interval_ms from
// RegisterResponse, reporting the status the owner provides; on NOT_FOUND it registers again,
// under a new id), a plan thread ("sched-watch": WatchPlan, reconnecting with backoff; every
// plan of the stream goes to the callback in stream order; after a reconnect the stream starts
// with the current plan again, which may repeat an epoch already delivered, or even be OLDER
// when the scheduler restarted: consumers treat plans idempotently), and optionally a load
// thread ("sched-load": every `load_interval`, ReportLoad with what the owner's load provider
// returns).
//
// Threads sleep on a condition between events (no polling). Callbacks run on the client's
// threads: the plan callback on sched-watch, and on sched-heartbeat once after a
// re-registration (the newest plan again, with the new id; calls never overlap; keep it short:
// hand long work to another thread),
// the status provider on sched-heartbeat, the load provider on sched-load.
//
// Thread-safety: every public method is thread-safe. Stop() cancels the plan stream and joins
// the threads; it returns within about one RPC deadline (`rpc_timeout`).
#ifndef MOE_SCHEDULER_CLIENT_SCHEDULER_CLIENT_H_
#define MOE_SCHEDULER_CLIENT_SCHEDULER_CLIENT_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "moe/scheduler/v1/scheduler.grpc.pb.h"

namespace grpc {
class Channel;
class ClientContext;
}  // namespace grpc

namespace moe::scheduler {

// What an instance tells the scheduler in each heartbeat.
struct InstanceStatus {
  int64_t applied_epoch = 0;  // the committed epoch it serves / routes with
  bool ready = false;         // expert: the applied epoch's experts are loaded
  int64_t loaded_epoch = 0;   // make-before-break: a pending epoch whose experts are loaded
  double tokens_per_second = 0;
  bool leaving = false;  // expert: shutting down; the scheduler re-places without it
};

struct SchedulerClientOptions {
  std::string scheduler;  // host:port of `moe scheduler`
  ::moe::scheduler::v1::Role role = ::moe::scheduler::v1::ROLE_EXPERT;
  std::string address;     // this instance's gRPC address (host:port), as others reach it
  std::string name;        // logged by the scheduler
  int64_t memory_bytes = 0;
  int expert_slots = 0;
  absl::Duration startup_timeout = absl::Seconds(60);  // Start: give up registering after this
  // Start returns at once and the heartbeat thread registers (retrying with backoff until it
  // succeeds or Stop; startup_timeout then only bounds a warning). The plan stream opens once
  // registered. For instances that serve without a scheduler meanwhile.
  bool register_in_background = false;
  absl::Duration rpc_timeout = absl::Seconds(2);       // per unary RPC
  absl::Duration initial_backoff = absl::Milliseconds(50);
  absl::Duration max_backoff = absl::Seconds(1);
  // 0: no load thread. Otherwise ReportLoad every `load_interval` with `load_provider`'s
  // request (instance_id is filled in; std::nullopt: nothing to report this time).
  absl::Duration load_interval = absl::ZeroDuration();
};

class SchedulerClient {
 public:
  // `instance_id`: this instance's id when the plan arrived (the plan's replicas name ids).
  using PlanCallback = std::function<void(const ::moe::scheduler::v1::PlacementPlan& plan,
                                          const std::string& instance_id)>;
  using StatusProvider = std::function<InstanceStatus()>;
  using LoadProvider = std::function<std::optional<::moe::scheduler::v1::ReportLoadRequest>()>;

  // Registers (blocking; DEADLINE_EXCEEDED after startup_timeout; INVALID_ARGUMENT when the
  // scheduler refuses the request; unless register_in_background) and starts the threads. `on_plan` may be null (no watch
  // thread); `status` may be null (heartbeats report zeros); `load` is used when
  // options.load_interval > 0.
  static absl::StatusOr<std::unique_ptr<SchedulerClient>> Start(SchedulerClientOptions options,
                                                                PlanCallback on_plan,
                                                                StatusProvider status,
                                                                LoadProvider load = nullptr);
  ~SchedulerClient();  // Stop()

  // The id of the current registration (changes when the scheduler forgot this instance); ""
  // until registered.
  std::string instance_id() const;
  // Registrations so far (1 after Start; +1 per re-registration).
  int64_t registrations() const;
  // The newest epoch the scheduler mentioned (heartbeat answers and plans).
  int64_t scheduler_epoch() const;
  // Sends one ReportLoad now (instance_id filled in). Bounded by rpc_timeout.
  absl::Status ReportLoad(::moe::scheduler::v1::ReportLoadRequest request);
  // Wakes the heartbeat thread to send a heartbeat now (e.g. after the status changed).
  void HeartbeatNow();

  // Cancels the plan stream, stops and joins the threads. Idempotent; call it from one thread
  // (the owner's).
  void Stop();

 private:
  SchedulerClient(SchedulerClientOptions options, PlanCallback on_plan, StatusProvider status,
                  LoadProvider load);
  // Register with backoff, bounded by startup_timeout (Start's thread).
  absl::Status RegisterBlocking();
  // One Register call; on success records the id and interval.
  absl::Status RegisterOnce();
  void HeartbeatLoop();
  // Registers with backoff until it succeeds (true) or Stop (false). Heartbeat thread.
  bool RegisterInBackground();
  void WatchLoop();
  void LoadLoop();
  // Sleeps until `d` passed or Stop (or, for the heartbeat thread, HeartbeatNow). Returns
  // false once stopped.
  bool SleepFor(absl::Duration d, bool heartbeat = false);
  // Calls on_plan_ with `plan` (remembered) or, when null, with the last plan again; with the
  // current instance id. Serialised: watch and heartbeat threads both deliver.
  void Deliver(const ::moe::scheduler::v1::PlacementPlan* plan);

  const SchedulerClientOptions options_;
  const PlanCallback on_plan_;
  const StatusProvider status_;
  const LoadProvider load_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<::moe::scheduler::v1::SchedulerService::Stub> stub_;

  mutable absl::Mutex mu_;
  std::string instance_id_ ABSL_GUARDED_BY(mu_);
  absl::Duration heartbeat_interval_ ABSL_GUARDED_BY(mu_) = absl::Milliseconds(500);
  int64_t registrations_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t scheduler_epoch_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  bool heartbeat_now_ ABSL_GUARDED_BY(mu_) = false;
  grpc::ClientContext* watch_ctx_ ABSL_GUARDED_BY(mu_) = nullptr;  // the open stream's

  absl::Mutex deliver_mu_;  // held while on_plan_ runs; before mu_
  std::optional<::moe::scheduler::v1::PlacementPlan> last_plan_ ABSL_GUARDED_BY(deliver_mu_);

  std::thread heartbeat_thread_;
  std::thread watch_thread_;
  std::thread load_thread_;
};

}  // namespace moe::scheduler

#endif  // MOE_SCHEDULER_CLIENT_SCHEDULER_CLIENT_H_
