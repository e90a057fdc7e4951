#include "model/kernels/thread_pool.h"

#include <atomic>
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

}  // namespace
}  // namespace moe::kernels
