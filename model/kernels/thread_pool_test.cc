#include "model/kernels/thread_pool.h"

#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

#include <omp.h>

namespace moe::kernels {
namespace {

TEST(ThreadPool, RunsEveryIndexOnce) {
  for (int64_t n : {0, 1, 2, 3, 7, 64, 1000}) {
    std::vector<std::atomic<int>> hits(n);
    ParallelFor(n, [&](int64_t i) { hits[i].fetch_add(1); });
    for (int64_t i = 0; i < n; ++i) EXPECT_EQ(hits[i].load(), 1) << "n=" << n << " i=" << i;
  }
}

TEST(ThreadPool, OpenMpIsSingleThreadedInsideAndRestoredAfter) {
  const int before = omp_get_max_threads();
  std::atomic<int> max_inside{0};
  ParallelFor(8, [&](int64_t) {
    int v = omp_get_max_threads();
    int cur = max_inside.load();
    while (v > cur && !max_inside.compare_exchange_weak(cur, v)) {}
  });
  EXPECT_EQ(max_inside.load(), 1);
  EXPECT_EQ(omp_get_max_threads(), before);
}

TEST(ThreadPool, ConcurrentCallersAllComplete) {
  constexpr int kCallers = 4, kRounds = 200, kN = 16;
  std::vector<std::thread> callers;
  std::vector<int64_t> sums(kCallers, 0);
  for (int c = 0; c < kCallers; ++c) {
    callers.emplace_back([&, c] {
      for (int r = 0; r < kRounds; ++r) {
        std::vector<int64_t> part(kN, 0);
        ParallelFor(kN, [&](int64_t i) { part[i] = i + r; });
        for (int64_t v : part) sums[c] += v;
      }
    });
  }
  for (auto& t : callers) t.join();
  const int64_t want = kRounds * (kN * (kN - 1) / 2) + int64_t{kN} * (kRounds * (kRounds - 1) / 2);
  for (int c = 0; c < kCallers; ++c) EXPECT_EQ(sums[c], want) << c;
}

// The calling thread's allowed CPUs.
std::set<int> AllowedCpus() {
  cpu_set_t set;
  std::set<int> cpus;
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return cpus;
  for (int c = 0; c < CPU_SETSIZE; ++c) {
    if (CPU_ISSET(c, &set)) cpus.insert(c);
  }
  return cpus;
}

// Runs as kernels_thread_pool_test (no pinning: the caller keeps its CPUs) and as
// kernels_thread_pool_pinned_test (MOE_KERNEL_PIN=1 MOE_YIELD_SPIN_US=2000
// MOE_KERNEL_THREADS=2: the caller is pinned to one CPU, the worker to another, and jobs
// separated by pauses shorter and longer than the yield spin all complete).
TEST(ThreadPool, PinsCallerAndWorkerOnlyWhenAsked) {
  const char* pin_env = std::getenv("MOE_KERNEL_PIN");
  const bool pinned = pin_env != nullptr && std::string(pin_env) == "1";
  std::set<int> before;
  std::thread([&] { before = AllowedCpus(); }).join();  // a fresh thread: the process's set
  std::mutex mu;
  std::map<std::thread::id, std::set<int>> cpus_of;  // thread -> CPUs its chunks ran on
  std::set<int> caller_cpus;
  std::thread caller([&] {
    for (int round = 0; round < 6; ++round) {
      std::vector<std::atomic<int>> hits(64);
      ParallelFor(64, [&](int64_t i) {
        const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(300);
        while (std::chrono::steady_clock::now() < until) {
        }
        hits[i].fetch_add(1);
        std::lock_guard<std::mutex> lock(mu);
        cpus_of[std::this_thread::get_id()].insert(sched_getcpu());
      });
      for (int i = 0; i < 64; ++i) ASSERT_EQ(hits[i].load(), 1) << "round " << round;
      // Pauses below and above the yield spin: the worker is found runnable or woken.
      std::this_thread::sleep_for(std::chrono::microseconds(round % 2 == 0 ? 500 : 5000));
    }
    caller_cpus = AllowedCpus();
    std::lock_guard<std::mutex> lock(mu);
    const std::set<int> ran_on = cpus_of[std::this_thread::get_id()];
    if (pinned && before.size() >= 2) {
      EXPECT_EQ(caller_cpus, std::set<int>{*before.begin()}) << "caller on the first CPU";
      EXPECT_EQ(ran_on, caller_cpus);
    }
  });
  caller.join();
  if (!pinned || before.size() < 2) {
    EXPECT_EQ(caller_cpus, before) << "no pinning without MOE_KERNEL_PIN=1 (or with one CPU)";
    return;
  }
  // The worker's chunks ran on its own CPU, another than the caller's.
  std::lock_guard<std::mutex> lock(mu);
  for (const auto& [id, cpus] : cpus_of) {
    EXPECT_EQ(cpus.size(), 1u) << "a pinned thread ran on several CPUs";
  }
  ASSERT_EQ(cpus_of.size(), 2u) << "caller and one worker (MOE_KERNEL_THREADS=2)";
  std::set<int> all;
  for (const auto& [id, cpus] : cpus_of) all.insert(cpus.begin(), cpus.end());
  EXPECT_EQ(all.size(), 2u) << "caller and worker on different CPUs";
}

}  // namespace
}  // namespace moe::kernels
