#include "common/subprocess.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <string>
#include <thread>

#include <gtest/gtest.h>

namespace moe {
namespace {

// True while `pid` runs (a zombie or a missing /proc entry counts as ended).
bool Running(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return false;
  const size_t close = line.rfind(')');
  return close != std::string::npos && close + 2 < line.size() && line[close + 2] != 'Z';
}

TEST(SubprocessTest, ReadsLinesAndStops) {
  Subprocess p({"/bin/sh", "-c", "echo ready 42; exec sleep 30"});
  ASSERT_GT(p.pid(), 0);
  EXPECT_EQ(p.WaitForLine("ready ", std::chrono::seconds(10)), "42");
  EXPECT_FALSE(p.Exited());
  EXPECT_EQ(p.Stop(std::chrono::seconds(5)), 128 + SIGTERM);
  EXPECT_TRUE(p.Exited());
}

// A parent killed with SIGKILL (no destructor runs) still takes its child down.
TEST(SubprocessTest, ChildEndsWhenItsParentIsKilled) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  const pid_t parent = fork();
  ASSERT_GE(parent, 0);
  if (parent == 0) {
    close(fds[0]);
    Subprocess child({"/bin/sleep", "30"});
    const pid_t pid = child.pid();
    if (write(fds[1], &pid, sizeof pid) != sizeof pid) _exit(1);
    pause();
    _exit(0);
  }
  close(fds[1]);
  pid_t grandchild = -1;
  ASSERT_EQ(read(fds[0], &grandchild, sizeof grandchild), static_cast<ssize_t>(sizeof grandchild));
  close(fds[0]);
  ASSERT_GT(grandchild, 0);
  EXPECT_TRUE(Running(grandchild));
  kill(parent, SIGKILL);
  int status = 0;
  ASSERT_EQ(waitpid(parent, &status, 0), parent);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (Running(grandchild) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const bool still = Running(grandchild);
  if (still) kill(grandchild, SIGKILL);  // never leave it behind
  EXPECT_FALSE(still) << "the child outlived its killed parent";
}

}  // namespace
}  // namespace moe
