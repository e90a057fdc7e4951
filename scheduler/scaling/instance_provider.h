// InstanceProvider: what adds and removes expert-service instances for elastic scaling (DESIGN.md
// section 5). LocalProcessProvider starts `moe expert` child processes (moe up);
// KubernetesProvider scales the expert StatefulSet through the API server.
//
// Instances are named; an instance registers with the scheduler under that name
// (RegisterRequest.name = `moe expert --instance-id`, Member.info.name), so the ScaleController
// can drain exactly the instance a scale-down by one will remove (NextToRemove) before it asks
// for the smaller count.
//
// Thread affinity: one owner thread (the ScaleController's "sched-scale").
#ifndef MOE_SCHEDULER_SCALING_INSTANCE_PROVIDER_H_
#define MOE_SCHEDULER_SCALING_INSTANCE_PROVIDER_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace moe::scheduler {

// An instance that ended without being asked to (reported once).
struct InstanceExit {
  std::string name;
  int code = 0;  // exit code, 128 + signal, or -1 unknown
};

class InstanceProvider {
 public:
  virtual ~InstanceProvider() = default;
  // The number of instances asked for and not being removed (running or starting).
  virtual absl::StatusOr<int> Current() = 0;
  // Asks for `n` instances (>= 0). Asynchronous: new instances start (and register when ready),
  // removed ones stop in the background; Current() == n afterwards. Scaling down by k removes
  // the instances NextToRemove would name one after another.
  virtual absl::Status ScaleTo(int n) = 0;
  // The name of the instance a scale-down by one removes; NOT_FOUND when there is none.
  virtual absl::StatusOr<std::string> NextToRemove() = 0;
  // Instances that ended on their own since the last call (they no longer count in Current()).
  virtual std::vector<InstanceExit> TakeExited() { return {}; }
  // For logs: "local", "kubernetes statefulset ns/name".
  virtual std::string Describe() const = 0;
};

}  // namespace moe::scheduler

#endif  // MOE_SCHEDULER_SCALING_INSTANCE_PROVIDER_H_
