// Test helper: run a shell command (popen) and capture its standard output and exit status.
#ifndef MOE_TESTS_TESTING_COMMAND_H_
#define MOE_TESTS_TESTING_COMMAND_H_

#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace moe::test_util {

struct CommandResult {
  int exit_code = -1;  // -1: could not start, or did not exit normally
  std::string output;  // standard output (append " 2>&1" to the command for stderr too)
};

// Runs `command` with /bin/sh and waits for it.
inline CommandResult RunCommand(const std::string& command) {
  CommandResult r;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return r;
  char buffer[65536];
  size_t n;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) r.output.append(buffer, n);
  const int status = pclose(pipe);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

// `moe ARGS` ($MOE_BIN, set by moe_cc_test; else `moe` on PATH), stdout and stderr together.
inline CommandResult RunMoe(const std::string& args) {
  const char* bin = std::getenv("MOE_BIN");
  return RunCommand(std::string(bin ? bin : "moe") + " " + args + " 2>&1");
}

}  // namespace moe::test_util

#endif  // MOE_TESTS_TESTING_COMMAND_H_
