// Test helpers for integration tests: the `moe` binary under test and a child process that is
// always stopped (moe::Subprocess: SIGTERM, then SIGKILL after 10 s) when it goes away.
#ifndef MOE_TESTS_TESTING_CHILD_PROCESS_H_
#define MOE_TESTS_TESTING_CHILD_PROCESS_H_

#include <dirent.h>
#include <sys/types.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "common/subprocess.h"

namespace moe::test_util {

using Clock = std::chrono::steady_clock;
using ChildProcess = ::moe::Subprocess;
using ::moe::PortOf;

// The `moe` binary under test ($MOE_BIN, set by moe_cc_test).
inline std::string MoeBin() {
  const char* bin = std::getenv("MOE_BIN");
  return bin ? bin : std::string(MOE_BINARY_DIR) + "/tools/moe";
}

// Pids of the direct children of `pid` (from /proc, every thread's list), in pid order: the
// order they were started in, barring pid wrap-around.
inline std::vector<pid_t> ChildrenOf(pid_t pid) {
  std::vector<pid_t> out;
  const std::string dir = "/proc/" + std::to_string(pid) + "/task";
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return out;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    std::ifstream in(dir + "/" + e->d_name + "/children");
    pid_t c;
    while (in >> c) out.push_back(c);
  }
  closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace moe::test_util

#endif  // MOE_TESTS_TESTING_CHILD_PROCESS_H_
