// Test helpers for integration tests: a child process started from argv whose stdout is read
// line by line with bounded waits, and which is always stopped (SIGTERM, then SIGKILL after
// 10 s) when the object goes away.
#ifndef MOE_TESTS_TESTING_CHILD_PROCESS_H_
#define MOE_TESTS_TESTING_CHILD_PROCESS_H_

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

namespace moe::test_util {

using Clock = std::chrono::steady_clock;

// The `moe` binary under test ($MOE_BIN, set by moe_cc_test).
inline std::string MoeBin() {
  const char* bin = std::getenv("MOE_BIN");
  return bin ? bin : std::string(MOE_BINARY_DIR) + "/tools/moe";
}

// A child process; the destructor sends SIGTERM, waits up to 10 s, then SIGKILLs.
class ChildProcess {
 public:
  explicit ChildProcess(const std::vector<std::string>& args) {
    int fds[2];
    if (pipe(fds) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      dup2(fds[1], STDOUT_FILENO);
      close(fds[0]);
      close(fds[1]);
      std::vector<char*> argv;
      for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    close(fds[1]);
    out_fd_ = fds[0];
  }
  ~ChildProcess() {
    Stop();
    if (out_fd_ >= 0) close(out_fd_);
  }
  // Returns the exit status (or -1 if it had to be killed).
  int Stop() {
    if (pid_ <= 0) return exit_status_;
    kill(pid_, SIGTERM);
    const auto deadline = Clock::now() + std::chrono::seconds(10);
    int status = 0;
    while (Clock::now() < deadline) {
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        exit_status_ = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        return exit_status_;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    kill(pid_, SIGKILL);
    waitpid(pid_, &status, 0);
    pid_ = -1;
    exit_status_ = -1;
    return exit_status_;
  }
  // SIGKILL now (fault tests); reaps the process.
  void Kill() {
    if (pid_ <= 0) return;
    kill(pid_, SIGKILL);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
  }
  pid_t pid() const { return pid_; }
  // Reads stdout until a line starting with `prefix` appears (bounded); returns the rest.
  std::string WaitForLine(const std::string& prefix, std::chrono::seconds timeout) {
    const auto deadline = Clock::now() + timeout;
    for (;;) {
      size_t nl;
      while ((nl = buffer_.find('\n')) != std::string::npos) {
        std::string line = buffer_.substr(0, nl);
        buffer_.erase(0, nl + 1);
        if (line.rfind(prefix, 0) == 0) return line.substr(prefix.size());
      }
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0 || out_fd_ < 0) return "";
      pollfd p{out_fd_, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(left)) <= 0) return "";
      char buf[4096];
      const ssize_t n = read(out_fd_, buf, sizeof buf);
      if (n <= 0) return "";
      buffer_.append(buf, static_cast<size_t>(n));
    }
  }

 private:
  pid_t pid_ = -1;
  int out_fd_ = -1;
  int exit_status_ = -1;
  std::string buffer_;
};

// Port of "host:port".
inline int PortOf(const std::string& host_port) {
  const size_t colon = host_port.rfind(':');
  return colon == std::string::npos ? 0 : std::atoi(host_port.c_str() + colon + 1);
}

}  // namespace moe::test_util

#endif  // MOE_TESTS_TESTING_CHILD_PROCESS_H_
