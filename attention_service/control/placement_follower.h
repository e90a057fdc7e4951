// PlacementFollower: the attention worker's link to `moe scheduler` (issue 4, items 5 and 6).
// Registers as ROLE_ATTENTION, installs every COMMITTED placement plan into a PlacementHolder
// (the RemoteExpertExecutor routes with it from its next layer dispatch; PENDING plans are
// ignored: they only ask expert services to load), reports the routed epoch and readiness in
// heartbeats, and every `report_interval` sends ReportLoad with the RoutingLoadRecorder's
// token and co-activation counts since the previous report.
//
// Thread-safety: Start/Stop from one thread (the owner's); the plan handler runs on the
// scheduler client's watch thread.
#ifndef MOE_ATTENTION_SERVICE_CONTROL_PLACEMENT_FOLLOWER_H_
#define MOE_ATTENTION_SERVICE_CONTROL_PLACEMENT_FOLLOWER_H_

#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "attention_service/dispatch/placement.h"
#include "attention_service/dispatch/routing_load.h"
#include "model/config.h"
#include "moe/scheduler/v1/scheduler.pb.h"
#include "scheduler/client/scheduler_client.h"

namespace moe::attention {

struct PlacementFollowerOptions {
  std::string scheduler;  // host:port
  std::string address;    // this worker's gRPC address, registered with the scheduler
  std::string name;
  absl::Duration startup_timeout = absl::Seconds(60);
  // Register in the background (the worker already has a placement, e.g. --expert-addrs).
  bool register_in_background = false;
  absl::Duration report_interval = absl::Seconds(1);  // ReportLoad period; 0 = never
};

class PlacementFollower {
 public:
  // `holder` and `load` (may be null: no load reports) must outlive the follower.
  static absl::StatusOr<std::unique_ptr<PlacementFollower>> Start(
      const PlacementFollowerOptions& options, const model::ModelConfig& config,
      PlacementHolder* holder, RoutingLoadRecorder* load);
  ~PlacementFollower();  // Stop()

  // Installs a COMMITTED plan (checked against `config`) into `holder`, replacing whatever it
  // holds (also an older epoch: the scheduler restarted). OK and no change for a PENDING plan;
  // INVALID_ARGUMENT for a plan that does not fit the model (the holder keeps its snapshot).
  static absl::Status Install(const ::moe::scheduler::v1::PlacementPlan& plan,
                              const model::ModelConfig& config, PlacementHolder* holder);
  // The ReportLoad request for `load` (drained by Take), or nullopt when nothing was routed.
  static std::optional<::moe::scheduler::v1::ReportLoadRequest> TakeLoadReport(
      RoutingLoadRecorder* load);

  scheduler::SchedulerClient* client() { return client_.get(); }
  void Stop();

 private:
  PlacementFollower() = default;
  std::unique_ptr<scheduler::SchedulerClient> client_;
};

}  // namespace moe::attention

#endif  // MOE_ATTENTION_SERVICE_CONTROL_PLACEMENT_FOLLOWER_H_
