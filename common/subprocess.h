// A child process started from argv, whose stdout is read line by line with bounded waits and
// which is always stopped (SIGTERM, then SIGKILL after a grace period) when the object goes
// away. Used by `moe up` to supervise the roles and by the integration tests.
// Thread affinity: one owner thread.
#ifndef MOE_COMMON_SUBPROCESS_H_
#define MOE_COMMON_SUBPROCESS_H_

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

namespace moe {

class Subprocess {
 public:
  // Starts argv[0] with the arguments; stdout is a pipe read by WaitForLine, stderr is
  // inherited. pid() <= 0 if fork failed; a failed exec exits the child with 127. The child
  // gets SIGTERM when the calling thread ends (PR_SET_PDEATHSIG), so call it from a thread that
  // lives as long as the child should (the main thread, or a long-lived loop).
  explicit Subprocess(const std::vector<std::string>& argv);
  ~Subprocess();  // Stop()
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  // SIGTERM, wait up to `grace`, then SIGKILL. Returns the exit code, 128 + signal if it died
  // of a signal, or -1 if it had to be killed or never ran. Idempotent.
  int Stop(std::chrono::milliseconds grace = std::chrono::seconds(10));
  // SIGKILL now and reap (fault tests).
  void Kill();
  // SIGSTOP: the process hangs without dying (fault tests); Stop/Kill still end it.
  void Pause();
  // Non-blocking: true (and the exit code through `code`) once the process has ended.
  bool Exited(int* code = nullptr);
  // Reads stdout until a line starting with `prefix` appears (bounded); returns the rest of the
  // line, or "" on timeout / end of output.
  std::string WaitForLine(const std::string& prefix, std::chrono::milliseconds timeout);

  pid_t pid() const { return pid_; }
  const std::string& name() const { return name_; }

 private:
  static int Decode(int status);
  pid_t pid_ = -1;
  int out_fd_ = -1;
  int exit_code_ = -1;
  std::string name_;
  std::string buffer_;
};

// Port of "host:port" (0 if there is none).
int PortOf(const std::string& host_port);

}  // namespace moe

#endif  // MOE_COMMON_SUBPROCESS_H_
