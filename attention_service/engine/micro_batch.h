// Micro-batch overlap (DESIGN.md section 4, "hide dispatch"): ModelRunner::Forward can split a
// step's chunks into M micro-batches and run them as M concurrent lanes, each doing the whole
// layer loop for its chunks. One compute baton lets a single lane at a time do local compute
// (everything that uses the kernels' thread pool); a lane hands the baton over while it waits
// for experts that compute elsewhere (ExpertExecutor::ComputesElsewhere), so micro-batch A's
// attention runs while B's experts compute remotely, and vice versa.
//
// This header holds the pieces that know nothing about the model: the split (a pure function)
// and the persistent lane threads.
#ifndef MOE_ATTENTION_SERVICE_ENGINE_MICRO_BATCH_H_
#define MOE_ATTENTION_SERVICE_ENGINE_MICRO_BATCH_H_

#include <cstdint>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"

namespace moe::attention {

// Splits `tokens_per_chunk` (chunk i has tokens_per_chunk[i] tokens, in batch order) into at
// most `micro_batches` contiguous, non-empty groups of roughly equal token count; a chunk is
// never split. Returns the group boundaries b[0] = 0 < b[1] < ... < b[k] = chunks.size(), where
// group g is chunks [b[g], b[g+1]) and k = min(micro_batches, chunks.size(),
// max(1, total tokens / min_tokens)) (k = 0 for no chunks): a step too small to give its groups
// `min_tokens` tokens on average gets fewer groups (small steps are weight-bandwidth bound, and
// every group re-reads the weights). micro_batches < 1 and min_tokens < 1 are treated as 1.
// Contiguous groups keep the logits of the groups in batch order when concatenated.
std::vector<int> SplitMicroBatches(absl::Span<const int> tokens_per_chunk, int micro_batches,
                                   int min_tokens = 1);

// Persistent threads that run the lanes of one Forward: Run(n, fn) calls fn(0) on the caller
// and fn(1..n-1) concurrently on threads named "mb-lane-<i>" (created on first need, kept until
// destruction, sleeping on a condition variable between calls), and returns when all are done.
// Thread affinity: Run is called by one thread at a time (the engine loop).
class LaneThreads {
 public:
  LaneThreads() = default;
  ~LaneThreads();  // joins the threads
  LaneThreads(const LaneThreads&) = delete;
  LaneThreads& operator=(const LaneThreads&) = delete;

  void Run(int n, absl::FunctionRef<void(int)> fn);
  int num_threads() const { return static_cast<int>(threads_.size()); }

 private:
  // Runs `lane` for every Run whose generation is past `seen` and that has that many lanes.
  void Loop(int lane, uint64_t seen);

  std::vector<std::thread> threads_;  // thread i runs lane i + 1
  absl::Mutex mu_;
  absl::CondVar start_;  // a Run began, or stop_
  absl::CondVar done_;   // pending_ reached 0
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;  // bumped per Run
  int lanes_ ABSL_GUARDED_BY(mu_) = 0;            // lanes of the current Run
  int pending_ ABSL_GUARDED_BY(mu_) = 0;          // worker lanes not finished yet
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  absl::FunctionRef<void(int)>* fn_ ABSL_GUARDED_BY(mu_) = nullptr;
};

}  // namespace moe::attention

#endif  // MOE_ATTENTION_SERVICE_ENGINE_MICRO_BATCH_H_
