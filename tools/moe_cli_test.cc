// Runs the real `moe` binary (path in $MOE_BIN) and checks usage and exit codes.
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include <gtest/gtest.h>

namespace {

struct Result {
  int exit_code;
  std::string output;
};

Result RunMoe(const std::string& args) {
  const char* bin = std::getenv("MOE_BIN");
  std::string cmd = std::string(bin ? bin : "moe") + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  int status = pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

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
