// Process lifecycle helpers shared by the service binaries.
#ifndef MOE_COMMON_PROCESS_H_
#define MOE_COMMON_PROCESS_H_

#include <csignal>

namespace moe {

// Blocks SIGINT and SIGTERM in the calling thread and every thread it starts afterwards, so
// only WaitForStopSignal sees them. Call first thing in main, before any thread starts.
class StopSignals {
 public:
  StopSignals();
  // Blocks until SIGINT or SIGTERM arrives; returns the signal number.
  int Wait();

 private:
  sigset_t set_;
};

}  // namespace moe

#endif  // MOE_COMMON_PROCESS_H_
