// Test helpers for integration tests: the `moe` binary under test and a child process that is
// always stopped (moe::Subprocess: SIGTERM, then SIGKILL after 10 s) when it goes away.
#ifndef MOE_TESTS_TESTING_CHILD_PROCESS_H_
#define MOE_TESTS_TESTING_CHILD_PROCESS_H_

#include <chrono>
#include <cstdlib>
#include <string>

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

}  // namespace moe::test_util

#endif  // MOE_TESTS_TESTING_CHILD_PROCESS_H_
