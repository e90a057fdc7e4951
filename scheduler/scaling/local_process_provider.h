// LocalProcessProvider: expert instances as child processes of this one (`moe scheduler
// --elastic --provider local`, which `moe up --elastic` starts). Each instance is
//   <binary> expert --model M --scheduler S --host H --port 0 --admin-port 0
//                   --instance-id <prefix>-<k> <extra args...>
// k counts up over the provider's life (names are never reused, like the scheduler's ids);
// scaling down removes the highest k first: SIGTERM, and SIGKILL if it has not exited after
// `stop_grace`. Stopping happens in the background: every call first reaps what ended, kills
// what overran its grace, and records children that died on their own (TakeExited).
//
// A child's stdout is a pipe nobody reads (`moe expert` prints two lines); stderr is inherited.
// Thread affinity: one owner thread (InstanceProvider).
#ifndef MOE_SCHEDULER_SCALING_LOCAL_PROCESS_PROVIDER_H_
#define MOE_SCHEDULER_SCALING_LOCAL_PROCESS_PROVIDER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "common/subprocess.h"
#include "scheduler/scaling/instance_provider.h"

namespace moe::scheduler {

struct LocalProcessProviderOptions {
  std::string binary;     // the `moe` binary; "" = this process's executable
  std::string model;      // --model of the children
  std::string scheduler;  // host:port the children register with
  std::string host = "127.0.0.1";
  std::string name_prefix = "expert";
  std::vector<std::string> extra_args;  // appended to every child's arguments
  absl::Duration stop_grace = absl::Seconds(10);
};

class LocalProcessProvider final : public InstanceProvider {
 public:
  explicit LocalProcessProvider(LocalProcessProviderOptions options);
  ~LocalProcessProvider() override;  // StopAll(stop_grace)

  absl::StatusOr<int> Current() override;
  // INTERNAL if a child cannot be started (fork failed); the ones started stay.
  absl::Status ScaleTo(int n) override;
  absl::StatusOr<std::string> NextToRemove() override;
  std::vector<InstanceExit> TakeExited() override;
  std::string Describe() const override;

  // Names of the running children (ascending k) and of those still stopping.
  std::vector<std::string> Running();
  int Stopping();
  // SIGTERM to every child at once, then waits up to `grace` for all, then SIGKILL. Blocks.
  void StopAll(absl::Duration grace);

 private:
  struct Child {
    int k = 0;
    std::string name;
    std::unique_ptr<Subprocess> process;
    absl::Time kill_at;  // stopping children: SIGKILL after this
  };
  void Reap();

  const LocalProcessProviderOptions options_;
  std::string binary_;
  int next_k_ = 0;
  std::vector<Child> running_;   // ascending k
  std::vector<Child> stopping_;  // SIGTERM sent
  std::vector<InstanceExit> exited_;
};

}  // namespace moe::scheduler

#endif  // MOE_SCHEDULER_SCALING_LOCAL_PROCESS_PROVIDER_H_
