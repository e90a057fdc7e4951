// The kernels' thread pool: the calling thread plus KernelThreads() - 1 persistent workers.
//
// Work is cut into chunks that threads claim one at a time, so a worker the OS has
// descheduled (another process on the core) never holds the caller up: whoever runs takes the
// next chunk, and ParallelFor returns when every chunk is done; a worker that wakes late finds
// nothing left. (OpenMP's end-of-region barrier waits for every thread instead, which costs a
// scheduler time slice per region on a busy machine.)
#ifndef MOE_MODEL_KERNELS_THREAD_POOL_H_
#define MOE_MODEL_KERNELS_THREAD_POOL_H_

#include <cstdint>

#include "absl/functional/function_ref.h"

namespace moe::kernels {

// Threads a kernel call may use, including the caller: MOE_KERNEL_THREADS if set (> 0), else
// OpenMP's max threads at first use (OMP_NUM_THREADS, default: the cores).
int KernelThreads();

// Environment (read once): MOE_KERNEL_SPIN_US (an idle worker's spin before sleeping, default
// 200), MOE_YIELD_SPIN_US (then runnable with sched_yield this long, default 0) and
// MOE_KERNEL_PIN=1 (callers pinned to the first allowed CPU, worker i to the (i + 1)-th; a
// thread a pinned caller starts inherits its CPU). `moe up` sets them for its roles.
//
// Runs fn(i) for every i in [0, n), on the caller and the pool's workers, and returns when all
// are done. Inside fn, OpenMP's max threads is 1 on every thread, so a oneDNN primitive
// executed there runs single-threaded. Thread-safe: while one caller uses the workers, other
// concurrent callers run their chunks inline on their own thread. A ParallelFor called from
// inside fn (nested) runs all its chunks inline on the calling thread.
void ParallelFor(int64_t n, absl::FunctionRef<void(int64_t)> fn);

}  // namespace moe::kernels

#endif  // MOE_MODEL_KERNELS_THREAD_POOL_H_
