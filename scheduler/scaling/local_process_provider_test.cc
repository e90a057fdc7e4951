#include "scheduler/scaling/local_process_provider.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace moe::scheduler {
namespace {

class LocalProcessProviderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("moe-local-provider-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // A stand-in for `moe`: records its pid and arguments under the --instance-id value, then
  // waits; with `ignore_term` it survives SIGTERM.
  std::string Script(bool ignore_term) {
    const std::string path = dir_ / (ignore_term ? "stubborn.sh" : "moe.sh");
    std::ofstream out(path);
    out << "#!/bin/sh\n";
    if (ignore_term) out << "trap '' TERM\n";
    out << "name=''\nprev=''\nfor a in \"$@\"; do\n"
           "  if [ \"$prev\" = --instance-id ]; then name=$a; fi\n  prev=$a\ndone\n"
        << "echo \"$$ $*\" > " << dir_.string() << "/$name.tmp\n"
        << "mv " << dir_.string() << "/$name.tmp " << dir_.string() << "/$name\n"
        << "while :; do sleep 0.05; done\n";
    out.close();
    chmod(path.c_str(), 0755);
    return path;
  }

  // "<pid> <args>" the child named `name` wrote (bounded wait), "" if none.
  std::string Record(const std::string& name) {
    for (int i = 0; i < 250; ++i) {
      std::ifstream in(dir_ / name);
      std::string line;
      if (in && std::getline(in, line) && !line.empty()) return line;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return "";
  }
  pid_t PidOf(const std::string& name) { return std::atoi(Record(name).c_str()); }

  // True once `pid` is gone (reaped: the provider reaps in every call).
  static bool GoneWithin(LocalProcessProvider& p, pid_t pid, std::chrono::milliseconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      (void)p.Current();
      if (kill(pid, 0) != 0) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }

  LocalProcessProviderOptions Options(bool ignore_term = false) {
    LocalProcessProviderOptions o;
    o.binary = Script(ignore_term);
    o.model = "/models/m";
    o.scheduler = "127.0.0.1:5555";
    o.name_prefix = "exp";
    o.extra_args = {"--threads", "1"};
    o.stop_grace = absl::Seconds(5);
    return o;
  }

  std::filesystem::path dir_;
};

TEST_F(LocalProcessProviderTest, StartsNamedChildrenWithTheSchedulerAndModel) {
  LocalProcessProvider p(Options());
  ASSERT_TRUE(p.ScaleTo(2).ok());
  EXPECT_EQ(*p.Current(), 2);
  EXPECT_EQ(p.Running(), (std::vector<std::string>{"exp-0", "exp-1"}));
  EXPECT_EQ(*p.NextToRemove(), "exp-1");
  const std::string rec = Record("exp-0");
  ASSERT_FALSE(rec.empty());
  EXPECT_EQ(rec.substr(rec.find(' ') + 1),
            "expert --model /models/m --scheduler 127.0.0.1:5555 --host 127.0.0.1 --port 0 "
            "--admin-port 0 --instance-id exp-0 --threads 1");
}

TEST_F(LocalProcessProviderTest, ScaleDownStopsTheHighestFirstAndNamesAreNotReused) {
  LocalProcessProvider p(Options());
  ASSERT_TRUE(p.ScaleTo(3).ok());
  const pid_t p0 = PidOf("exp-0"), p1 = PidOf("exp-1"), p2 = PidOf("exp-2");
  ASSERT_GT(p0, 0);
  ASSERT_GT(p1, 0);
  ASSERT_GT(p2, 0);
  ASSERT_TRUE(p.ScaleTo(1).ok());
  EXPECT_EQ(*p.Current(), 1);  // at once, while they stop in the background
  EXPECT_EQ(p.Running(), std::vector<std::string>{"exp-0"});
  EXPECT_TRUE(GoneWithin(p, p2, std::chrono::seconds(5)));
  EXPECT_TRUE(GoneWithin(p, p1, std::chrono::seconds(5)));
  EXPECT_EQ(kill(p0, 0), 0);
  for (int i = 0; i < 250 && p.Stopping() > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(p.Stopping(), 0);           // reaped
  EXPECT_TRUE(p.TakeExited().empty());  // asked to stop: not reported as died
  ASSERT_TRUE(p.ScaleTo(2).ok());
  EXPECT_EQ(p.Running(), (std::vector<std::string>{"exp-0", "exp-3"}));
}

TEST_F(LocalProcessProviderTest, ChildIgnoringSigtermIsKilledAfterTheGrace) {
  LocalProcessProviderOptions o = Options(/*ignore_term=*/true);
  o.stop_grace = absl::Milliseconds(300);
  LocalProcessProvider p(o);
  ASSERT_TRUE(p.ScaleTo(1).ok());
  const pid_t pid = PidOf("exp-0");
  ASSERT_GT(pid, 0);
  ASSERT_TRUE(p.ScaleTo(0).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  EXPECT_EQ(p.Stopping(), 1);
  EXPECT_EQ(kill(pid, 0), 0);  // still there: it ignored SIGTERM
  for (int i = 0; i < 250 && p.Stopping() > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(p.Stopping(), 0);
  EXPECT_TRUE(GoneWithin(p, pid, std::chrono::seconds(2)));
}

// `moe scheduler` blocks SIGTERM in every thread (it sigwaits); its children must not inherit
// that mask, or SIGTERM would never stop them. The stand-in (python3: it keeps the mask it was
// started with, unlike sh) records its blocked-signal mask and sleeps.
TEST_F(LocalProcessProviderTest, ChildrenOfAThreadBlockingSigtermStillStopOnSigterm) {
  if (std::system("command -v python3 >/dev/null 2>&1") != 0) GTEST_SKIP() << "no python3";
  const std::string script = dir_ / "mask.py";
  std::ofstream(script) << "#!/usr/bin/env python3\n"
                           "import os, sys, time\n"
                           "name = sys.argv[sys.argv.index('--instance-id') + 1]\n"
                           "blk = [l.split()[1] for l in open('/proc/self/status')\n"
                           "       if l.startswith('SigBlk:')][0]\n"
                           "open('"
                        << dir_.string()
                        << "/' + name + '.tmp', 'w').write(\n"
                           "    '%d %s\\n' % (os.getpid(), blk))\n"
                           "os.rename('"
                        << dir_.string() << "/' + name + '.tmp', '" << dir_.string()
                        << "/' + name)\n"
                           "while True: time.sleep(0.05)\n";
  chmod(script.c_str(), 0755);
  sigset_t term, old;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &term, &old);
  LocalProcessProviderOptions o = Options();
  o.binary = script;
  {
    LocalProcessProvider p(o);  // 5 s grace before SIGKILL
    ASSERT_TRUE(p.ScaleTo(1).ok());
    const std::string rec = Record("exp-0");
    ASSERT_FALSE(rec.empty());
    const pid_t pid = std::atoi(rec.c_str());
    const unsigned long long blocked = std::stoull(rec.substr(rec.find(' ') + 1), nullptr, 16);
    EXPECT_EQ(blocked & (1ull << (SIGTERM - 1)), 0u) << "child mask " << rec;
    ASSERT_TRUE(p.ScaleTo(0).ok());
    EXPECT_TRUE(GoneWithin(p, pid, std::chrono::seconds(2)));
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
}

TEST_F(LocalProcessProviderTest, ReportsAChildThatDied) {
  LocalProcessProvider p(Options());
  ASSERT_TRUE(p.ScaleTo(2).ok());
  const pid_t pid = PidOf("exp-0");
  ASSERT_GT(pid, 0);
  ASSERT_EQ(kill(pid, SIGKILL), 0);
  std::vector<InstanceExit> exited;
  for (int i = 0; i < 250 && exited.empty(); ++i) {
    exited = p.TakeExited();
    if (exited.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_EQ(exited.size(), 1u);
  EXPECT_EQ(exited[0].name, "exp-0");
  EXPECT_EQ(exited[0].code, 128 + SIGKILL);
  EXPECT_EQ(*p.Current(), 1);
  EXPECT_EQ(p.Running(), std::vector<std::string>{"exp-1"});
  EXPECT_TRUE(p.TakeExited().empty());  // reported once
}

TEST_F(LocalProcessProviderTest, DestructorStopsEveryChild) {
  pid_t a = 0, b = 0;
  {
    LocalProcessProvider p(Options());
    ASSERT_TRUE(p.ScaleTo(2).ok());
    a = PidOf("exp-0");
    b = PidOf("exp-1");
    ASSERT_GT(a, 0);
    ASSERT_GT(b, 0);
  }
  EXPECT_NE(kill(a, 0), 0);
  EXPECT_NE(kill(b, 0), 0);
}

TEST_F(LocalProcessProviderTest, RejectsANegativeCount) {
  LocalProcessProvider p(Options());
  EXPECT_EQ(p.ScaleTo(-1).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(p.NextToRemove().status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace moe::scheduler
