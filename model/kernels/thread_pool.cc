#include "model/kernels/thread_pool.h"

#include <immintrin.h>
#include <omp.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

namespace moe::kernels {
namespace {

// How long an idle worker spins before sleeping: forward passes call kernels back to back,
// and a futex wake-up costs tens of microseconds. MOE_KERNEL_SPIN_US overrides it (0..10000):
// `moe up` shortens it, since there a spinning worker takes a core from another role.
std::chrono::microseconds SpinTime() {
  static const std::chrono::microseconds spin = [] {
    const char* env = std::getenv("MOE_KERNEL_SPIN_US");
    if (env != nullptr && *env != '\0') {
      char* end = nullptr;
      const long v = std::strtol(env, &end, 10);
      if (*end == '\0' && v >= 0 && v <= 10000) return std::chrono::microseconds(v);
    }
    return std::chrono::microseconds(200);
  }();
  return spin;
}

// True on a thread while it runs chunks of a ParallelFor (caller or worker): a nested
// ParallelFor then runs inline on that thread.
thread_local bool in_parallel_for = false;

// Sets in_parallel_for for a scope.
class NestedScope {
 public:
  NestedScope() : saved_(in_parallel_for) { in_parallel_for = true; }
  ~NestedScope() { in_parallel_for = saved_; }

 private:
  bool saved_;
};

// Sets OpenMP's max threads for this thread for a scope.
class OmpThreadsScope {
 public:
  explicit OmpThreadsScope(int n) : saved_(omp_get_max_threads()) {
    if (saved_ != n) omp_set_num_threads(n);
  }
  ~OmpThreadsScope() {
    if (omp_get_max_threads() != saved_) omp_set_num_threads(saved_);
  }

 private:
  int saved_;
};

class Pool {
 public:
  explicit Pool(int workers) {
    for (int i = 0; i < workers; ++i) threads_.emplace_back([this] { WorkerLoop(); });
  }
  // Lives for the whole process (workers are detached at exit).
  ~Pool() = delete;

  void Run(int64_t n, absl::FunctionRef<void(int64_t)> fn) {
    OmpThreadsScope omp(1);
    NestedScope nested;
    if (n == 1 || threads_.empty() || !call_mu_.try_lock()) {
      for (int64_t i = 0; i < n; ++i) fn(i);
      return;
    }
    // Publish the job once no late worker is still looking at the previous one.
    writing_.store(true);
    while (active_.load() != 0) _mm_pause();
    n_.store(n);
    fn_ = &fn;
    next_.store(0);
    done_.store(0);
    generation_.fetch_add(1);
    writing_.store(false);
    if (sleepers_.load() > 0) {
      std::lock_guard<std::mutex> lock(sleep_mu_);
      wake_.notify_all();
    }
    for (int64_t i; (i = next_.fetch_add(1)) < n;) {
      fn(i);
      done_.fetch_add(1);
    }
    while (done_.load() < n) _mm_pause();
    call_mu_.unlock();
  }

 private:
  void WorkerLoop() {
    omp_set_num_threads(1);
    in_parallel_for = true;
    uint64_t seen = 0;
    for (;;) {
      uint64_t g = generation_.load();
      if (g == seen) {
        const auto until = std::chrono::steady_clock::now() + SpinTime();
        while ((g = generation_.load()) == seen && std::chrono::steady_clock::now() < until) {
          for (int i = 0; i < 64; ++i) _mm_pause();
        }
        if (g == seen) {
          std::unique_lock<std::mutex> lock(sleep_mu_);
          sleepers_.fetch_add(1);
          wake_.wait(lock, [&] { return generation_.load() != seen; });
          sleepers_.fetch_sub(1);
          continue;
        }
      }
      seen = g;
      active_.fetch_add(1);
      if (writing_.load() || generation_.load() != g) {  // a newer job is being published
        active_.fetch_sub(1);
        continue;
      }
      const int64_t n = n_.load();
      for (int64_t i; (i = next_.fetch_add(1)) < n;) {
        (*fn_)(i);
        done_.fetch_add(1);
      }
      active_.fetch_sub(1);
    }
  }

  std::vector<std::thread> threads_;
  std::mutex call_mu_;  // held by the caller whose job the workers run
  // The job. All atomics are sequentially consistent: writing_/active_ and
  // sleepers_/generation_ are Dekker-style handshakes.
  std::atomic<uint64_t> generation_{0};
  std::atomic<bool> writing_{false};
  std::atomic<int> active_{0};
  std::atomic<int64_t> n_{0};
  std::atomic<int64_t> next_{0};
  std::atomic<int64_t> done_{0};
  absl::FunctionRef<void(int64_t)>* fn_ = nullptr;
  std::mutex sleep_mu_;
  std::condition_variable wake_;
  std::atomic<int> sleepers_{0};
};

Pool& GetPool() {
  static Pool* pool = [] {
    Pool* p = new Pool(KernelThreads() - 1);
    return p;
  }();
  return *pool;
}

}  // namespace

int KernelThreads() {
  static const int threads = [] {
    const char* env = std::getenv("MOE_KERNEL_THREADS");
    const int n = env != nullptr ? std::atoi(env) : 0;
    return n > 0 ? n : omp_get_max_threads();
  }();
  return threads;
}

void ParallelFor(int64_t n, absl::FunctionRef<void(int64_t)> fn) {
  if (n <= 0) return;
  if (in_parallel_for) {  // nested: the pool is busy with the enclosing call
    for (int64_t i = 0; i < n; ++i) fn(i);
    return;
  }
  GetPool().Run(n, fn);
}

}  // namespace moe::kernels
