#include "common/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <thread>

namespace moe {

using Clock = std::chrono::steady_clock;

Subprocess::Subprocess(const std::vector<std::string>& argv) {
  if (argv.empty()) return;
  name_ = argv.size() > 1 ? argv[0] + " " + argv[1] : argv[0];
  int fds[2];
  if (pipe(fds) != 0) return;
  const pid_t parent = getpid();
  pid_ = fork();
  if (pid_ == 0) {
    // The child gets SIGTERM (and drains like any stop) when the thread that started it ends,
    // including a SIGKILL of the whole parent: a killed `moe up` or scheduler leaves no role
    // or elastic expert service running. If the parent died before this line, exit now.
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(127);
    // A clean signal mask: the mask survives fork and exec, and a parent that blocks SIGTERM
    // for sigwait (moe scheduler) would otherwise start children that cannot be stopped.
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    dup2(fds[1], STDOUT_FILENO);
    close(fds[0]);
    close(fds[1]);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  close(fds[1]);
  if (pid_ < 0) {
    close(fds[0]);
    return;
  }
  out_fd_ = fds[0];
  fcntl(out_fd_, F_SETFD, FD_CLOEXEC);
}

Subprocess::~Subprocess() {
  Stop();
  if (out_fd_ >= 0) close(out_fd_);
}

int Subprocess::Decode(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

bool Subprocess::Exited(int* code) {
  if (pid_ > 0) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) != pid_) return false;
    pid_ = -1;
    exit_code_ = Decode(status);
  }
  if (code != nullptr) *code = exit_code_;
  return true;
}

int Subprocess::Stop(std::chrono::milliseconds grace) {
  if (pid_ <= 0) return exit_code_;
  kill(pid_, SIGTERM);
  const auto deadline = Clock::now() + grace;
  while (Clock::now() < deadline) {
    if (Exited()) return exit_code_;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  Kill();
  exit_code_ = -1;
  return exit_code_;
}

void Subprocess::Kill() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  int status = 0;
  waitpid(pid_, &status, 0);
  exit_code_ = Decode(status);
  pid_ = -1;
}

void Subprocess::Pause() {
  if (pid_ > 0) kill(pid_, SIGSTOP);
}

std::string Subprocess::WaitForLine(const std::string& prefix, std::chrono::milliseconds timeout) {
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

int PortOf(const std::string& host_port) {
  const size_t colon = host_port.rfind(':');
  return colon == std::string::npos ? 0 : std::atoi(host_port.c_str() + colon + 1);
}

}  // namespace moe
