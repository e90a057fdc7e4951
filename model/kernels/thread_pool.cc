#include "model/kernels/thread_pool.h"

#include <immintrin.h>
#include <omp.h>
#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

#include "common/flags.h"

namespace moe::kernels {
namespace {

// How long an idle worker spins before sleeping: forward passes call kernels back to back,
// and a futex wake-up costs tens of microseconds. MOE_KERNEL_SPIN_US overrides it (0..10000):
// `moe up` shortens it, since there a spinning worker takes a core from another role.
std::chrono::microseconds SpinTime() {
  static const std::chrono::microseconds spin{EnvInt("MOE_KERNEL_SPIN_US", 200, 0, 10000)};
  return spin;
}

// After the spin, how long an idle worker stays runnable calling sched_yield before sleeping
// (MOE_YIELD_SPIN_US, 0..100000, default 0; `moe up` sets it). A runnable worker gets the core
// as soon as the thread on it yields or blocks; a sleeping one must be woken, which on a VM
// (a halted vCPU) took from tens of microseconds to a few milliseconds here. Other runnable
// threads go first at every yield.
std::chrono::microseconds YieldSpinTime() {
  static const std::chrono::microseconds yield{EnvInt("MOE_YIELD_SPIN_US", 0, 0, 100000)};
  return yield;
}

// MOE_KERNEL_PIN=1: pool callers run on the first CPU this process may use, worker i on the
// (i + 1)-th (modulo their count). For processes that share all the cores (`moe up` on a
// machine with no more cores than a role's threads): each core then holds one thread of each
// role, so no two of one role's threads queue on one core and a wake-up never waits for the
// load balancer to move the thread to the idle core.
bool PinEnabled() {
  static const bool on = EnvInt("MOE_KERNEL_PIN", 0, 0, 1) == 1;
  return on;
}

// Pins the calling thread to the n-th CPU (modulo their count) of its allowed set; nothing
// when fewer than 2 CPUs are allowed or a call fails (pinning is a hint).
void PinToNthCpu(int n) {
  cpu_set_t allowed;
  if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0) return;
  const int count = CPU_COUNT(&allowed);
  if (count < 2) return;
  int want = n % count;
  for (int c = 0; c < CPU_SETSIZE; ++c) {
    if (!CPU_ISSET(c, &allowed) || want-- != 0) continue;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(c, &one);
    pthread_setaffinity_np(pthread_self(), sizeof(one), &one);
    return;
  }
}

// True on a caller thread once PinEnabled() pinned it.
thread_local bool caller_pinned = false;

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
    for (int i = 0; i < workers; ++i) {
      threads_.emplace_back([this, i] {
        if (PinEnabled()) PinToNthCpu(i + 1);
        WorkerLoop();
      });
    }
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
    if (PinEnabled() && !caller_pinned) {
      caller_pinned = true;
      PinToNthCpu(0);
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
        if (g == seen && YieldSpinTime().count() > 0) {
          const auto yield_until = std::chrono::steady_clock::now() + YieldSpinTime();
          while ((g = generation_.load()) == seen &&
                 std::chrono::steady_clock::now() < yield_until) {
            sched_yield();
          }
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
