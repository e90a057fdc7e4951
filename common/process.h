// Process lifecycle helpers shared by the service binaries.
#ifndef MOE_COMMON_PROCESS_H_
#define MOE_COMMON_PROCESS_H_

namespace moe {

// Catches SIGINT and SIGTERM from construction on (a handler that writes to a self-pipe, so it
// works whichever thread the kernel delivers the signal to) until Wait returns them. One
// instance per process.
class StopSignals {
 public:
  StopSignals();
  ~StopSignals();
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;
  // Blocks until SIGINT or SIGTERM arrives; returns the signal number.
  int Wait();
};

}  // namespace moe

#endif  // MOE_COMMON_PROCESS_H_
