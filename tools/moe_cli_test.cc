// Runs the real `moe` binary (path in $MOE_BIN) and checks usage and exit codes.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "tests/testing/command.h"

namespace {

using Result = ::moe::test_util::CommandResult;
using ::moe::test_util::RunMoe;

TEST(MoeCli, HelpListsCommands) {
  Result r = RunMoe("--help");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.output.find("usage: moe <command>"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("version"), std::string::npos);
}

TEST(MoeCli, UnknownCommandIsUsageError) {
  Result r = RunMoe("frobnicate");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("unknown command 'frobnicate'"), std::string::npos) << r.output;
}

TEST(MoeCli, NoCommandIsUsageError) { EXPECT_EQ(RunMoe("").exit_code, 2); }

}  // namespace
